"""The language-model use cases against fakes of their ports: the scripted model and the
in-memory unit of work. What is stored, what is emitted, and that a failed answer stores
nothing but its ledger entry."""

from __future__ import annotations

from uuid import UUID

import pytest

from imagetron_contracts.models.chats import (
    ChatEvent,
    ChatQuery,
    ChatRole,
    ContinueChatCommand,
    ListChatsQuery,
    StartChatCommand,
)
from imagetron_contracts.models.prompts import (
    GeneratePromptsCommand,
    PromptEvent,
    PromptQuery,
    StockFindingCode,
    SuggestStockMetadataCommand,
)
from imagetron_platform.errors import BadGateway, InvalidRequest, NotFound, ServiceTimeout
from imagetron_prompts.app import chats, workshop
from imagetron_prompts.app.assistant import HISTORY_MESSAGES
from imagetron_prompts.app.ports import LlmError, LlmOutcome, LlmPurpose
from imagetron_prompts.domain.usage import TokenUsage

ALICE = UUID("00000000-0000-4000-8000-00000000a11c")
BOB = UUID("00000000-0000-4000-8000-000000000b0b")
SPENT = TokenUsage(model="scripted-model", prompt_tokens=30, completion_tokens=9, attempts=3)


def ideas(*subjects: str, reply: str = "Here are some ideas.") -> dict:
    return {"reply": reply, "subjects": list(subjects)}


def drafts(count: int, **overrides) -> dict:
    return {
        "prompts": [
            {
                "subject": f"a ripe pear number {i} on linen",
                "style": "oil painting",
                "lighting": "soft window light",
                "composition": "close-up",
                "title": f"Ripe pear {i} on linen",
                **overrides,
            }
            for i in range(count)
        ]
    }


def failure(outcome: LlmOutcome, detail: str = "it went wrong") -> LlmError:
    return LlmError(outcome, detail, SPENT)


async def start(deps, brief="autumn still lifes for stock", count=None):
    cmd = StartChatCommand(owner_id=ALICE, brief=brief, count=count)
    return await chats.start_chat(cmd, deps.new_uow, deps.llm, deps.clock)


class TestStartChat:
    async def test_stores_the_brief_and_the_answer_and_emits_chat_created(self, deps, store, llm):
        llm.answers(ideas(" Pears on slate ", "pears on slate", "Figs in a bowl"))
        chat = await start(deps)
        assert chat.title == "autumn still lifes for stock"
        assert [(m.position, m.role) for m in chat.messages] == [
            (0, ChatRole.user),
            (1, ChatRole.assistant),
        ]
        asked, answered = chat.messages
        assert asked.content == "autumn still lifes for stock"
        assert asked.usage is None
        # Tidied and deduplicated, in the model's order.
        assert [s.text for s in answered.subjects] == ["Pears on slate", "Figs in a bowl"]
        assert answered.usage is not None
        assert answered.usage.total_tokens == 15
        stored = store.committed.chats[chat.id]
        assert stored.message_count == 2
        [call] = store.committed.llm_calls
        assert (call.purpose, call.outcome, call.chat_id) == (
            LlmPurpose.CHAT_START,
            LlmOutcome.OK,
            chat.id,
        )
        assert stored.messages[1].llm_call_id == call.id
        [emitted] = store.outbox
        assert emitted.subject == f"events.prompts.{ALICE}.chat.created"
        assert emitted.read_as(ChatEvent).messages == chat.messages
        assert store.commits == 1

    async def test_the_model_gets_instructions_then_the_brief(self, deps, llm):
        llm.answers(ideas("a pear", "two pears", "a pear cut open", "pear leaves"))
        await start(deps, brief="pears", count=4)
        [asked] = llm.asked
        assert [(m.role, m.content) for m in asked.messages][1:] == [("user", "pears")]
        system = asked.messages[0]
        assert system.role == "system"
        assert "exactly 4 subjects" in system.content
        assert "never name artists" in system.content
        schema = asked.answer_type.model_json_schema()
        assert (
            schema["properties"]["subjects"]["minItems"],
            schema["properties"]["subjects"]["maxItems"],
        ) == (4, 4)

    async def test_subjects_naming_a_brand_carry_a_finding(self, deps, llm):
        llm.answers(ideas("a can of Coca-Cola on ice", "a pear"))
        chat = await start(deps)
        branded, plain = chat.messages[1].subjects
        assert [f.code for f in branded.findings] == [StockFindingCode.brand]
        assert plain.findings == []

    async def test_a_blank_brief_is_422_and_the_model_is_not_asked(self, deps, store, llm):
        with pytest.raises(InvalidRequest):
            await start(deps, brief="   ")
        assert llm.asked == []
        assert store.commits == 0

    @pytest.mark.parametrize(
        ("outcome", "problem", "cause"),
        [
            (LlmOutcome.MALFORMED, BadGateway, "its answer was malformed"),
            (LlmOutcome.REFUSED, BadGateway, "it refused to answer"),
            (LlmOutcome.RATE_LIMITED, BadGateway, "rate-limiting"),
            (LlmOutcome.UPSTREAM_ERROR, BadGateway, "the provider failed"),
            (LlmOutcome.TIMEOUT, ServiceTimeout, "did not answer in time"),
        ],
    )
    async def test_a_failed_answer_stores_no_chat_only_its_cost(
        self, deps, store, llm, outcome, problem, cause
    ):
        llm.answers(failure(outcome, "the details"))
        with pytest.raises(problem) as caught:
            await start(deps)
        assert cause in caught.value.detail
        assert "the details" in caught.value.detail
        assert "Nothing was saved" in caught.value.detail
        assert store.committed.chats == {}
        assert store.outbox == []
        [call] = store.committed.llm_calls
        assert (call.outcome, call.usage, call.owner_id) == (outcome, SPENT, ALICE)

    async def test_an_answer_without_subjects_is_rejected_as_malformed(self, deps, store, llm):
        llm.answers(ideas("  ", ""))
        with pytest.raises(BadGateway, match="malformed"):
            await start(deps)
        assert store.committed.chats == {}


class TestContinueChat:
    async def test_appends_the_exchange_after_the_history(self, deps, store, llm):
        llm.answers(ideas("pears on slate", "figs"), ideas("one pear on slate"))
        chat = await start(deps)
        cmd = ContinueChatCommand(owner_id=ALICE, chat_id=chat.id, text="only pears", count=1)
        continued = await chats.continue_chat(cmd, deps.new_uow, deps.llm, deps.clock)
        assert [m.position for m in continued.messages] == [0, 1, 2, 3]
        assert continued.messages[2].content == "only pears"
        assert [s.text for s in continued.messages[3].subjects] == ["one pear on slate"]
        assert store.committed.chats[chat.id].message_count == 4
        # The model saw the whole conversation, its own answer in its own format.
        roles = [(m.role, m.content) for m in llm.asked[1].messages[1:]]
        assert roles[0] == ("user", "autumn still lifes for stock")
        assert roles[1][0] == "assistant"
        assert '"subjects": ["pears on slate", "figs"]' in roles[1][1]
        assert roles[2] == ("user", "only pears")
        updated = store.outbox[-1]
        assert updated.subject == f"events.prompts.{ALICE}.chat.updated"
        assert [m["position"] for m in updated.payload["messages"]] == [2, 3]

    async def test_long_chats_send_the_brief_and_the_latest_messages(self, deps, llm):
        llm.answers(ideas("a"))
        chat = await start(deps)
        for i in range(HISTORY_MESSAGES):
            llm.answers(ideas(f"subject {i}"))
            cmd = ContinueChatCommand(owner_id=ALICE, chat_id=chat.id, text=f"more {i}")
            await chats.continue_chat(cmd, deps.new_uow, deps.llm, deps.clock)
        sent = llm.asked[-1].messages
        assert sent[1].content == "autumn still lifes for stock"
        assert len(sent) == 1 + 1 + HISTORY_MESSAGES + 1
        assert sent[-1].content == f"more {HISTORY_MESSAGES - 1}"

    async def test_another_owners_chat_is_404_and_the_model_is_not_asked(self, deps, llm):
        llm.answers(ideas("a pear"))
        chat = await start(deps)
        cmd = ContinueChatCommand(owner_id=BOB, chat_id=chat.id, text="mine now")
        with pytest.raises(NotFound):
            await chats.continue_chat(cmd, deps.new_uow, deps.llm, deps.clock)
        assert len(llm.asked) == 1

    async def test_a_chat_deleted_while_the_model_thinks_gets_nothing(self, deps, store, llm):
        llm.answers(ideas("a pear"))
        chat = await start(deps)

        def delete_meanwhile(messages):
            del store.committed.chats[chat.id]
            return ideas("a fig")

        llm.answers(delete_meanwhile)
        cmd = ContinueChatCommand(owner_id=ALICE, chat_id=chat.id, text="more")
        with pytest.raises(NotFound):
            await chats.continue_chat(cmd, deps.new_uow, deps.llm, deps.clock)
        assert chat.id not in store.committed.chats

    async def test_a_failed_answer_leaves_the_chat_as_it_was(self, deps, store, llm):
        llm.answers(ideas("a pear"), failure(LlmOutcome.REFUSED))
        chat = await start(deps)
        cmd = ContinueChatCommand(owner_id=ALICE, chat_id=chat.id, text="something else")
        with pytest.raises(BadGateway):
            await chats.continue_chat(cmd, deps.new_uow, deps.llm, deps.clock)
        assert store.committed.chats[chat.id].message_count == 2
        assert [c.outcome for c in store.committed.llm_calls] == [
            LlmOutcome.OK,
            LlmOutcome.REFUSED,
        ]


class TestReadListDeleteChats:
    async def test_get_is_owner_scoped(self, deps, llm):
        llm.answers(ideas("a pear"))
        chat = await start(deps)
        got = await chats.get_chat(ChatQuery(owner_id=ALICE, chat_id=chat.id), deps.new_uow())
        assert got == chat
        with pytest.raises(NotFound):
            await chats.get_chat(ChatQuery(owner_id=BOB, chat_id=chat.id), deps.new_uow())

    async def test_list_pages_newest_first(self, deps, llm):
        created = []
        for i in range(3):
            llm.answers(ideas("a pear"))
            created.append(await start(deps, brief=f"brief {i}"))
        seen, cursor = [], None
        while True:
            page = await chats.list_chats(
                ListChatsQuery(owner_id=ALICE, limit=2, cursor=cursor), deps.new_uow()
            )
            seen += [c.id for c in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == [c.id for c in reversed(created)]
        empty = await chats.list_chats(ListChatsQuery(owner_id=BOB), deps.new_uow())
        assert empty.items == []

    async def test_delete_keeps_its_prompts_unlinked_and_announces_everything(
        self, deps, store, llm
    ):
        llm.answers(ideas("a pear"), drafts(2))
        chat = await start(deps)
        generated = await workshop.generate_prompts(
            GeneratePromptsCommand(owner_id=ALICE, subject="a pear", count=2, chat_id=chat.id),
            deps.new_uow,
            deps.llm,
            deps.clock,
        )
        before = len(store.outbox)
        await chats.delete_chat(
            ChatQuery(owner_id=ALICE, chat_id=chat.id), deps.new_uow(), deps.clock
        )
        assert chat.id not in store.committed.chats
        for prompt in generated.prompts:
            assert store.committed.prompts[prompt.id].chat_id is None
        subjects = [e.subject.rsplit(".", 2)[-2:] for e in store.outbox[before:]]
        assert subjects == [["prompt", "updated"], ["prompt", "updated"], ["chat", "deleted"]]

    async def test_delete_of_another_owners_chat_is_404(self, deps, store, llm):
        llm.answers(ideas("a pear"))
        chat = await start(deps)
        with pytest.raises(NotFound):
            await chats.delete_chat(
                ChatQuery(owner_id=BOB, chat_id=chat.id), deps.new_uow(), deps.clock
            )
        assert chat.id in store.committed.chats


async def generate(deps, **changes):
    args = {"owner_id": ALICE, "subject": "a ripe pear on linen", "count": 3}
    args.update(changes)
    return await workshop.generate_prompts(
        GeneratePromptsCommand(**args), deps.new_uow, deps.llm, deps.clock
    )


class TestGeneratePrompts:
    async def test_stores_n_prompts_with_titles_and_the_aspect_ratio(self, deps, store, llm):
        llm.answers(drafts(3))
        result = await generate(deps, aspect_ratio="16:9")
        assert len(result.prompts) == 3
        for i, prompt in enumerate(result.prompts):
            assert prompt.text == (
                f"a ripe pear number {i} on linen, oil painting, soft window light, close-up "
                "--ar 16:9"
            )
            assert prompt.title == f"Ripe pear {i} on linen"
            assert prompt.findings == []
            assert prompt.chat_id is None
            assert store.committed.prompts[prompt.id].text == prompt.text
        assert (result.usage.total_tokens, result.usage.attempts) == (15, 1)
        events = [e.read_as(PromptEvent) for e in store.outbox]
        assert [e.type.value for e in events] == ["prompt.created"] * 3
        [call] = store.committed.llm_calls
        assert call.purpose is LlmPurpose.GENERATE_PROMPTS
        assert store.commits == 1

    async def test_asks_for_exactly_n_prompts(self, deps, llm):
        llm.answers(drafts(5))
        await generate(deps, count=5, style="watercolor")
        [asked] = llm.asked
        prompts = asked.answer_type.model_json_schema()["properties"]["prompts"]
        assert (prompts["minItems"], prompts["maxItems"]) == (5, 5)
        assert asked.messages[-1].content == "a ripe pear on linen\nStyle direction: watercolor"
        assert "Write exactly 5 prompts" in asked.messages[0].content

    async def test_a_wrong_number_of_prompts_is_malformed_and_nothing_is_stored(
        self, deps, store, llm
    ):
        llm.answers(drafts(2))
        with pytest.raises(BadGateway, match="malformed"):
            await generate(deps, count=3)
        assert store.committed.prompts == {}
        assert [c.outcome for c in store.committed.llm_calls] == [LlmOutcome.MALFORMED]

    @pytest.mark.parametrize(
        "title", ["Pears, apples and figs", "x" * 71, "ab"], ids=["comma", "too long", "short"]
    )
    async def test_a_draft_with_an_unready_title_makes_the_answer_malformed(
        self, deps, store, llm, title
    ):
        llm.answers(drafts(3, title=title))
        with pytest.raises(BadGateway, match="malformed"):
            await generate(deps)
        assert store.committed.prompts == {}

    async def test_names_in_generated_prompts_are_findings_not_refusals(self, deps, llm):
        llm.answers(drafts(1, style="in the style of Greg Rutkowski"))
        [prompt] = (await generate(deps, count=1)).prompts
        assert [f.code for f in prompt.findings] == [StockFindingCode.artist_name]

    async def test_prompts_are_linked_to_the_chat(self, deps, store, llm):
        llm.answers(ideas("a pear"), drafts(2))
        chat = await start(deps)
        result = await generate(deps, count=2, chat_id=chat.id)
        assert {p.chat_id for p in result.prompts} == {chat.id}
        assert store.committed.llm_calls[-1].chat_id == chat.id

    async def test_someone_elses_chat_is_404_before_the_model_is_asked(self, deps, llm):
        llm.answers(ideas("a pear"))
        chat = await start(deps)
        with pytest.raises(NotFound):
            await generate(deps, owner_id=BOB, chat_id=chat.id)
        assert len(llm.asked) == 1

    @pytest.mark.parametrize(
        ("changes", "loc"),
        [
            ({"subject": "  "}, "subject"),
            ({"count": 11}, "count"),
            ({"style": "s" * 201}, "style"),
            ({"aspect_ratio": "wide"}, "aspect_ratio"),
        ],
    )
    async def test_invalid_requests_are_422_without_asking(self, deps, llm, changes, loc):
        # Unvalidated, as a peer that ignores the schema could send it.
        cmd = GeneratePromptsCommand.model_construct(
            owner_id=ALICE,
            subject=changes.get("subject", "a pear"),
            count=changes.get("count", 3),
            style=changes.get("style"),
            aspect_ratio=changes.get("aspect_ratio", "1:1"),
            chat_id=None,
        )
        with pytest.raises(InvalidRequest) as caught:
            await workshop.generate_prompts(cmd, deps.new_uow, deps.llm, deps.clock)
        assert [e.loc for e in caught.value.errors or []] == [[loc]]
        assert llm.asked == []


class TestRetitle:
    async def test_takes_the_first_title_that_differs_and_announces_it(
        self, deps, store, llm, stored_prompt
    ):
        prompt = stored_prompt(ALICE, "a ripe pear on linen", title="Ripe pear")
        llm.answers({"titles": ["ripe  PEAR", "Pear on linen cloth", "A single pear"]})
        retitled = await workshop.retitle_prompt(
            PromptQuery(owner_id=ALICE, prompt_id=prompt.id), deps.new_uow, deps.llm, deps.clock
        )
        assert retitled.title == "Pear on linen cloth"
        assert store.committed.prompts[prompt.id].title == "Pear on linen cloth"
        [event] = store.outbox
        assert event.subject == f"events.prompts.{ALICE}.prompt.updated"
        assert (
            llm.asked[0].messages[-1].content
            == "Prompt: a ripe pear on linen\nCurrent title: Ripe pear"
        )
        assert store.committed.llm_calls[0].prompt_id == prompt.id

    async def test_prefers_a_title_without_findings(self, deps, llm, stored_prompt):
        prompt = stored_prompt(ALICE, "a sneaker", title=None)
        llm.answers({"titles": ["Nike sneaker", "White sneaker on blue", "Sneaker"]})
        retitled = await workshop.retitle_prompt(
            PromptQuery(owner_id=ALICE, prompt_id=prompt.id), deps.new_uow, deps.llm, deps.clock
        )
        assert retitled.title == "White sneaker on blue"

    async def test_titles_all_equal_to_the_current_one_are_rejected(
        self, deps, store, llm, stored_prompt
    ):
        prompt = stored_prompt(ALICE, "a pear", title="Pear")
        llm.answers({"titles": ["Pear", "pear", " PEAR "]})
        with pytest.raises(BadGateway, match="malformed"):
            await workshop.retitle_prompt(
                PromptQuery(owner_id=ALICE, prompt_id=prompt.id), deps.new_uow, deps.llm, deps.clock
            )
        assert store.committed.prompts[prompt.id].title == "Pear"
        assert store.outbox == []

    async def test_another_owners_prompt_is_404_without_asking(self, deps, llm, stored_prompt):
        prompt = stored_prompt(ALICE)
        with pytest.raises(NotFound):
            await workshop.retitle_prompt(
                PromptQuery(owner_id=BOB, prompt_id=prompt.id), deps.new_uow, deps.llm, deps.clock
            )
        assert llm.asked == []

    async def test_a_prompt_deleted_while_the_model_thinks_is_404(
        self, deps, store, llm, stored_prompt
    ):
        prompt = stored_prompt(ALICE)

        def delete_meanwhile(messages):
            del store.committed.prompts[prompt.id]
            return {"titles": ["One title", "Two title", "Three title"]}

        llm.answers(delete_meanwhile)
        with pytest.raises(NotFound):
            await workshop.retitle_prompt(
                PromptQuery(owner_id=ALICE, prompt_id=prompt.id), deps.new_uow, deps.llm, deps.clock
            )
        assert store.outbox == []


class TestStockMetadata:
    async def test_keywords_come_back_clean_and_the_call_is_in_the_ledger(self, deps, store, llm):
        llm.answers(
            {
                "title": "Ripe  pear on linen",
                "keywords": ["pear", "Pear", " fruit ", "linen  cloth", "still life"] * 2,
                "category": 7,
                "photo_realistic": True,
                "shows_people_or_property": False,
            }
        )
        prompt_id = UUID(int=7)
        suggestion = await workshop.suggest_stock_metadata(
            SuggestStockMetadataCommand(
                owner_id=ALICE, prompt_id=prompt_id, prompt_text="a pear", title="Pear"
            ),
            deps.new_uow,
            deps.llm,
            deps.clock,
        )
        assert suggestion.title == "Ripe pear on linen"
        assert suggestion.keywords == ["pear", "fruit", "linen cloth", "still life"]
        assert (suggestion.category, suggestion.photo_realistic) == (7, True)
        [call] = store.committed.llm_calls
        assert (call.purpose, call.prompt_id) == (LlmPurpose.STOCK_METADATA, prompt_id)
        assert llm.asked[0].messages[-1].content == "Prompt: a pear\nCurrent title: Pear"
        assert store.outbox == []

    async def test_a_model_failure_is_a_502_with_only_the_ledger_written(self, deps, store, llm):
        llm.answers(failure(LlmOutcome.REFUSED))
        with pytest.raises(BadGateway, match="refused"):
            await workshop.suggest_stock_metadata(
                SuggestStockMetadataCommand(owner_id=ALICE, prompt_text="a pear"),
                deps.new_uow,
                deps.llm,
                deps.clock,
            )
        [call] = store.committed.llm_calls
        assert call.outcome is LlmOutcome.REFUSED

    async def test_blank_prompt_text_is_refused_without_asking(self, deps, llm):
        with pytest.raises(InvalidRequest):
            await workshop.suggest_stock_metadata(
                SuggestStockMetadataCommand(owner_id=ALICE, prompt_text="  "),
                deps.new_uow,
                deps.llm,
                deps.clock,
            )
        assert llm.asked == []
