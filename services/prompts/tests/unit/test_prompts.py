"""The service layer against fakes of its ports: one class per use case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from imagetron_contracts.models.images import TaskEventType
from imagetron_contracts.models.prompts import (
    CreatePromptCommand,
    GenerationReservation,
    GenerationState,
    ListPromptsQuery,
    PromptEvent,
    PromptQuery,
    PromptStatus,
    SetPromptStatusCommand,
    UpdatePromptCommand,
)
from imagetron_platform.errors import Conflict, InvalidRequest, NotFound
from imagetron_platform.pagination import DEFAULT_PAGE_SIZE
from imagetron_prompts.app import prompts
from imagetron_prompts.app.prompts import TASK_EVENTS_CONSUMER, TaskEventOutcome
from imagetron_prompts.domain.prompt import TaskPhase

ALICE = UUID("00000000-0000-4000-8000-00000000a11c")
BOB = UUID("00000000-0000-4000-8000-000000000b0b")
T = datetime(2026, 1, 1, tzinfo=UTC)
T0 = T


class TestCreatePrompt:
    async def test_stores_the_prompt_and_emits_prompt_created(self, deps, store):
        prompt = await prompts.create_prompt(
            CreatePromptCommand(owner_id=ALICE, text="a lighthouse at dusk", title="Dusk"),
            deps.new_uow(),
            deps.clock,
        )
        assert (prompt.owner_id, prompt.text, prompt.title) == (
            ALICE,
            "a lighthouse at dusk",
            "Dusk",
        )
        assert prompt.status is PromptStatus.new
        assert prompt.generation_state is GenerationState.idle
        assert store.committed.prompts[prompt.id].text == "a lighthouse at dusk"
        [emitted] = store.outbox
        assert emitted.subject == f"events.prompts.{ALICE}.prompt.created"
        event = emitted.read_as(PromptEvent)
        assert event.type.value == "prompt.created"
        assert event.id == emitted.message_id
        assert event.owner_id == ALICE
        assert event.prompt == prompt
        assert store.commits == 1

    async def test_invalid_text_stores_and_emits_nothing(self, deps, store):
        with pytest.raises(InvalidRequest):
            await prompts.create_prompt(
                CreatePromptCommand(owner_id=ALICE, text="   "), deps.new_uow(), deps.clock
            )
        assert store.committed.prompts == {}
        assert store.outbox == []


class TestGetPrompt:
    async def test_owner_gets_the_prompt(self, deps, stored_prompt):
        stored = stored_prompt(ALICE)
        prompt = await prompts.get_prompt(
            PromptQuery(owner_id=ALICE, prompt_id=stored.id), deps.new_uow()
        )
        assert prompt.id == stored.id
        assert prompt.text == stored.text

    async def test_another_owners_prompt_is_not_found(self, deps, stored_prompt):
        stored = stored_prompt(ALICE)
        with pytest.raises(NotFound) as caught:
            await prompts.get_prompt(PromptQuery(owner_id=BOB, prompt_id=stored.id), deps.new_uow())
        assert caught.value.status == 404

    async def test_unknown_prompt_is_not_found_with_the_same_answer(self, deps, stored_prompt):
        stored = stored_prompt(ALICE)
        unknown = uuid4()
        with pytest.raises(NotFound) as other_owner:
            await prompts.get_prompt(PromptQuery(owner_id=BOB, prompt_id=stored.id), deps.new_uow())
        with pytest.raises(NotFound) as missing:
            await prompts.get_prompt(PromptQuery(owner_id=ALICE, prompt_id=unknown), deps.new_uow())
        assert other_owner.value.detail.replace(str(stored.id), "ID") == (
            missing.value.detail.replace(str(unknown), "ID")
        )


class TestListPrompts:
    async def test_newest_first_and_only_the_owners(self, deps, stored_prompt):
        first = stored_prompt(ALICE, "first")
        stored_prompt(BOB, "bob's")
        second = stored_prompt(ALICE, "second")
        page = await prompts.list_prompts(ListPromptsQuery(owner_id=ALICE), deps.new_uow())
        assert [p.id for p in page.items] == [second.id, first.id]
        assert page.next_cursor is None

    async def test_pages_walk_every_prompt_once(self, deps, stored_prompt):
        stored = [stored_prompt(ALICE, f"prompt {i}") for i in range(5)]
        seen, cursor, pages = [], None, 0
        while True:
            page = await prompts.list_prompts(
                ListPromptsQuery(owner_id=ALICE, limit=2, cursor=cursor), deps.new_uow()
            )
            pages += 1
            seen += [p.id for p in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == [p.id for p in reversed(stored)]
        assert pages == 3

    async def test_exactly_full_last_page_has_no_next_cursor(self, deps, stored_prompt):
        for i in range(2):
            stored_prompt(ALICE, f"prompt {i}")
        page = await prompts.list_prompts(ListPromptsQuery(owner_id=ALICE, limit=2), deps.new_uow())
        assert len(page.items) == 2
        assert page.next_cursor is None

    async def test_prompts_created_in_the_same_instant_are_ordered_by_id(self, deps, stored_prompt):
        same = [stored_prompt(ALICE, f"p{i}", created_at=T) for i in range(3)]
        ids = []
        cursor = None
        for _ in range(3):
            page = await prompts.list_prompts(
                ListPromptsQuery(owner_id=ALICE, limit=1, cursor=cursor), deps.new_uow()
            )
            ids += [p.id for p in page.items]
            cursor = page.next_cursor
        assert ids == sorted((p.id for p in same), reverse=True)
        assert cursor is None

    async def test_missing_limit_means_the_default_page_size(self, deps, stored_prompt):
        for i in range(DEFAULT_PAGE_SIZE + 1):
            stored_prompt(ALICE, f"prompt {i}")
        page = await prompts.list_prompts(ListPromptsQuery(owner_id=ALICE), deps.new_uow())
        assert len(page.items) == DEFAULT_PAGE_SIZE
        assert page.next_cursor is not None

    async def test_bad_cursor_is_an_invalid_request(self, deps):
        with pytest.raises(InvalidRequest):
            await prompts.list_prompts(
                ListPromptsQuery(owner_id=ALICE, cursor="garbage"), deps.new_uow()
            )

    async def test_no_prompts_is_an_empty_page(self, deps):
        page = await prompts.list_prompts(ListPromptsQuery(owner_id=ALICE), deps.new_uow())
        assert page.items == []
        assert page.next_cursor is None


class TestPrepareGeneration:
    async def test_returns_the_prompt_and_changes_nothing(self, deps, store, stored_prompt):
        stored = stored_prompt(ALICE)
        prompt = await prompts.prepare_generation(
            PromptQuery(owner_id=ALICE, prompt_id=stored.id), deps.new_uow()
        )
        assert prompt.id == stored.id
        assert store.commits == 0
        assert store.outbox == []

    async def test_archived_prompt_is_a_conflict(self, deps, stored_prompt):
        stored = stored_prompt(ALICE, status=PromptStatus.archived)
        with pytest.raises(Conflict) as caught:
            await prompts.prepare_generation(
                PromptQuery(owner_id=ALICE, prompt_id=stored.id), deps.new_uow()
            )
        assert "archived" in caught.value.detail

    async def test_another_owners_prompt_is_not_found(self, deps, stored_prompt):
        stored = stored_prompt(ALICE, status=PromptStatus.archived)
        with pytest.raises(NotFound):
            await prompts.prepare_generation(
                PromptQuery(owner_id=BOB, prompt_id=stored.id), deps.new_uow()
            )

    async def test_unknown_prompt_is_not_found(self, deps):
        with pytest.raises(NotFound):
            await prompts.prepare_generation(
                PromptQuery(owner_id=ALICE, prompt_id=uuid4()), deps.new_uow()
            )


class TestGenerationReservations:
    def reservation(self, prompt_id: UUID, task_id: UUID, owner: UUID = ALICE):
        return GenerationReservation(owner_id=owner, prompt_id=prompt_id, task_id=task_id)

    async def test_a_reserved_generation_keeps_the_prompt_from_being_deleted(
        self, deps, store, stored_prompt, task_event
    ):
        prompt = stored_prompt(ALICE)
        task_id = uuid4()
        reserved = await prompts.reserve_generation(
            self.reservation(prompt.id, task_id), deps.new_uow(), deps.clock
        )
        assert (reserved.active_tasks, reserved.generation_state) == (
            1, GenerationState.generating,
        )  # fmt: skip
        with pytest.raises(Conflict):
            await prompts.delete_prompt(
                PromptQuery(owner_id=ALICE, prompt_id=prompt.id), deps.new_uow(), deps.clock
            )
        # The task's own events then count it once.
        for kind in (TaskEventType.task_created, TaskEventType.task_completed):
            await prompts.apply_task_event(
                task_event(prompt.id, kind, task_id=task_id, owner_id=ALICE),
                deps.new_uow(),
                deps.clock,
            )
        saved = store.committed.prompts[prompt.id]
        assert (saved.active_tasks, saved.completed_tasks) == (0, 1)

    async def test_reserving_twice_counts_once(self, deps, store, stored_prompt):
        prompt = stored_prompt(ALICE)
        task_id = uuid4()
        for _ in range(2):
            await prompts.reserve_generation(
                self.reservation(prompt.id, task_id), deps.new_uow(), deps.clock
            )
        assert store.committed.prompts[prompt.id].active_tasks == 1

    async def test_an_archived_or_unknown_prompt_cannot_be_reserved(self, deps, stored_prompt):
        archived = stored_prompt(ALICE, status=PromptStatus.archived)
        with pytest.raises(Conflict):
            await prompts.reserve_generation(
                self.reservation(archived.id, uuid4()), deps.new_uow(), deps.clock
            )
        mine = stored_prompt(ALICE)
        with pytest.raises(NotFound):
            await prompts.reserve_generation(
                self.reservation(mine.id, uuid4(), owner=BOB), deps.new_uow(), deps.clock
            )

    @pytest.mark.parametrize(
        "events",
        [
            (),
            (TaskEventType.task_created,),
            (TaskEventType.task_created, TaskEventType.task_completed),
        ],
        ids=["reserved", "created", "completed"],
    )
    async def test_a_reservation_sent_again_after_the_prompt_was_archived_is_granted_again(
        self, deps, store, stored_prompt, task_event, events
    ):
        """Redelivered or retried: the task that holds the reservation is not refused because
        the prompt was archived after it was granted; a new task still is."""
        prompt = stored_prompt(ALICE)
        task_id = uuid4()
        await prompts.reserve_generation(
            self.reservation(prompt.id, task_id), deps.new_uow(), deps.clock
        )
        for kind in events:
            await prompts.apply_task_event(
                task_event(prompt.id, kind, task_id=task_id, owner_id=ALICE),
                deps.new_uow(),
                deps.clock,
            )
        await prompts.set_status(
            SetPromptStatusCommand(
                owner_id=ALICE, prompt_id=prompt.id, status=PromptStatus.archived
            ),
            deps.new_uow(),
            deps.clock,
        )
        before = store.committed.prompts[prompt.id]
        counted = (before.active_tasks, before.completed_tasks, before.version)
        emitted = len(store.outbox)

        again = await prompts.reserve_generation(
            self.reservation(prompt.id, task_id), deps.new_uow(), deps.clock
        )

        assert again.id == prompt.id
        assert again.status is PromptStatus.archived
        after = store.committed.prompts[prompt.id]
        assert (after.active_tasks, after.completed_tasks, after.version) == counted
        assert len(store.outbox) == emitted  # nothing changed, nothing announced
        with pytest.raises(Conflict):
            await prompts.reserve_generation(
                self.reservation(prompt.id, uuid4()), deps.new_uow(), deps.clock
            )

    async def test_a_released_reservation_is_not_granted_again_on_an_archived_prompt(
        self, deps, store, stored_prompt
    ):
        prompt = stored_prompt(ALICE)
        task_id = uuid4()
        await prompts.reserve_generation(
            self.reservation(prompt.id, task_id), deps.new_uow(), deps.clock
        )
        await prompts.release_generation(
            self.reservation(prompt.id, task_id), deps.new_uow(), deps.clock
        )
        await prompts.set_status(
            SetPromptStatusCommand(
                owner_id=ALICE, prompt_id=prompt.id, status=PromptStatus.archived
            ),
            deps.new_uow(),
            deps.clock,
        )
        with pytest.raises(Conflict):
            await prompts.reserve_generation(
                self.reservation(prompt.id, task_id), deps.new_uow(), deps.clock
            )

    async def test_a_reservation_after_its_release_is_recorded_again(
        self, deps, store, stored_prompt
    ):
        """The images service tries the same task again (the same imagine sent again after
        its first attempt could not create the task): a new reservation, which holds the
        prompt as the first did, with its `prompt.updated`."""
        prompt = stored_prompt(ALICE)
        task_id = uuid4()
        for use_case in (prompts.reserve_generation, prompts.release_generation):
            await use_case(self.reservation(prompt.id, task_id), deps.new_uow(), lambda: T0)
        emitted = len(store.outbox)
        later = T0 + timedelta(minutes=1)

        again = await prompts.reserve_generation(
            self.reservation(prompt.id, task_id), deps.new_uow(), lambda: later
        )

        assert (again.active_tasks, again.generation_state) == (1, GenerationState.generating)
        saved = store.committed.prompts[prompt.id]
        assert (saved.active_tasks, saved.completed_tasks, saved.failed_tasks) == (1, 0, 0)
        assert store.committed.task_phases[task_id] == (prompt.id, TaskPhase.RESERVED, later)
        [announced] = store.outbox[emitted:]
        event = announced.read_as(PromptEvent)
        assert event.type.value == "prompt.updated"
        assert (event.prompt.active_tasks, event.version) == (1, saved.version)
        with pytest.raises(Conflict):
            await prompts.delete_prompt(
                PromptQuery(owner_id=ALICE, prompt_id=prompt.id), deps.new_uow(), deps.clock
            )
        # It expires like a first reservation, counted from when it was made again.
        assert await prompts.release_expired_reservations(
            deps.new_uow(), lambda: later + timedelta(minutes=10), older_than=timedelta(minutes=15)
        ) == 0  # fmt: skip

    async def test_a_released_reservation_frees_the_prompt(self, deps, store, stored_prompt):
        prompt = stored_prompt(ALICE)
        task_id = uuid4()
        await prompts.reserve_generation(
            self.reservation(prompt.id, task_id), deps.new_uow(), deps.clock
        )
        released = await prompts.release_generation(
            self.reservation(prompt.id, task_id), deps.new_uow(), deps.clock
        )
        assert (released.active_tasks, released.generation_state) == (0, GenerationState.idle)
        await prompts.delete_prompt(
            PromptQuery(owner_id=ALICE, prompt_id=prompt.id), deps.new_uow(), deps.clock
        )

    async def test_reservations_whose_task_never_came_expire(self, deps, store, stored_prompt):
        prompt = stored_prompt(ALICE)
        old, recent = uuid4(), uuid4()
        await prompts.reserve_generation(
            self.reservation(prompt.id, old), deps.new_uow(), lambda: T0
        )
        await prompts.reserve_generation(
            self.reservation(prompt.id, recent), deps.new_uow(), lambda: T0 + timedelta(hours=1)
        )
        released = await prompts.release_expired_reservations(
            deps.new_uow(), lambda: T0 + timedelta(minutes=70), older_than=timedelta(minutes=15)
        )
        assert released == 1
        assert store.committed.task_phases[old][1] is TaskPhase.RELEASED
        assert store.committed.task_phases[recent][1] is TaskPhase.RESERVED
        assert store.committed.prompts[prompt.id].active_tasks == 1


class TestApplyTaskEvent:
    async def apply(self, deps, event):
        return await prompts.apply_task_event(event, deps.new_uow(), deps.clock)

    async def test_an_event_older_than_one_applied_is_stale(
        self, deps, store, stored_prompt, task_event
    ):
        prompt = stored_prompt(ALICE)
        task_id = uuid4()

        def event(kind, version):
            return task_event(prompt.id, kind, task_id=task_id, owner_id=ALICE, version=version)

        assert await self.apply(deps, event(TaskEventType.task_created, 1)) is (
            TaskEventOutcome.APPLIED
        )
        assert await self.apply(deps, event(TaskEventType.task_failed, 4)) is (
            TaskEventOutcome.APPLIED
        )
        # A reordered event of the same task, older than the failure: dropped.
        assert await self.apply(deps, event(TaskEventType.task_completed, 3)) is (
            TaskEventOutcome.STALE
        )
        saved = store.committed.prompts[prompt.id]
        assert (saved.active_tasks, saved.completed_tasks, saved.failed_tasks) == (0, 0, 1)

    async def test_events_announce_the_prompts_next_version(self, deps, store, stored_prompt):
        prompt = stored_prompt(ALICE)
        await prompts.set_status(
            SetPromptStatusCommand(
                owner_id=ALICE, prompt_id=prompt.id, status=PromptStatus.approved
            ),
            deps.new_uow(),
            deps.clock,
        )
        await prompts.delete_prompt(
            PromptQuery(owner_id=ALICE, prompt_id=prompt.id), deps.new_uow(), deps.clock
        )
        versions = [e.payload["version"] for e in store.outbox]
        assert versions == [prompt.version + 1, prompt.version + 2]

    def prompt_events(self, store):
        return [e.read_as(PromptEvent) for e in store.outbox]

    async def test_created_task_counts_as_active_and_emits_prompt_updated(
        self, deps, store, stored_prompt, task_event
    ):
        prompt = stored_prompt(ALICE)
        event = task_event(prompt.id, TaskEventType.task_created, task_id=uuid4(), owner_id=ALICE)
        assert await self.apply(deps, event) is TaskEventOutcome.APPLIED
        saved = store.committed.prompts[prompt.id]
        assert (saved.active_tasks, saved.generation_state) == (1, GenerationState.generating)
        assert saved.updated_at > prompt.updated_at
        [emitted] = store.outbox
        assert emitted.subject == f"events.prompts.{ALICE}.prompt.updated"
        assert emitted.payload["type"] == "prompt.updated"
        assert emitted.payload["prompt"]["active_tasks"] == 1
        assert (TASK_EVENTS_CONSUMER, str(event.id)) in store.inbox
        assert store.committed.task_phases[event.task.id][:2] == (prompt.id, TaskPhase.ACTIVE)

    async def test_completed_task_makes_the_prompt_generated(
        self, deps, store, stored_prompt, task_event
    ):
        prompt = stored_prompt(ALICE)
        task_id = uuid4()
        await self.apply(
            deps, task_event(prompt.id, TaskEventType.task_created, task_id=task_id, owner_id=ALICE)
        )
        await self.apply(
            deps,
            task_event(prompt.id, TaskEventType.task_completed, task_id=task_id, owner_id=ALICE),
        )
        saved = store.committed.prompts[prompt.id]
        assert (saved.active_tasks, saved.completed_tasks, saved.failed_tasks) == (0, 1, 0)
        assert saved.generation_state is GenerationState.generated
        assert [e.prompt.generation_state for e in self.prompt_events(store)] == [
            GenerationState.generating,
            GenerationState.generated,
        ]

    @pytest.mark.parametrize(
        ("end", "counters", "state"),
        [
            (TaskEventType.task_failed, (0, 0, 1), GenerationState.failed),
            (TaskEventType.task_cancelled, (0, 0, 0), GenerationState.idle),
        ],
    )
    async def test_failed_and_cancelled_tasks_end(
        self, deps, store, stored_prompt, end, counters, state, task_event
    ):
        prompt = stored_prompt(ALICE)
        task_id = uuid4()
        await self.apply(
            deps, task_event(prompt.id, TaskEventType.task_created, task_id=task_id, owner_id=ALICE)
        )
        ended = task_event(prompt.id, end, task_id=task_id, owner_id=ALICE)
        assert await self.apply(deps, ended) is TaskEventOutcome.APPLIED
        saved = store.committed.prompts[prompt.id]
        assert (saved.active_tasks, saved.completed_tasks, saved.failed_tasks) == counters
        assert saved.generation_state is state

    async def test_same_event_twice_is_applied_once(self, deps, store, stored_prompt, task_event):
        prompt = stored_prompt(ALICE)
        event = task_event(prompt.id, TaskEventType.task_created, task_id=uuid4(), owner_id=ALICE)
        assert await self.apply(deps, event) is TaskEventOutcome.APPLIED
        assert await self.apply(deps, event) is TaskEventOutcome.DUPLICATE
        assert store.committed.prompts[prompt.id].active_tasks == 1
        assert len(store.outbox) == 1

    async def test_second_created_event_for_the_same_task_changes_nothing(
        self, deps, store, stored_prompt, task_event
    ):
        prompt = stored_prompt(ALICE)
        task_id = uuid4()
        await self.apply(
            deps, task_event(prompt.id, TaskEventType.task_created, task_id=task_id, owner_id=ALICE)
        )
        again = task_event(prompt.id, TaskEventType.task_created, task_id=task_id, owner_id=ALICE)
        assert await self.apply(deps, again) is TaskEventOutcome.UNCHANGED
        assert store.committed.prompts[prompt.id].active_tasks == 1
        assert len(store.outbox) == 1
        assert (TASK_EVENTS_CONSUMER, str(again.id)) in store.inbox

    async def test_completed_overtaking_created_counts_once(
        self, deps, store, stored_prompt, task_event
    ):
        prompt = stored_prompt(ALICE)
        task_id = uuid4()
        completed = task_event(
            prompt.id, TaskEventType.task_completed, task_id=task_id, owner_id=ALICE
        )
        created = task_event(prompt.id, TaskEventType.task_created, task_id=task_id, owner_id=ALICE)
        assert await self.apply(deps, completed) is TaskEventOutcome.APPLIED
        assert await self.apply(deps, created) is TaskEventOutcome.UNCHANGED
        saved = store.committed.prompts[prompt.id]
        assert (saved.active_tasks, saved.completed_tasks) == (0, 1)
        assert saved.generation_state is GenerationState.generated

    @pytest.mark.parametrize(
        "event_type", [TaskEventType.task_submitted, TaskEventType.task_progress]
    )
    async def test_submitted_and_progress_are_ignored(
        self, deps, store, stored_prompt, event_type, task_event
    ):
        prompt = stored_prompt(ALICE)
        event = task_event(prompt.id, event_type, task_id=uuid4(), owner_id=ALICE)
        assert await self.apply(deps, event) is TaskEventOutcome.IGNORED
        assert store.commits == 0
        assert store.inbox == set()

    async def test_unknown_prompt_is_a_noop(self, deps, store, task_event):
        event = task_event(uuid4(), TaskEventType.task_created, task_id=uuid4(), owner_id=ALICE)
        assert await self.apply(deps, event) is TaskEventOutcome.UNKNOWN_PROMPT
        assert store.commits == 0
        assert store.outbox == []

    async def test_event_of_another_owner_does_not_touch_the_prompt(
        self, deps, store, stored_prompt, task_event
    ):
        prompt = stored_prompt(ALICE)
        event = task_event(prompt.id, TaskEventType.task_created, task_id=uuid4(), owner_id=BOB)
        assert await self.apply(deps, event) is TaskEventOutcome.UNKNOWN_PROMPT
        assert store.committed.prompts[prompt.id].active_tasks == 0

    async def test_failure_rolls_back_the_claim_so_a_redelivery_applies_it(
        self, deps, store, stored_prompt, make_uow, task_event
    ):
        prompt = stored_prompt(ALICE)
        event = task_event(prompt.id, TaskEventType.task_created, task_id=uuid4(), owner_id=ALICE)
        with pytest.raises(ConnectionError):
            await prompts.apply_task_event(event, make_uow(fail_on_save=True), deps.clock)
        assert store.inbox == set()
        assert store.committed.task_phases == {}
        assert await self.apply(deps, event) is TaskEventOutcome.APPLIED
        assert store.committed.prompts[prompt.id].active_tasks == 1


class TestListFilters:
    async def test_status_chat_and_text_filters_combine(self, deps, stored_prompt):
        chat_id = uuid4()
        approved_pear = stored_prompt(
            ALICE, "a ripe PEAR", status=PromptStatus.approved, chat_id=chat_id
        )
        stored_prompt(ALICE, "a ripe pear", chat_id=chat_id)  # status new
        titled = stored_prompt(ALICE, "a fig", title="Pear tree", status=PromptStatus.approved)
        stored_prompt(BOB, "a pear", status=PromptStatus.approved)

        async def ids(**filters):
            page = await prompts.list_prompts(
                ListPromptsQuery(owner_id=ALICE, **filters), deps.new_uow()
            )
            return {p.id for p in page.items}

        assert await ids(status=PromptStatus.approved) == {approved_pear.id, titled.id}
        assert await ids(status=PromptStatus.approved, q="pear") == {approved_pear.id, titled.id}
        assert await ids(status=PromptStatus.approved, chat_id=chat_id) == {approved_pear.id}
        assert await ids(q="  tree ") == {titled.id}
        assert await ids(q="nothing like it") == set()

    async def test_a_filtered_listing_pages_through_matches_only(self, deps, stored_prompt):
        matching = [stored_prompt(ALICE, f"pear {i}") for i in range(5)]
        for i in range(5):
            stored_prompt(ALICE, f"fig {i}")
        seen, cursor = [], None
        while True:
            page = await prompts.list_prompts(
                ListPromptsQuery(owner_id=ALICE, q="pear", limit=2, cursor=cursor), deps.new_uow()
            )
            seen += [p.id for p in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == [p.id for p in reversed(matching)]


class TestUpdatePrompt:
    async def test_edits_text_and_title_and_emits_prompt_updated(self, deps, store, stored_prompt):
        stored = stored_prompt(ALICE, title="Old")
        prompt = await prompts.update_prompt(
            UpdatePromptCommand(
                owner_id=ALICE, prompt_id=stored.id, text="a new text", title="Pears, figs"
            ),
            deps.new_uow(),
            deps.clock,
        )
        assert (prompt.text, prompt.title) == ("a new text", "Pears, figs")
        # The comma is allowed, and reported.
        assert [f.code.value for f in prompt.findings] == ["title_comma"]
        assert store.committed.prompts[stored.id].text == "a new text"
        [emitted] = store.outbox
        assert emitted.subject == f"events.prompts.{ALICE}.prompt.updated"
        assert emitted.read_as(PromptEvent).prompt == prompt

    async def test_clear_title_removes_it(self, deps, store, stored_prompt):
        stored = stored_prompt(ALICE, title="Old")
        prompt = await prompts.update_prompt(
            UpdatePromptCommand(owner_id=ALICE, prompt_id=stored.id, clear_title=True),
            deps.new_uow(),
            deps.clock,
        )
        assert prompt.title is None
        assert [f.code.value for f in prompt.findings] == ["title_missing"]

    async def test_no_change_emits_nothing(self, deps, store, stored_prompt):
        stored = stored_prompt(ALICE, title="Old")
        await prompts.update_prompt(
            UpdatePromptCommand(owner_id=ALICE, prompt_id=stored.id, title="Old"),
            deps.new_uow(),
            deps.clock,
        )
        assert store.outbox == []
        assert store.commits == 0

    async def test_invalid_text_is_422_and_changes_nothing(self, deps, store, stored_prompt):
        stored = stored_prompt(ALICE)
        with pytest.raises(InvalidRequest):
            await prompts.update_prompt(
                UpdatePromptCommand(owner_id=ALICE, prompt_id=stored.id, text="  "),
                deps.new_uow(),
                deps.clock,
            )
        assert store.committed.prompts[stored.id].text == stored.text

    async def test_another_owners_prompt_is_404(self, deps, stored_prompt):
        stored = stored_prompt(ALICE)
        with pytest.raises(NotFound):
            await prompts.update_prompt(
                UpdatePromptCommand(owner_id=BOB, prompt_id=stored.id, text="mine"),
                deps.new_uow(),
                deps.clock,
            )


class TestSetStatus:
    async def test_sets_the_status_and_emits_prompt_updated(self, deps, store, stored_prompt):
        stored = stored_prompt(ALICE)
        prompt = await prompts.set_status(
            SetPromptStatusCommand(owner_id=ALICE, prompt_id=stored.id, status="approved"),
            deps.new_uow(),
            deps.clock,
        )
        assert prompt.status is PromptStatus.approved
        assert store.committed.prompts[stored.id].status is PromptStatus.approved
        assert [e.payload["type"] for e in store.outbox] == ["prompt.updated"]

    async def test_same_status_emits_nothing(self, deps, store, stored_prompt):
        stored = stored_prompt(ALICE)
        await prompts.set_status(
            SetPromptStatusCommand(owner_id=ALICE, prompt_id=stored.id, status="new"),
            deps.new_uow(),
            deps.clock,
        )
        assert store.outbox == []

    async def test_archiving_stops_generation_and_unarchiving_allows_it_again(
        self, deps, stored_prompt
    ):
        stored = stored_prompt(ALICE)
        query = PromptQuery(owner_id=ALICE, prompt_id=stored.id)
        for status, allowed in [("archived", False), ("rejected", True)]:
            await prompts.set_status(
                SetPromptStatusCommand(owner_id=ALICE, prompt_id=stored.id, status=status),
                deps.new_uow(),
                deps.clock,
            )
            if allowed:
                await prompts.prepare_generation(query, deps.new_uow())
            else:
                with pytest.raises(Conflict):
                    await prompts.prepare_generation(query, deps.new_uow())


class TestDeletePrompt:
    async def test_deletes_and_emits_prompt_deleted_with_its_last_state(
        self, deps, store, stored_prompt
    ):
        stored = stored_prompt(ALICE, title="Pear")
        deleted = await prompts.delete_prompt(
            PromptQuery(owner_id=ALICE, prompt_id=stored.id), deps.new_uow(), deps.clock
        )
        assert stored.id not in store.committed.prompts
        [emitted] = store.outbox
        assert emitted.subject == f"events.prompts.{ALICE}.prompt.deleted"
        assert emitted.payload["type"] == "prompt.deleted"
        assert emitted.read_as(PromptEvent).prompt == deleted
        assert deleted.title == "Pear"

    async def test_a_prompt_with_an_active_task_is_409_and_stays(
        self, deps, store, stored_prompt, task_event
    ):
        stored = stored_prompt(ALICE)
        task_id = uuid4()
        created = task_event(stored.id, TaskEventType.task_created, task_id=task_id, owner_id=ALICE)
        await prompts.apply_task_event(created, deps.new_uow(), deps.clock)
        query = PromptQuery(owner_id=ALICE, prompt_id=stored.id)
        with pytest.raises(Conflict):
            await prompts.delete_prompt(query, deps.new_uow(), deps.clock)
        assert stored.id in store.committed.prompts

        # Once the task has ended, it may go; a late event about it is then a no-op.
        completed = task_event(
            stored.id, TaskEventType.task_completed, task_id=task_id, owner_id=ALICE
        )
        await prompts.apply_task_event(completed, deps.new_uow(), deps.clock)
        await prompts.delete_prompt(query, deps.new_uow(), deps.clock)
        assert stored.id not in store.committed.prompts
        late = task_event(stored.id, TaskEventType.task_failed, task_id=task_id, owner_id=ALICE)
        outcome = await prompts.apply_task_event(late, deps.new_uow(), deps.clock)
        assert outcome is TaskEventOutcome.UNKNOWN_PROMPT

    async def test_another_owners_prompt_is_404(self, deps, store, stored_prompt):
        stored = stored_prompt(ALICE)
        with pytest.raises(NotFound):
            await prompts.delete_prompt(
                PromptQuery(owner_id=BOB, prompt_id=stored.id), deps.new_uow(), deps.clock
            )
        assert stored.id in store.committed.prompts
