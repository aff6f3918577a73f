"""The stock agencies' content rules (Adobe Stock first), for prompts, titles and keywords.

Adobe Stock accepts generative-AI images only if the title, keywords and prompt name no
artists, real people, fictional characters, brands or other IP, or government agencies, and
imply no real news event; the title is at most 70 characters without commas; keywords are
at most 49, most relevant first (docs: /work/shared/design/REFERENCE.md, "Publication").

Findings say what breaks which rule and where. The prompts service shows them as advice (an
artist may keep a working draft); the publisher refuses to publish while any remains. Names
are matched against the curated lists in `lists`, case-insensitively, on whole words, with a
space, hyphen or dot between the parts of a name ("van gogh", "Van-Gogh", "h.r. giger").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from imagetron_contracts.models.prompts import StockFindingCode, StockFindingField
from imagetron_stock.lists import (
    ARTISTS,
    BRANDS,
    FICTIONAL_CHARACTERS,
    GOVERNMENT_AGENCIES,
    NEWS_EVENTS,
    REAL_PEOPLE,
    TERMS_OF_ART,
)

MAX_STOCK_TITLE_LENGTH = 70
MAX_KEYWORDS = 49
#: Adobe weighs the first ten keywords most; a keyword is a word or a short phrase.
MAX_KEYWORD_LENGTH = 50
#: Adobe Stock's categories, 1-21 (see the contract's StockMetadata.category).
CATEGORIES = range(1, 22)

_MESSAGES = {
    StockFindingCode.artist_name: "names the artist {match!r}; stock sites refuse prompts, "
    "titles and keywords that name artists",
    StockFindingCode.brand: "names the brand or franchise {match!r}; stock sites refuse other "
    "people's trademarks and IP",
    StockFindingCode.real_person: "names the real person {match!r}; stock sites refuse images "
    "of real people without a release",
    StockFindingCode.fictional_character: "names the fictional character {match!r}; stock "
    "sites refuse characters that belong to someone else",
    StockFindingCode.government_agency: "names the government agency {match!r}; stock sites "
    "refuse agencies' names and insignia",
    StockFindingCode.news_event: "implies a real news event ({match!r}); generated images must "
    "not pass for news",
}


@dataclass(frozen=True, slots=True)
class StockFinding:
    code: StockFindingCode
    field: StockFindingField
    message: str
    start: int
    end: int
    match: str


def _fold(text: str) -> str:
    """Lower case without accents, one character for each character of `text`, so a span
    found in the folded text is the same span of the original."""
    folded = []
    for char in text:
        lower = char.lower()
        if len(lower) != 1:  # e.g. "İ"; never part of a listed name
            folded.append(char)
            continue
        base = "".join(
            c for c in unicodedata.normalize("NFD", lower) if not unicodedata.combining(c)
        )
        folded.append(base[:1] or lower)
    return "".join(folded)


def _compile(names: Iterable[str]) -> re.Pattern[str]:
    """Whole-word matches of any name; parts joined by spaces or hyphens. Longest names
    first, so "vincent van gogh" wins over "van gogh" at the same position."""
    alternatives = sorted({_fold(n) for n in names}, key=len, reverse=True)
    body = "|".join(
        r"[\s\-]+".join(re.escape(part) for part in re.split(r"[\s\-]+", name))
        for name in alternatives
    )
    return re.compile(rf"(?<![\w'])(?:{body})(?!\w)")


_LISTS: tuple[tuple[StockFindingCode, re.Pattern[str]], ...] = (
    (StockFindingCode.artist_name, _compile(ARTISTS)),
    (StockFindingCode.real_person, _compile(REAL_PEOPLE)),
    (StockFindingCode.fictional_character, _compile(FICTIONAL_CHARACTERS)),
    (StockFindingCode.brand, _compile(BRANDS)),
    (StockFindingCode.government_agency, _compile(GOVERNMENT_AGENCIES)),
    (StockFindingCode.news_event, _compile(NEWS_EVENTS)),
)
_TERMS_OF_ART = _compile(TERMS_OF_ART)


def find_names(text: str, field: StockFindingField) -> list[StockFinding]:
    """Names and news phrases from the lists in `text`, in order of appearance."""
    folded = _fold(text)
    findings: list[StockFinding] = []
    # Spans already explained: terms of art, then earlier findings (one finding per span).
    taken: list[tuple[int, int]] = [m.span() for m in _TERMS_OF_ART.finditer(folded)]
    for code, pattern in _LISTS:
        for found in pattern.finditer(folded):
            start, end = found.span()
            if any(start < e and s < end for s, e in taken):
                continue
            taken.append((start, end))
            match = text[start:end]
            findings.append(
                StockFinding(
                    code=code,
                    field=field,
                    message=f"The {field.value} " + _MESSAGES[code].format(match=match) + ".",
                    start=start,
                    end=end,
                    match=match,
                )
            )
    return sorted(findings, key=lambda f: (f.start, f.end))


def check_title(title: str | None) -> list[StockFinding]:
    """The title rules: present, at most 70 characters, no commas, no names."""
    field = StockFindingField.title_field
    if title is None or not title.strip():
        return [
            StockFinding(
                code=StockFindingCode.title_missing,
                field=field,
                message="There is no title; stock sites need one (at most 70 characters, "
                "no commas).",
                start=0,
                end=0,
                match="",
            )
        ]
    findings: list[StockFinding] = []
    if len(title) > MAX_STOCK_TITLE_LENGTH:
        findings.append(
            StockFinding(
                code=StockFindingCode.title_too_long,
                field=field,
                message=f"The title has {len(title)} characters; stock titles have at most "
                f"{MAX_STOCK_TITLE_LENGTH}. Shorten it.",
                start=MAX_STOCK_TITLE_LENGTH,
                end=len(title),
                match=title[MAX_STOCK_TITLE_LENGTH:],
            )
        )
    for comma in re.finditer(",", title):
        findings.append(
            StockFinding(
                code=StockFindingCode.title_comma,
                field=field,
                message="The title contains a comma; stock titles must not (the metadata CSV "
                "is comma-separated).",
                start=comma.start(),
                end=comma.end(),
                match=",",
            )
        )
    findings += find_names(title, field)
    return sorted(findings, key=lambda f: (f.start, f.end, f.code.value))


def check_prompt(text: str, title: str | None) -> list[StockFinding]:
    """Every stock-rule finding for a prompt: names in its text, then its title's."""
    return find_names(text, StockFindingField.text_field) + check_title(title)


def is_stock_ready_title(title: str) -> bool:
    """True if a title breaks none of the length and comma rules and is not blank (names
    are reported, not refused: see the module docstring)."""
    return not any(
        f.code
        in (
            StockFindingCode.title_missing,
            StockFindingCode.title_too_long,
            StockFindingCode.title_comma,
        )
        for f in check_title(title)
    )


def normalize_keyword(keyword: str) -> str:
    """One keyword as the agency compares them: trimmed, inner spaces collapsed."""
    return " ".join(keyword.split())


def _keyword_finding(
    code: StockFindingCode, index: int, keyword: str, message: str
) -> StockFinding:
    return StockFinding(
        code=code,
        field=StockFindingField.keywords_field,
        message=message,
        start=index,
        end=index + 1,
        match=keyword,
    )


def check_keywords(keywords: Sequence[str]) -> list[StockFinding]:
    """The keyword rules: at least one, at most 49, each distinct, short, without commas
    and naming nothing from the lists. A finding's `start` is the keyword's position."""
    field = StockFindingField.keywords_field
    if not keywords:
        return [
            StockFinding(
                code=StockFindingCode.keywords_missing,
                field=field,
                message=f"There are no keywords; add up to {MAX_KEYWORDS}, most relevant "
                "first (the first 10 matter most).",
                start=0,
                end=0,
                match="",
            )
        ]
    findings: list[StockFinding] = []
    if len(keywords) > MAX_KEYWORDS:
        findings.append(
            StockFinding(
                code=StockFindingCode.keywords_too_many,
                field=field,
                message=f"There are {len(keywords)} keywords; Adobe Stock takes at most "
                f"{MAX_KEYWORDS}. Remove the {len(keywords) - MAX_KEYWORDS} least relevant.",
                start=MAX_KEYWORDS,
                end=len(keywords),
                match="",
            )
        )
    seen: dict[str, int] = {}
    for index, raw in enumerate(keywords):
        keyword = normalize_keyword(raw)
        if not keyword or "," in keyword or len(keyword) > MAX_KEYWORD_LENGTH:
            findings.append(
                _keyword_finding(
                    StockFindingCode.keyword_invalid,
                    index,
                    raw,
                    f"Keyword {index + 1} ({raw!r}) must be a word or short phrase of 1 to "
                    f"{MAX_KEYWORD_LENGTH} characters without commas.",
                )
            )
            continue
        folded = _fold(keyword)
        if folded in seen:
            findings.append(
                _keyword_finding(
                    StockFindingCode.keyword_duplicate,
                    index,
                    raw,
                    f"Keyword {index + 1} ({raw!r}) repeats keyword {seen[folded] + 1}; remove it.",
                )
            )
            continue
        seen[folded] = index
        for name in find_names(keyword, field):
            findings.append(
                _keyword_finding(
                    name.code,
                    index,
                    raw,
                    f"Keyword {index + 1} " + _MESSAGES[name.code].format(match=name.match) + ".",
                )
            )
    return findings


def check_category(category: int | None) -> list[StockFinding]:
    if category in CATEGORIES:
        return []
    return [
        StockFinding(
            code=StockFindingCode.category_missing,
            field=StockFindingField.category_field,
            message="Choose Adobe Stock's category (1-21, e.g. 7 Food, 11 Landscapes); the "
            "portal files images without one last.",
            start=0,
            end=0,
            match="",
        )
    ]


def check_metadata(
    title: str | None, keywords: Sequence[str], category: int | None
) -> list[StockFinding]:
    """Every content finding for a submission's metadata: title, keywords, category."""
    return check_title(title) + check_keywords(keywords) + check_category(category)
