"""Subject chats and Midjourney drafts (domain only)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from imagetron_contracts.models.chats import ChatRole
from imagetron_platform.errors import InvalidRequest
from imagetron_prompts.domain.chat import (
    MAX_MESSAGE_LENGTH,
    TITLE_LENGTH,
    Chat,
    normalize_subjects,
    title_from_brief,
)
from imagetron_prompts.domain.midjourney import PromptDraft
from imagetron_prompts.domain.usage import TokenUsage

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OWNER = UUID("00000000-0000-4000-8000-000000000001")
USAGE = TokenUsage(model="m", prompt_tokens=3, completion_tokens=4, attempts=1)


class TestStart:
    def test_a_new_chat_is_named_after_its_brief_and_empty(self):
        chat = Chat.start(owner_id=OWNER, brief="  autumn still lifes\nfor stock ", now=T0)
        assert (chat.owner_id, chat.title, chat.message_count) == (OWNER, "autumn still lifes", 0)
        assert chat.messages == []

    @pytest.mark.parametrize("brief", ["", "  \n ", "x" * (MAX_MESSAGE_LENGTH + 1)])
    def test_blank_or_too_long_brief_is_invalid(self, brief):
        with pytest.raises(InvalidRequest) as caught:
            Chat.start(owner_id=OWNER, brief=brief, now=T0)
        assert [e.loc for e in caught.value.errors or []] == [["brief"]]


def test_long_briefs_make_titles_cut_at_a_word():
    title = title_from_brief("word " * 40)
    assert len(title) <= TITLE_LENGTH
    assert title.endswith("word…")


def test_exchanges_take_the_next_two_positions():
    chat = Chat.start(owner_id=OWNER, brief="pears", now=T0)
    call = uuid4()
    asked, answered = chat.add_exchange(
        user_text="pears",
        reply="Here.",
        subjects=("a pear",),
        now=T0,
        llm_call_id=call,
        usage=USAGE,
    )
    assert (asked.position, asked.role, asked.subjects) == (0, ChatRole.user, ())
    assert (answered.position, answered.role, answered.subjects) == (
        1,
        ChatRole.assistant,
        ("a pear",),
    )
    assert (answered.llm_call_id, answered.usage, asked.usage) == (call, USAGE, None)
    again = chat.add_exchange(
        user_text="more", reply="More.", subjects=("a fig",), now=T0, llm_call_id=call, usage=USAGE
    )
    assert [m.position for m in again] == [2, 3]
    assert chat.message_count == 4
    assert [m.position for m in chat.messages] == [0, 1, 2, 3]


def test_subjects_are_tidied_and_deduplicated_in_order():
    assert normalize_subjects(["  a  pear ", "", "A PEAR", "a fig\n", "   "]) == ("a pear", "a fig")


class TestPromptDraft:
    def test_text_is_the_parts_then_the_aspect_ratio(self):
        draft = PromptDraft(
            subject=" a ripe pear on linen. ",
            style="oil painting,",
            lighting="",
            composition="close-up,  45 mm",
            title=" Ripe  pear ",
        )
        assert draft.text("16:9") == "a ripe pear on linen, oil painting, close-up, 45 mm --ar 16:9"
        assert draft.clean_title == "Ripe pear"

    @pytest.mark.parametrize("ratio", ["16/9", "0:1", "100:1", "", "1:1 --v 6"])
    def test_aspect_ratio_must_be_one(self, ratio):
        draft = PromptDraft(subject="a pear", style="", lighting="", composition="", title="Pear")
        with pytest.raises(ValueError, match="aspect ratio"):
            draft.text(ratio)
