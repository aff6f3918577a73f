"""The portal's check of an uploaded metadata CSV (Adobe Stock's rules), answered like the
portal: the file's problems first (encoding, header, size), then each row's."""

from __future__ import annotations

import csv
import io

from pydantic import BaseModel

HEADER = ["Filename", "Title", "Keywords", "Category", "Releases"]
MAX_ROWS = 5000
MAX_BYTES = 1_000_000
MAX_FILENAME = 30
MAX_TITLE = 70
MAX_KEYWORDS = 49


class CsvProblem(BaseModel):
    row: int  # 0 for the file, 1 for the header, 2.. for the data rows
    column: str | None = None
    message: str


class CsvReport(BaseModel):
    user: str
    file: str
    accepted: bool
    rows: int
    problems: list[CsvProblem]


def check_csv(user: str, name: str, data: bytes, uploaded: set[str]) -> CsvReport:
    """`uploaded`: the names of the files the user has uploaded (rows must name one)."""
    problems: list[CsvProblem] = []
    rows = 0
    if len(data) > MAX_BYTES:
        problems.append(CsvProblem(row=0, message=f"The CSV is larger than {MAX_BYTES} bytes."))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.append(CsvProblem(row=0, message="The CSV is not UTF-8."))
        return CsvReport(user=user, file=name, accepted=False, rows=0, problems=problems)
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != HEADER:
        problems.append(
            CsvProblem(row=1, message=f"The header must be exactly {','.join(HEADER)}.")
        )
    for number, row in enumerate(reader, start=2):
        rows += 1
        problems += _check_row(number, row, uploaded)
    if rows > MAX_ROWS:
        problems.append(CsvProblem(row=0, message=f"The CSV has more than {MAX_ROWS} rows."))
    return CsvReport(user=user, file=name, accepted=not problems, rows=rows, problems=problems)


def _check_row(number: int, row: list[str], uploaded: set[str]) -> list[CsvProblem]:
    if len(row) != len(HEADER):
        return [CsvProblem(row=number, message=f"The row has {len(row)} columns, not 5.")]
    filename, title, keywords, category, _releases = row
    problems: list[CsvProblem] = []

    def problem(column: str, message: str) -> None:
        problems.append(CsvProblem(row=number, column=column, message=message))

    if not filename or len(filename) > MAX_FILENAME:
        problem("Filename", f"The file name must have 1 to {MAX_FILENAME} characters.")
    elif filename not in uploaded:
        problem("Filename", f"No uploaded file is named {filename}.")
    if not title.strip():
        problem("Title", "The title is required.")
    elif len(title) > MAX_TITLE:
        problem("Title", f"The title is longer than {MAX_TITLE} characters.")
    elif "," in title:
        problem("Title", "The title must not contain commas.")
    words = [k.strip() for k in keywords.split(",") if k.strip()]
    if not words:
        problem("Keywords", "Keywords are required.")
    elif len(words) > MAX_KEYWORDS:
        problem("Keywords", f"Too many keywords ({len(words)}); at most {MAX_KEYWORDS}.")
    if category and not (category.isdigit() and 1 <= int(category) <= 21):
        problem("Category", "The category must be a number from 1 to 21.")
    return problems
