"""What the service asks the language model, and what it accepts back.

Each use case has instructions (the system message), an answer model (pydantic; its JSON
schema is the structured-output format the model must follow, and it validates the answer)
and, where the schema cannot say everything, a `check` that rejects an answer so it is asked
for again. Length limits live in the models, not in the schema sent: strict structured
outputs do not accept `minLength`/`maxLength` (see `adapters.llm.wire_model`); the
title's limits travel as a `pattern`, which they do accept.

`ask` runs one call and turns a failure into the problem the caller sees, after writing the
call's ledger entry (what it cost) on its own: a failed call stores no result, but its
tokens were spent.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from typing import Annotated
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, create_model

from imagetron_contracts.models.chats import ChatRole
from imagetron_platform.clock import Clock
from imagetron_platform.errors import BadGateway, ProblemError, ServiceTimeout
from imagetron_prompts.app.ports import (
    AnswerT,
    LlmAnswer,
    LlmCall,
    LlmError,
    LlmMessage,
    LlmOutcome,
    LlmPort,
    LlmPurpose,
    UnitOfWorkFactory,
)
from imagetron_prompts.domain.chat import (
    MAX_REPLY_LENGTH,
    MAX_SUBJECT_LENGTH,
    MAX_SUBJECTS,
    Chat,
    normalize_subjects,
)
from imagetron_prompts.domain.midjourney import PromptDraft
from imagetron_stock.rules import (
    MAX_KEYWORDS,
    MAX_STOCK_TITLE_LENGTH,
    check_title,
    normalize_keyword,
)

log = logging.getLogger(__name__)

#: How many earlier messages of a chat go to the model besides the brief (context budget).
HISTORY_MESSAGES = 20
TITLE_CANDIDATES = 3
#: Fewer keywords than this sell poorly; the model is asked for at least as many.
MIN_KEYWORDS = 10
#: A stock title: 3 to 70 characters, no commas, one line. Sent as the schema's `pattern`.
STOCK_TITLE_PATTERN = rf"^[^,\n]{{3,{MAX_STOCK_TITLE_LENGTH}}}$"

_STOCK_RULES = (
    "Stock rules: never name artists or art styles by a person's name, real people, "
    "brands, trademarks, logos, products or fictional characters."
)

SUBJECTS_INSTRUCTIONS = (
    "You help an artist who sells AI-generated images on stock sites find concrete image "
    "subjects. Answer the artist's brief, or their refinement of your last list, with a "
    "one- or two-sentence reply and a complete new list of subjects. Each subject is one "
    "picture: what is in it, where, and the mood, in at most 25 words; subjects differ "
    f"from each other and sell well as stock. {_STOCK_RULES}"
)

PROMPTS_INSTRUCTIONS = (
    "You write Midjourney prompts for stock images. For the subject the artist gives, write "
    "the requested number of distinct prompts. Each prompt has: subject (what is shown, "
    "concretely), style (medium and look), lighting, composition (framing, viewpoint, lens) "
    f"and a title for the stock site: plain descriptive English, at most "
    f"{MAX_STOCK_TITLE_LENGTH} characters, no commas. Write no Midjourney parameters such as "
    f"--ar or --v; they are added for you. {_STOCK_RULES}"
)

METADATA_INSTRUCTIONS = (
    "You write stock-agency metadata (Adobe Stock) for an AI-generated image, given the "
    "prompt it was made from and its current title. Give: a title (plain descriptive English, "
    f"at most {MAX_STOCK_TITLE_LENGTH} characters, no commas); {MIN_KEYWORDS} to "
    f"{MAX_KEYWORDS} keywords, single words or short phrases without commas, most relevant "
    "first (buyers search with the first ten), no technical terms such as camera, render or "
    "AI; Adobe's category number (1 Animals, 2 Buildings and Architecture, 3 Business, "
    "4 Drinks, 5 The Environment, 6 States of Mind, 7 Food, 8 Graphic Resources, 9 Hobbies "
    "and Leisure, 10 Industry, 11 Landscapes, 12 Lifestyle, 13 People, 14 Plants and Flowers, "
    "15 Culture and Religion, 16 Science, 17 Social Issues, 18 Sports, 19 Technology, "
    "20 Transport, 21 Travel); whether the image is photo-realistic; and whether people or "
    f"recognisable property appear. {_STOCK_RULES}"
)

TITLE_INSTRUCTIONS = (
    "You write titles for stock images. Given an image prompt and its current title, "
    f"propose {TITLE_CANDIDATES} different titles: plain descriptive English, at most "
    f"{MAX_STOCK_TITLE_LENGTH} characters, no commas, none equal to the current title. "
    f"{_STOCK_RULES}"
)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


StockTitle = Annotated[
    str,
    Field(
        pattern=STOCK_TITLE_PATTERN,
        description=f"At most {MAX_STOCK_TITLE_LENGTH} characters, no commas.",
    ),
]


class SubjectIdeas(_Answer):
    """The assistant's turn in a subject chat."""

    reply: Annotated[str, Field(max_length=MAX_REPLY_LENGTH, description="One or two sentences.")]
    subjects: list[Annotated[str, Field(min_length=1, max_length=MAX_SUBJECT_LENGTH)]]


class PromptParts(_Answer):
    subject: Annotated[str, Field(min_length=1, max_length=500)]
    style: Annotated[str, Field(max_length=200)]
    lighting: Annotated[str, Field(max_length=200)]
    composition: Annotated[str, Field(max_length=200)]
    title: StockTitle

    def draft(self) -> PromptDraft:
        return PromptDraft(
            subject=self.subject,
            style=self.style,
            lighting=self.lighting,
            composition=self.composition,
            title=self.title,
        )


class PromptDrafts(_Answer):
    prompts: list[PromptParts]


StockKeyword = Annotated[str, Field(pattern=r"^[^,\n]{1,50}$")]


class StockMetadataIdeas(_Answer):
    """Stock metadata for one image; keywords are cleaned up by `clean_keywords`."""

    title: StockTitle
    keywords: Annotated[list[StockKeyword], Field(min_length=MIN_KEYWORDS, max_length=MAX_KEYWORDS)]
    category: Annotated[int, Field(ge=1, le=21)]
    photo_realistic: bool
    shows_people_or_property: bool


def clean_keywords(keywords: Sequence[str]) -> list[str]:
    """The model's keywords as the agency takes them: trimmed, without repeats (the first
    kept, so the relevance order holds), at most MAX_KEYWORDS."""
    cleaned: list[str] = []
    seen: set[str] = set()
    for keyword in keywords:
        word = normalize_keyword(keyword)
        if word and word.casefold() not in seen:
            seen.add(word.casefold())
            cleaned.append(word)
    return cleaned[:MAX_KEYWORDS]


class TitleIdeas(_Answer):
    titles: Annotated[
        list[StockTitle],
        Field(min_length=TITLE_CANDIDATES, max_length=TITLE_CANDIDATES),
    ]


@functools.cache
def subject_ideas_for(count: int | None) -> type[SubjectIdeas]:
    """SubjectIdeas whose schema asks for exactly `count` subjects (when None, as many as
    the model sees fit, up to MAX_SUBJECTS)."""
    low, high = (count, count) if count is not None else (1, MAX_SUBJECTS)
    model: type[SubjectIdeas] = create_model(
        "SubjectIdeas",
        __base__=SubjectIdeas,
        subjects=(
            Annotated[
                list[Annotated[str, Field(min_length=1, max_length=MAX_SUBJECT_LENGTH)]],
                Field(min_length=low, max_length=high),
            ],
            ...,
        ),
    )
    return model


@functools.cache
def prompt_drafts_for(count: int) -> type[PromptDrafts]:
    """PromptDrafts whose schema asks for exactly `count` prompts."""
    model: type[PromptDrafts] = create_model(
        "PromptDrafts",
        __base__=PromptDrafts,
        prompts=(Annotated[list[PromptParts], Field(min_length=count, max_length=count)], ...),
    )
    return model


def check_subjects(answer: SubjectIdeas) -> None:
    if not normalize_subjects(answer.subjects):
        raise ValueError("the answer proposes no subject")


def check_prompt_drafts(answer: PromptDrafts) -> None:
    texts = {" ".join(p.subject.split()).casefold() for p in answer.prompts}
    if len(texts) < len(answer.prompts):
        raise ValueError("two prompts have the same subject")


def title_picker(
    current: str | None,
) -> tuple[Callable[[TitleIdeas], None], Callable[[TitleIdeas], str]]:
    """A check that accepts title ideas only if one differs from `current`, and the function
    that picks it: the first that differs, preferring one without any stock finding."""

    def differing(answer: TitleIdeas) -> list[str]:
        taken = " ".join((current or "").split()).casefold()
        titles = [" ".join(t.split()) for t in answer.titles]
        return [t for t in titles if t.casefold() != taken]

    def check(answer: TitleIdeas) -> None:
        if not differing(answer):
            raise ValueError("every proposed title equals the current one")

    def pick(answer: TitleIdeas) -> str:
        candidates = differing(answer)
        clean = [t for t in candidates if not check_title(t)]
        return (clean or candidates)[0]

    return check, pick


def chat_conversation(chat: Chat, text: str, count: int | None) -> list[LlmMessage]:
    """The system message, the brief, the latest history and the artist's new message."""
    instructions = SUBJECTS_INSTRUCTIONS
    if count is not None:
        instructions += f" Propose exactly {count} subjects."
    conversation = [LlmMessage("system", instructions)]
    history = chat.messages
    if len(history) > HISTORY_MESSAGES + 1:
        history = [history[0], *history[-HISTORY_MESSAGES:]]
    for message in history:
        if message.role is ChatRole.user:
            conversation.append(LlmMessage("user", message.content))
        else:
            # As the model answered it, so it sees its own earlier answers in its format.
            content = json.dumps(
                {"reply": message.content, "subjects": list(message.subjects)},
                ensure_ascii=False,
            )
            conversation.append(LlmMessage("assistant", content))
    conversation.append(LlmMessage("user", text))
    return conversation


def prompts_conversation(subject: str, count: int, style: str | None) -> list[LlmMessage]:
    request = subject.strip()
    if style:
        request += f"\nStyle direction: {style.strip()}"
    return [
        LlmMessage("system", f"{PROMPTS_INSTRUCTIONS} Write exactly {count} prompts."),
        LlmMessage("user", request),
    ]


def metadata_conversation(text: str, title: str | None) -> list[LlmMessage]:
    request = f"Prompt: {text}" + (f"\nCurrent title: {title}" if title else "")
    return [LlmMessage("system", METADATA_INSTRUCTIONS), LlmMessage("user", request)]


def title_conversation(text: str, title: str | None) -> list[LlmMessage]:
    return [
        LlmMessage("system", TITLE_INSTRUCTIONS),
        LlmMessage("user", f"Prompt: {text}\nCurrent title: {title or '(none)'}"),
    ]


_CAUSES = {
    LlmOutcome.MALFORMED: "its answer was malformed",
    LlmOutcome.REFUSED: "it refused to answer",
    LlmOutcome.TRUNCATED: "its answer was cut off at the token limit",
    LlmOutcome.RATE_LIMITED: "the provider is rate-limiting us (HTTP 429)",
    LlmOutcome.UPSTREAM_ERROR: "the provider failed (HTTP 5xx)",
    LlmOutcome.UNREACHABLE: "the provider could not be reached",
    LlmOutcome.REJECTED: "the provider rejected our request (check the IMAGETRON_LLM_* settings)",
    LlmOutcome.TIMEOUT: "it did not answer in time",
}


def problem_for(error: LlmError) -> ProblemError:
    """The documented error: 504 when the model did not answer in time, else 502. The
    detail names the cause first, so a client can show it as is."""
    cause = _CAUSES.get(error.outcome, error.outcome.value)
    detail = (
        f"The language model gave no usable answer: {cause} ({error.detail}). Nothing was saved."
    )
    if error.outcome is LlmOutcome.TIMEOUT:
        return ServiceTimeout(detail)
    return BadGateway(detail)


async def ask(
    llm: LlmPort,
    new_uow: UnitOfWorkFactory,
    clock: Clock,
    *,
    purpose: LlmPurpose,
    owner_id: UUID,
    messages: Sequence[LlmMessage],
    answer_type: type[AnswerT],
    check: Callable[[AnswerT], None] | None = None,
    chat_id: UUID | None = None,
    prompt_id: UUID | None = None,
) -> LlmAnswer[AnswerT]:
    """The model's validated answer, or the problem to answer with (502/504) once the failed
    call's cost is in the ledger. No database work is open while the model thinks."""
    try:
        return await llm.answer(messages, answer_type, check=check)
    except LlmError as error:
        log.warning(
            "language model call failed: %s",
            error,
            extra={"purpose": purpose.value, "outcome": error.outcome.value},
        )
        call = LlmCall(
            id=uuid4(),
            owner_id=owner_id,
            purpose=purpose,
            outcome=error.outcome,
            usage=error.usage,
            created_at=clock(),
            chat_id=chat_id,
            prompt_id=prompt_id,
            detail=error.detail[:1000],
        )
        try:
            async with new_uow() as uow:
                await uow.llm_calls.add(call)
                await uow.commit()
        except Exception:
            log.exception("could not record a failed language model call")
        raise problem_for(error) from error


def ledger_entry(
    answer: LlmAnswer[AnswerT],
    clock: Clock,
    *,
    purpose: LlmPurpose,
    owner_id: UUID,
    chat_id: UUID | None = None,
    prompt_id: UUID | None = None,
) -> LlmCall:
    """The ledger entry of a call that succeeded, to be written with its result."""
    return LlmCall(
        id=uuid4(),
        owner_id=owner_id,
        purpose=purpose,
        outcome=LlmOutcome.OK,
        usage=answer.usage,
        created_at=clock(),
        chat_id=chat_id,
        prompt_id=prompt_id,
    )
