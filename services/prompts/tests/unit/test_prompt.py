"""The prompt's life-cycle rules (domain only)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagetron_contracts.models.prompts import GenerationState, PromptStatus
from imagetron_platform.errors import Conflict, InvalidRequest
from imagetron_prompts.domain.prompt import (
    MAX_TEXT_LENGTH,
    MAX_TITLE_LENGTH,
    Prompt,
    TaskPhase,
    TaskSignal,
    generation_state_for,
    next_task_phase,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OWNER = UUID("00000000-0000-4000-8000-000000000001")


def new_prompt(**kwargs: object) -> Prompt:
    args: dict[str, object] = {"owner_id": OWNER, "text": "a red fox", "title": None, "now": T0}
    args.update(kwargs)
    return Prompt.create(**args)  # type: ignore[arg-type]


class TestCreate:
    def test_new_prompt_is_new_idle_and_counts_nothing(self):
        prompt = new_prompt(text="a red fox", title="Fox")
        assert (prompt.owner_id, prompt.text, prompt.title) == (OWNER, "a red fox", "Fox")
        assert prompt.status is PromptStatus.new
        assert prompt.generation_state is GenerationState.idle
        assert (prompt.active_tasks, prompt.completed_tasks, prompt.failed_tasks) == (0, 0, 0)
        assert prompt.created_at == prompt.updated_at == T0

    def test_each_prompt_gets_its_own_id(self):
        assert new_prompt().id != new_prompt().id

    def test_surrounding_whitespace_is_dropped(self):
        prompt = new_prompt(text="  a red fox \n", title="  Fox ")
        assert (prompt.text, prompt.title) == ("a red fox", "Fox")

    @pytest.mark.parametrize("title", ["", "   "])
    def test_blank_title_is_no_title(self, title):
        assert new_prompt(title=title).title is None

    @pytest.mark.parametrize("text", ["", " \n\t "])
    def test_blank_text_is_invalid(self, text):
        with pytest.raises(InvalidRequest) as caught:
            new_prompt(text=text)
        assert caught.value.status == 422
        assert [e.loc for e in caught.value.errors or []] == [["text"]]

    def test_text_and_title_at_their_limits_are_accepted(self):
        prompt = new_prompt(text="x" * MAX_TEXT_LENGTH, title="t" * MAX_TITLE_LENGTH)
        assert len(prompt.text) == MAX_TEXT_LENGTH

    def test_too_long_text_and_title_are_both_reported(self):
        with pytest.raises(InvalidRequest) as caught:
            new_prompt(text="x" * (MAX_TEXT_LENGTH + 1), title="t" * (MAX_TITLE_LENGTH + 1))
        assert [e.loc for e in caught.value.errors or []] == [["text"], ["title"]]


class TestEnsureCanGenerate:
    @pytest.mark.parametrize(
        "status", [PromptStatus.new, PromptStatus.approved, PromptStatus.rejected]
    )
    def test_allowed_unless_archived(self, status):
        prompt = new_prompt()
        prompt.change_status(status, T0)
        prompt.ensure_can_generate()

    def test_archived_prompt_is_a_conflict(self):
        prompt = new_prompt()
        prompt.change_status(PromptStatus.archived, T0)
        with pytest.raises(Conflict) as caught:
            prompt.ensure_can_generate()
        assert caught.value.status == 409
        assert "archived" in caught.value.detail

    def test_allowed_while_other_tasks_are_generating(self):
        prompt = new_prompt()
        prompt.track_task(None, TaskSignal.CREATED, T0)
        prompt.ensure_can_generate()


class TestEnsureCanReserve:
    """On an archived prompt: a task granted its generation before is granted again."""

    @pytest.mark.parametrize(
        "phase", [p for p in TaskPhase if p is not TaskPhase.RELEASED], ids=str
    )
    def test_a_task_granted_before_is_granted_again(self, phase):
        prompt = new_prompt()
        prompt.change_status(PromptStatus.archived, T0)
        prompt.ensure_can_reserve(phase)

    @pytest.mark.parametrize("phase", [None, TaskPhase.RELEASED], ids=str)
    def test_a_new_or_released_task_is_refused(self, phase):
        prompt = new_prompt()
        prompt.change_status(PromptStatus.archived, T0)
        with pytest.raises(Conflict):
            prompt.ensure_can_reserve(phase)


class TestEdit:
    def test_changes_text_and_title_and_time(self):
        prompt = new_prompt(title="Fox")
        later = T0 + timedelta(minutes=1)
        assert prompt.edit(later, text=" a grey fox ", title=" Grey fox ") is True
        assert (prompt.text, prompt.title, prompt.updated_at) == ("a grey fox", "Grey fox", later)

    def test_fields_not_given_stay(self):
        prompt = new_prompt(title="Fox")
        prompt.edit(T0, text="a grey fox")
        assert prompt.title == "Fox"
        prompt.edit(T0, title="Grey")
        assert prompt.text == "a grey fox"

    @pytest.mark.parametrize("changes", [{"clear_title": True}, {"title": "  "}])
    def test_title_can_be_removed(self, changes):
        prompt = new_prompt(title="Fox")
        assert prompt.edit(T0, **changes) is True
        assert prompt.title is None

    def test_same_values_are_no_change(self):
        prompt = new_prompt(title="Fox")
        assert prompt.edit(T0 + timedelta(hours=1), text="a red fox", title="Fox") is False
        assert prompt.updated_at == T0

    def test_invalid_values_change_nothing(self):
        prompt = new_prompt(title="Fox")
        with pytest.raises(InvalidRequest) as caught:
            prompt.edit(T0, text="  ", title="t" * (MAX_TITLE_LENGTH + 1))
        assert [e.loc for e in caught.value.errors or []] == [["text"], ["title"]]
        assert (prompt.text, prompt.title) == ("a red fox", "Fox")


class TestEnsureCanDelete:
    def test_idle_or_ended_prompt_may_be_deleted(self):
        prompt = new_prompt()
        prompt.ensure_can_delete()
        prompt.track_task(None, TaskSignal.COMPLETED, T0)
        prompt.ensure_can_delete()

    def test_prompt_with_an_active_task_is_a_conflict(self):
        prompt = new_prompt()
        prompt.track_task(None, TaskSignal.CREATED, T0)
        with pytest.raises(Conflict) as caught:
            prompt.ensure_can_delete()
        assert caught.value.status == 409
        assert "1 active generation task:" in caught.value.detail

    def test_archived_prompt_without_tasks_may_be_deleted(self):
        prompt = new_prompt()
        prompt.change_status(PromptStatus.archived, T0)
        prompt.ensure_can_delete()


def test_unlinking_the_chat_keeps_the_prompt():
    chat_id = uuid4()
    prompt = new_prompt(chat_id=chat_id)
    assert prompt.chat_id == chat_id
    later = T0 + timedelta(minutes=1)
    prompt.unlink_chat(later)
    assert (prompt.chat_id, prompt.updated_at) == (None, later)


class TestChangeStatus:
    def test_changes_status_and_time(self):
        prompt = new_prompt()
        later = T0 + timedelta(minutes=1)
        assert prompt.change_status(PromptStatus.approved, later) is True
        assert (prompt.status, prompt.updated_at) == (PromptStatus.approved, later)

    def test_same_status_is_no_change(self):
        prompt = new_prompt()
        assert prompt.change_status(PromptStatus.new, T0 + timedelta(minutes=1)) is False
        assert prompt.updated_at == T0


# Every (known phase, signal) pair and where it leads; None: nothing changes.
TASK_EVENTS = {
    TaskSignal.CREATED: TaskPhase.ACTIVE,
    TaskSignal.COMPLETED: TaskPhase.COMPLETED,
    TaskSignal.FAILED: TaskPhase.FAILED,
    TaskSignal.CANCELLED: TaskPhase.CANCELLED,
}
PHASE_TABLE: dict[tuple[TaskPhase | None, TaskSignal], TaskPhase | None] = {
    **{(None, signal): phase for signal, phase in TASK_EVENTS.items()},
    (None, TaskSignal.RESERVE): TaskPhase.RESERVED,
    (None, TaskSignal.RELEASE): None,
    # A reservation becomes the task, ends with it, or is let go.
    (TaskPhase.RESERVED, TaskSignal.CREATED): TaskPhase.ACTIVE,
    (TaskPhase.RESERVED, TaskSignal.COMPLETED): TaskPhase.COMPLETED,
    (TaskPhase.RESERVED, TaskSignal.FAILED): TaskPhase.FAILED,
    (TaskPhase.RESERVED, TaskSignal.CANCELLED): TaskPhase.CANCELLED,
    (TaskPhase.RESERVED, TaskSignal.RESERVE): None,
    (TaskPhase.RESERVED, TaskSignal.RELEASE): TaskPhase.RELEASED,
    # A released reservation is as good as unknown: to its task's own events, and to a
    # reservation of the same task, which is a new one.
    **{(TaskPhase.RELEASED, signal): phase for signal, phase in TASK_EVENTS.items()},
    (TaskPhase.RELEASED, TaskSignal.RESERVE): TaskPhase.RESERVED,
    (TaskPhase.RELEASED, TaskSignal.RELEASE): None,
    (TaskPhase.ACTIVE, TaskSignal.CREATED): None,
    (TaskPhase.ACTIVE, TaskSignal.COMPLETED): TaskPhase.COMPLETED,
    (TaskPhase.ACTIVE, TaskSignal.FAILED): TaskPhase.FAILED,
    (TaskPhase.ACTIVE, TaskSignal.CANCELLED): TaskPhase.CANCELLED,
    (TaskPhase.ACTIVE, TaskSignal.RESERVE): None,
    (TaskPhase.ACTIVE, TaskSignal.RELEASE): None,
    **{
        (ended, signal): None
        for ended in (TaskPhase.COMPLETED, TaskPhase.FAILED, TaskPhase.CANCELLED)
        for signal in TaskSignal
    },
}


def test_phase_table_covers_every_pair():
    assert set(PHASE_TABLE) == set(itertools.product([None, *TaskPhase], TaskSignal))


@pytest.mark.parametrize(("phase", "signal"), list(PHASE_TABLE))
def test_next_task_phase(phase, signal):
    assert next_task_phase(phase, signal) is PHASE_TABLE[phase, signal]


@pytest.mark.parametrize(
    ("active", "completed", "failed", "state"),
    [
        (0, 0, 0, GenerationState.idle),
        (1, 0, 0, GenerationState.generating),
        (2, 5, 3, GenerationState.generating),
        (0, 1, 0, GenerationState.generated),
        (0, 1, 4, GenerationState.generated),
        (0, 0, 1, GenerationState.failed),
    ],
)
def test_generation_state_follows_the_counters(active, completed, failed, state):
    assert generation_state_for(active, completed, failed) is state


def counters(prompt: Prompt) -> tuple[int, int, int, GenerationState]:
    return (
        prompt.active_tasks,
        prompt.completed_tasks,
        prompt.failed_tasks,
        prompt.generation_state,
    )


class TestTrackTask:
    def test_a_reservation_counts_as_active_until_its_task_ends(self):
        prompt = new_prompt()
        assert prompt.track_task(None, TaskSignal.RESERVE, T0) is TaskPhase.RESERVED
        assert counters(prompt) == (1, 0, 0, GenerationState.generating)
        with pytest.raises(Conflict):
            prompt.ensure_can_delete()
        assert prompt.track_task(TaskPhase.RESERVED, TaskSignal.CREATED, T0) is TaskPhase.ACTIVE
        assert counters(prompt) == (1, 0, 0, GenerationState.generating)
        prompt.track_task(TaskPhase.ACTIVE, TaskSignal.COMPLETED, T0)
        assert counters(prompt) == (0, 1, 0, GenerationState.generated)

    def test_a_released_reservation_counts_nowhere(self):
        prompt = new_prompt()
        prompt.track_task(None, TaskSignal.RESERVE, T0)
        assert prompt.track_task(TaskPhase.RESERVED, TaskSignal.RELEASE, T0) is (TaskPhase.RELEASED)
        assert counters(prompt) == (0, 0, 0, GenerationState.idle)
        prompt.ensure_can_delete()
        # Its task existed after all: it counts from its own events.
        prompt.track_task(TaskPhase.RELEASED, TaskSignal.CREATED, T0)
        assert counters(prompt) == (1, 0, 0, GenerationState.generating)

    def test_a_reservation_after_its_release_counts_as_a_new_one(self):
        prompt = new_prompt()
        prompt.track_task(None, TaskSignal.RESERVE, T0)
        prompt.track_task(TaskPhase.RESERVED, TaskSignal.RELEASE, T0)
        later = T0 + timedelta(seconds=3)
        assert prompt.track_task(TaskPhase.RELEASED, TaskSignal.RESERVE, later) is (
            TaskPhase.RESERVED
        )
        assert counters(prompt) == (1, 0, 0, GenerationState.generating)
        assert (prompt.updated_at, prompt.version) == (later, 4)
        with pytest.raises(Conflict):
            prompt.ensure_can_delete()
        # Its task's events then count it once, as after a first reservation.
        prompt.track_task(TaskPhase.RESERVED, TaskSignal.CREATED, later)
        prompt.track_task(TaskPhase.ACTIVE, TaskSignal.COMPLETED, later)
        assert counters(prompt) == (0, 1, 0, GenerationState.generated)

    def test_created_task_makes_the_prompt_generating(self):
        prompt = new_prompt()
        later = T0 + timedelta(seconds=5)
        assert prompt.track_task(None, TaskSignal.CREATED, later) is TaskPhase.ACTIVE
        assert counters(prompt) == (1, 0, 0, GenerationState.generating)
        assert prompt.updated_at == later

    def test_completed_task_makes_it_generated(self):
        prompt = new_prompt()
        prompt.track_task(None, TaskSignal.CREATED, T0)
        assert prompt.track_task(TaskPhase.ACTIVE, TaskSignal.COMPLETED, T0) is (
            TaskPhase.COMPLETED
        )
        assert counters(prompt) == (0, 1, 0, GenerationState.generated)

    def test_stays_generating_while_another_task_is_active(self):
        prompt = new_prompt()
        prompt.track_task(None, TaskSignal.CREATED, T0)
        prompt.track_task(None, TaskSignal.CREATED, T0)
        prompt.track_task(TaskPhase.ACTIVE, TaskSignal.COMPLETED, T0)
        assert counters(prompt) == (1, 1, 0, GenerationState.generating)

    def test_failed_task_without_any_completed_makes_it_failed(self):
        prompt = new_prompt()
        prompt.track_task(None, TaskSignal.CREATED, T0)
        prompt.track_task(TaskPhase.ACTIVE, TaskSignal.FAILED, T0)
        assert counters(prompt) == (0, 0, 1, GenerationState.failed)

    def test_failure_after_a_completed_task_keeps_it_generated(self):
        prompt = new_prompt()
        prompt.track_task(None, TaskSignal.CREATED, T0)
        prompt.track_task(TaskPhase.ACTIVE, TaskSignal.COMPLETED, T0)
        prompt.track_task(None, TaskSignal.CREATED, T0)
        prompt.track_task(TaskPhase.ACTIVE, TaskSignal.FAILED, T0)
        assert counters(prompt) == (0, 1, 1, GenerationState.generated)

    def test_cancelled_only_task_returns_it_to_idle(self):
        prompt = new_prompt()
        prompt.track_task(None, TaskSignal.CREATED, T0)
        prompt.track_task(TaskPhase.ACTIVE, TaskSignal.CANCELLED, T0)
        assert counters(prompt) == (0, 0, 0, GenerationState.idle)

    def test_cancelled_task_after_a_failure_leaves_it_failed(self):
        prompt = new_prompt()
        prompt.track_task(None, TaskSignal.FAILED, T0)
        prompt.track_task(None, TaskSignal.CREATED, T0)
        prompt.track_task(TaskPhase.ACTIVE, TaskSignal.CANCELLED, T0)
        assert counters(prompt) == (0, 0, 1, GenerationState.failed)

    def test_end_before_created_counts_the_end_and_the_late_created_is_ignored(self):
        prompt = new_prompt()
        assert prompt.track_task(None, TaskSignal.COMPLETED, T0) is TaskPhase.COMPLETED
        assert prompt.track_task(TaskPhase.COMPLETED, TaskSignal.CREATED, T0) is None
        assert counters(prompt) == (0, 1, 0, GenerationState.generated)

    @pytest.mark.parametrize(("phase", "signal"), [k for k, v in PHASE_TABLE.items() if v is None])
    def test_signal_that_changes_nothing_leaves_the_prompt_untouched(self, phase, signal):
        prompt = new_prompt()
        prompt.track_task(None, TaskSignal.CREATED, T0)
        before = counters(prompt)
        assert prompt.track_task(phase, signal, T0 + timedelta(hours=1)) is None
        assert counters(prompt) == before
        assert prompt.updated_at == T0

    def test_active_counter_never_goes_below_zero(self):
        # A ledger that says "active" while the counter says 0 (e.g. a hand-edited row).
        prompt = new_prompt()
        prompt.track_task(TaskPhase.ACTIVE, TaskSignal.COMPLETED, T0)
        assert counters(prompt) == (0, 1, 0, GenerationState.generated)


# Each task emits `created` and then maybe one end; the bus may duplicate and reorder.
task_histories = st.lists(
    st.sampled_from([None, TaskSignal.COMPLETED, TaskSignal.FAILED, TaskSignal.CANCELLED]),
    max_size=6,
)


@given(ends=task_histories, data=st.data())
def test_counters_depend_only_on_which_signals_arrived(ends, data):
    tasks = [uuid4() for _ in ends]
    deliveries = []
    for task, end in zip(tasks, ends, strict=True):
        signals = [TaskSignal.CREATED] if end is None else [TaskSignal.CREATED, end]
        for signal in signals:
            deliveries += [(task, signal)] * data.draw(st.integers(1, 3), label="copies")
    deliveries = data.draw(st.permutations(deliveries), label="order")

    prompt = new_prompt()
    ledger: dict[UUID, TaskPhase] = {}
    for task, signal in deliveries:
        new_phase = prompt.track_task(ledger.get(task), signal, T0)
        if new_phase is not None:
            ledger[task] = new_phase
        assert min(prompt.active_tasks, prompt.completed_tasks, prompt.failed_tasks) >= 0
        assert prompt.generation_state is generation_state_for(
            prompt.active_tasks, prompt.completed_tasks, prompt.failed_tasks
        )

    active = ends.count(None)
    completed = ends.count(TaskSignal.COMPLETED)
    failed = ends.count(TaskSignal.FAILED)
    assert counters(prompt)[:3] == (active, completed, failed)
    assert prompt.generation_state is generation_state_for(active, completed, failed)
