"""The stock-rule check: names from the curated lists, and the title and keyword rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagetron_contracts.models.prompts import StockFindingCode, StockFindingField
from imagetron_stock.lists import (
    ARTISTS,
    BRANDS,
    FICTIONAL_CHARACTERS,
    GOVERNMENT_AGENCIES,
    NEWS_EVENTS,
    REAL_PEOPLE,
)
from imagetron_stock.rules import (
    MAX_KEYWORDS,
    MAX_STOCK_TITLE_LENGTH,
    check_category,
    check_keywords,
    check_metadata,
    check_prompt,
    check_title,
    find_names,
    is_stock_ready_title,
)

TEXT = StockFindingField.text_field


def codes(findings):
    return [(f.code, f.match) for f in findings]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in the style of Greg Rutkowski", [(StockFindingCode.artist_name, "Greg Rutkowski")]),
        ("Van-Gogh sunflowers", [(StockFindingCode.artist_name, "Van-Gogh")]),
        ("like vincent van gogh", [(StockFindingCode.artist_name, "vincent van gogh")]),
        ("Salvador Dalí clocks", [(StockFindingCode.artist_name, "Salvador Dalí")]),
        ("Taylor Swift on stage", [(StockFindingCode.real_person, "Taylor Swift")]),
        ("a can of Coca-Cola", [(StockFindingCode.brand, "Coca-Cola")]),
        ("Nike's new shoes", [(StockFindingCode.brand, "Nike")]),
        ("rendered in Unreal Engine", [(StockFindingCode.brand, "Unreal Engine")]),
        ("Darth Vader at a market", [(StockFindingCode.fictional_character, "Darth Vader")]),
        ("a NASA astronaut", [(StockFindingCode.government_agency, "NASA")]),
        ("U.S. Army tanks", [(StockFindingCode.government_agency, "U.S. Army")]),
        ("press photo of a flood", [(StockFindingCode.news_event, "press photo")]),
        ("the war in Ukraine", [(StockFindingCode.news_event, "war in Ukraine")]),
    ],
)
def test_names_are_found_whatever_their_case_hyphens_and_accents(text, expected):
    assert codes(find_names(text, TEXT)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "a still life of apples on a table",  # "apple" is fruit first: not listed
        "the amazon rainforest at dawn",
        "a marvel of light on pears",  # "marvel" alone is a word
        "a moebius strip of ribbon",
        "portrait with Rembrandt lighting",  # a term of art, not the painter
        "a pokemonster",  # part of a longer word
        "nikes",
        "a nasal spray",  # not NASA
        "the who and what of pears",
    ],
)
def test_ordinary_words_and_terms_of_art_are_not_flagged(text):
    assert find_names(text, TEXT) == []


def test_every_finding_points_at_its_span():
    text = "Mickey Mouse meets Elon Musk, painted by Banksy"
    findings = find_names(text, TEXT)
    assert [f.code for f in findings] == [
        StockFindingCode.fictional_character,
        StockFindingCode.real_person,
        StockFindingCode.artist_name,
    ]
    for finding in findings:
        assert text[finding.start : finding.end] == finding.match
        assert finding.field is TEXT
        assert finding.match in finding.message


def test_the_longest_name_wins_and_is_reported_once():
    [finding] = find_names("after Vincent van Gogh", TEXT)
    assert finding.match == "Vincent van Gogh"


@pytest.mark.parametrize(
    "names", [ARTISTS, BRANDS, REAL_PEOPLE, FICTIONAL_CHARACTERS, GOVERNMENT_AGENCIES, NEWS_EVENTS]
)
def test_every_listed_name_is_found_in_a_sentence(names):
    for name in names:
        [finding] = find_names(f"a picture of {name.upper()}, at dusk", TEXT)
        assert finding.match.casefold() == name.casefold(), name


class TestTitle:
    def test_a_good_title_has_no_finding(self):
        assert check_title("Ripe pears on a linen cloth in morning light") == []
        assert is_stock_ready_title("Ripe pears on a linen cloth")

    @pytest.mark.parametrize("title", [None, "", "   "])
    def test_a_missing_title_is_a_finding(self, title):
        assert codes(check_title(title)) == [(StockFindingCode.title_missing, "")]

    def test_seventy_characters_are_fine_seventy_one_are_not(self):
        assert check_title("x" * MAX_STOCK_TITLE_LENGTH) == []
        [finding] = check_title("x" * (MAX_STOCK_TITLE_LENGTH + 1))
        assert finding.code is StockFindingCode.title_too_long
        assert (finding.start, finding.end) == (70, 71)
        assert not is_stock_ready_title("x" * 71)

    def test_each_comma_is_a_finding_at_its_place(self):
        findings = check_title("Pears, apples, figs")
        assert [(f.code, f.start) for f in findings] == [
            (StockFindingCode.title_comma, 5),
            (StockFindingCode.title_comma, 13),
        ]
        assert all(f.field is StockFindingField.title_field for f in findings)

    def test_names_in_the_title_are_findings_but_do_not_make_it_unready(self):
        assert codes(check_title("Sneakers like Nike")) == [(StockFindingCode.brand, "Nike")]
        assert is_stock_ready_title("Sneakers like Nike")


def test_check_prompt_reports_text_then_title():
    findings = check_prompt("a Lego castle", "Castle, toy")
    assert [(f.field, f.code) for f in findings] == [
        (StockFindingField.text_field, StockFindingCode.brand),
        (StockFindingField.title_field, StockFindingCode.title_comma),
    ]


@given(st.text(max_size=200))
def test_spans_always_match_the_text_whatever_it_contains(text):
    for finding in check_prompt(text, text):
        source = text
        assert 0 <= finding.start <= finding.end <= len(source)
        if finding.code not in (StockFindingCode.title_missing, StockFindingCode.title_too_long):
            assert source[finding.start : finding.end] == finding.match


class TestKeywords:
    def test_good_keywords_have_no_finding(self):
        assert check_keywords(["pear", "still life", "linen", "morning light"]) == []

    def test_none_is_a_finding_that_says_how_many(self):
        [finding] = check_keywords([])
        assert finding.code is StockFindingCode.keywords_missing
        assert str(MAX_KEYWORDS) in finding.message

    def test_forty_nine_are_fine_fifty_are_not(self):
        words = [f"word{i}" for i in range(MAX_KEYWORDS + 1)]
        assert check_keywords(words[:MAX_KEYWORDS]) == []
        [finding] = check_keywords(words)
        assert finding.code is StockFindingCode.keywords_too_many
        assert (finding.start, finding.end) == (49, 50)
        assert "Remove the 1 least relevant" in finding.message

    def test_duplicates_commas_and_blanks_point_at_the_keyword(self):
        findings = check_keywords(["Pear", "fruit", " pear ", "a, b", " ", "x" * 51])
        assert [(f.code, f.start, f.match) for f in findings] == [
            (StockFindingCode.keyword_duplicate, 2, " pear "),
            (StockFindingCode.keyword_invalid, 3, "a, b"),
            (StockFindingCode.keyword_invalid, 4, " "),
            (StockFindingCode.keyword_invalid, 5, "x" * 51),
        ]
        assert all(f.field is StockFindingField.keywords_field for f in findings)

    def test_names_in_keywords_are_findings(self):
        [finding] = check_keywords(["pear", "Studio Ghibli"])
        assert (finding.code, finding.start) == (StockFindingCode.brand, 1)
        assert "Keyword 2" in finding.message


def test_category_must_be_one_of_adobes():
    assert check_category(7) == []
    for category in (None, 0, 22):
        [finding] = check_category(category)
        assert finding.code is StockFindingCode.category_missing


def test_metadata_check_covers_title_keywords_and_category():
    findings = check_metadata("Pears, ripe", ["pear", "pear"], None)
    assert [f.code for f in findings] == [
        StockFindingCode.title_comma,
        StockFindingCode.keyword_duplicate,
        StockFindingCode.category_missing,
    ]
