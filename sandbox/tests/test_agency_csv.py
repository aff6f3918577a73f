"""The stand-in agency's CSV check answers like the portal."""

from __future__ import annotations

from imagetron_sandbox.agency.csv_check import check_csv

GOOD_HEADER = "Filename,Title,Keywords,Category,Releases\n"


def test_a_valid_csv_is_accepted():
    report = check_csv(
        "ada", "b.csv", (GOOD_HEADER + 'a.jpg,Pear,"pear,fruit",7,\n').encode(), {"a.jpg"}
    )
    assert (report.accepted, report.rows, report.problems) == (True, 1, [])


def test_bad_header_long_title_too_many_keywords_and_unknown_file():
    keywords = ",".join(f"k{i}" for i in range(50))
    text = "Filename,Title,Keywords\n" + f'a.jpg,{"x" * 71},"{keywords}",7,\n' + "c.jpg,T,k,99,\n"
    report = check_csv("ada", "b.csv", text.encode(), {"a.jpg"})
    assert not report.accepted
    messages = [(p.row, p.column, p.message) for p in report.problems]
    assert messages == [
        (1, None, "The header must be exactly Filename,Title,Keywords,Category,Releases."),
        (2, "Title", "The title is longer than 70 characters."),
        (2, "Keywords", "Too many keywords (50); at most 49."),
        (3, "Filename", "No uploaded file is named c.jpg."),
        (3, "Category", "The category must be a number from 1 to 21."),
    ]


def test_a_csv_that_is_not_utf8_is_refused():
    report = check_csv("ada", "b.csv", b"Filename,Title\n\xff\xfe", set())
    assert [p.message for p in report.problems] == ["The CSV is not UTF-8."]
