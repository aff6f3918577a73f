"""The stock-site rules a prompt and its title are checked against (Adobe Stock).

Adobe Stock accepts generative-AI images only if the title, keywords and prompt name no
artists, real people, brands or other intellectual property, and the title is at most 70
characters without commas (docs: /work/shared/design/REFERENCE.md, "Publication").

The check is advisory: it returns findings (what, where) and blocks nothing, so an artist
can keep a working draft and clean it up before publishing. Names are matched against small
curated lists, case-insensitively, on whole words, with a space, hyphen or dot between the
parts of a name ("van gogh", "Van-Gogh", "h.r. giger"). The lists hold the names that most
often appear in image prompts; they are not exhaustive, and words that are also ordinary
English ("apple", "amazon", "turner", "shell") are left out on purpose, because a false
alarm on every still life would train artists to ignore the check. Extend the lists here
(one name per entry, lower case); the tests pin a sample of each.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from imagetron_contracts.models.prompts import StockFindingCode, StockFindingField

MAX_STOCK_TITLE_LENGTH = 70

#: Artists whose names are common in image prompts ("in the style of ...").
ARTISTS: frozenset[str] = frozenset(
    {
        "alphonse mucha",
        "andy warhol",
        "ansel adams",
        "annie leibovitz",
        "artgerm",
        "banksy",
        "basquiat",
        "beeple",
        "caravaggio",
        "claude monet",
        "craig mullins",
        "edward hopper",
        "frida kahlo",
        "georgia o'keeffe",
        "greg rutkowski",
        "gustav klimt",
        "h.r. giger",
        "hayao miyazaki",
        "hieronymus bosch",
        "hokusai",
        "jackson pollock",
        "james gurney",
        "johannes vermeer",
        "keith haring",
        "leonardo da vinci",
        "magritte",
        "mc escher",
        "m.c. escher",
        "michelangelo",
        "monet",
        "mondrian",
        "norman rockwell",
        "pablo picasso",
        "picasso",
        "rembrandt",
        "rene magritte",
        "roy lichtenstein",
        "salvador dali",
        "simon stalenhag",
        "thomas kinkade",
        "tim burton",
        "van gogh",
        "vincent van gogh",
        "wassily kandinsky",
        "kandinsky",
        "wes anderson",
        "wlop",
        "yayoi kusama",
        "zdzislaw beksinski",
        "beksinski",
    }
)

#: Brands, trademarks and franchises (other people's IP).
BRANDS: frozenset[str] = frozenset(
    {
        "adidas",
        "barbie",
        "batman",
        "bmw",
        "chanel",
        "coca-cola",
        "coca cola",
        "darth vader",
        "dc comics",
        "disney",
        "dreamworks",
        "ferrari",
        "fortnite",
        "gucci",
        "harry potter",
        "hello kitty",
        "hogwarts",
        "ikea",
        "iphone",
        "ipad",
        "lamborghini",
        "legend of zelda",
        "lego",
        "louis vuitton",
        "macbook",
        "marvel comics",
        "marvel studios",
        "mcdonald's",
        "mcdonalds",
        "mercedes-benz",
        "mickey mouse",
        "minecraft",
        "netflix",
        "nike",
        "nintendo",
        "octane render",
        "pepsi",
        "pikachu",
        "pixar",
        "playstation",
        "pokemon",
        "porsche",
        "red bull",
        "rolex",
        "spider-man",
        "spiderman",
        "star wars",
        "starbucks",
        "studio ghibli",
        "super mario",
        "superman",
        "tesla",
        "unreal engine",
        "xbox",
        "youtube",
    }
)

#: Real people, living or recently so, who are often asked for by name.
REAL_PEOPLE: frozenset[str] = frozenset(
    {
        "albert einstein",
        "barack obama",
        "beyonce",
        "bill gates",
        "brad pitt",
        "cristiano ronaldo",
        "donald trump",
        "elon musk",
        "emma watson",
        "joe biden",
        "keanu reeves",
        "kim kardashian",
        "king charles",
        "lady gaga",
        "leonardo dicaprio",
        "lionel messi",
        "marilyn monroe",
        "mark zuckerberg",
        "michael jackson",
        "oprah winfrey",
        "pope francis",
        "queen elizabeth",
        "rihanna",
        "scarlett johansson",
        "steve jobs",
        "taylor swift",
        "tom cruise",
        "vladimir putin",
    }
)

#: Phrases that contain a listed name but are ordinary craft vocabulary, not a reference to
#: the person ("Rembrandt lighting" is a portrait lighting set-up).
TERMS_OF_ART: frozenset[str] = frozenset({"rembrandt lighting"})

_MESSAGES = {
    StockFindingCode.artist_name: "names the artist {match!r}; stock sites refuse prompts and "
    "titles that name artists",
    StockFindingCode.brand: "names the brand or franchise {match!r}; stock sites refuse other "
    "people's trademarks and IP",
    StockFindingCode.real_person: "names the real person {match!r}; stock sites refuse images "
    "of real people without a release",
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
    (StockFindingCode.brand, _compile(BRANDS)),
)
_TERMS_OF_ART = _compile(TERMS_OF_ART)


def find_names(text: str, field: StockFindingField) -> list[StockFinding]:
    """Artist, real-person and brand names in `text`, in order of appearance."""
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
                f"{MAX_STOCK_TITLE_LENGTH}.",
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
