"""`upgrade()` starts Alembic only when a schema is not at the head of its scripts: the heads
are read from the scripts' source (as Alembic reads them, or not at all), the applied
revisions from the schema's version table, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from imagetron_platform import migrations
from imagetron_platform.migrations import script_heads

ENV = """
from sqlalchemy import MetaData

from imagetron_platform.migrations import run_env

run_env(MetaData(), schema={schema!r})
"""

REVISION = """
import sqlalchemy as sa
from alembic import op

revision{annotation} = {revision!r}
down_revision{annotation} = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    {body}


def downgrade() -> None:
    pass
"""


def _scripts(
    root: Path,
    revisions: dict[str, str | tuple[str, ...] | None],
    *,
    schema: str = "unused",
    bodies: dict[str, str] | None = None,
) -> Path:
    """A script location with `revisions` (revision -> down_revision), every other one
    written with annotations as Alembic's template does."""
    (root / "versions").mkdir(parents=True)
    (root / "env.py").write_text(ENV.format(schema=schema))
    for n, (revision, down) in enumerate(revisions.items()):
        (root / "versions" / f"{n:04d}_{revision}.py").write_text(
            REVISION.format(
                revision=revision,
                down=down,
                annotation=": str" if n % 2 else "",
                body=(bodies or {}).get(revision, "pass"),
            )
        )
    return root


def _alembic_heads(location: Path) -> frozenset[str]:
    return frozenset(ScriptDirectory(str(location)).get_heads())


@pytest.mark.parametrize(
    "revisions",
    [
        {"a": None},
        {"a": None, "b": "a", "c": "b"},
        {"a": None, "b": "a", "c": "a"},  # two branches: two heads
        {"a": None, "b": "a", "c": "a", "d": ("b", "c")},  # merged again
        {"a": None, "b": "a", "c": "a", "d": ["b", "c"], "e": "d", "f": "a"},
    ],
)
def test_the_heads_are_alembics(
    tmp_path: Path, revisions: dict[str, str | tuple[str, ...] | None]
) -> None:
    location = _scripts(tmp_path, revisions)
    assert script_heads(location) == _alembic_heads(location)


def test_scripts_it_cannot_read_for_sure_are_left_to_alembic(tmp_path: Path) -> None:
    location = _scripts(tmp_path / "labels", {"a": None, "b": "a"})
    first = next((location / "versions").glob("0000_*.py"))
    first.write_text(first.read_text().replace("branch_labels = None", "branch_labels = ('x',)"))
    assert script_heads(location) is None

    location = _scripts(tmp_path / "computed", {"a": None, "b": "a"})
    second = next((location / "versions").glob("0001_*.py"))
    second.write_text(second.read_text().replace("down_revision: str = 'a'", "down_revision = A"))
    assert script_heads(location) is None

    location = _scripts(tmp_path / "missing", {"b": "a"})  # follows a revision not there
    assert script_heads(location) is None

    location = _scripts(tmp_path / "twice", {"a": None})
    (location / "versions" / "9999_again.py").write_text(
        next((location / "versions").glob("0000_*.py")).read_text()
    )
    assert script_heads(location) is None


@pytest.fixture
def schema(postgres_asyncpg_dsn: str) -> Iterator[str]:
    name = f"migrations_{uuid.uuid4().hex[:12]}"
    yield name

    async def drop() -> None:
        connection = await asyncpg.connect(postgres_asyncpg_dsn)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await connection.close()

    asyncio.run(drop())


def _columns(dsn: str, schema: str) -> list[str]:
    async def read() -> list[str]:
        connection = await asyncpg.connect(dsn)
        try:
            rows = await connection.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = $1 AND table_name = 'things' ORDER BY column_name",
                schema,
            )
            return [row["column_name"] for row in rows]
        finally:
            await connection.close()

    return asyncio.run(read())


@pytest.mark.integration
def test_alembic_runs_only_for_a_schema_behind_its_head(
    tmp_path: Path,
    schema: str,
    postgres_dsn: str,
    postgres_asyncpg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    location = _scripts(
        tmp_path,
        {"0001": None, "0002": "0001"},
        schema=schema,
        bodies={
            "0001": f"op.create_table('things', sa.Column('id', sa.Integer), schema={schema!r})",
            "0002": f"op.add_column('things', sa.Column('name', sa.Text), schema={schema!r})",
        },
    )
    runs: list[str] = []
    alembic_upgrade = command.upgrade

    def counted(config: object, revision: str) -> None:
        runs.append(revision)
        alembic_upgrade(config, revision)  # type: ignore[arg-type]

    monkeypatch.setattr(command, "upgrade", counted)

    # A schema that does not exist yet, then one a revision behind: both migrate.
    migrations.upgrade(postgres_dsn, location, schema, "0001")
    assert _columns(postgres_asyncpg_dsn, schema) == ["id"]
    assert not migrations.at_head(postgres_dsn, location, schema)
    migrations.upgrade(postgres_dsn, location, schema)
    assert runs == ["0001", "head"]
    assert _columns(postgres_asyncpg_dsn, schema) == ["id", "name"]

    # At its head: nothing to do, and Alembic is not asked.
    assert migrations.at_head(postgres_dsn, location, schema)
    migrations.upgrade(postgres_dsn, location, schema)
    assert runs == ["0001", "head"]

    # A new revision in the scripts: behind again, and migrated.
    (location / "versions" / "0002_0003.py").write_text(
        REVISION.format(
            revision="0003",
            down="0002",
            annotation="",
            body=f"op.add_column('things', sa.Column('size', sa.Integer), schema={schema!r})",
        )
    )
    migrations.upgrade(postgres_dsn, location, schema)
    assert runs == ["0001", "head", "head"]
    assert _columns(postgres_asyncpg_dsn, schema) == ["id", "name", "size"]


@pytest.mark.integration
def test_when_the_version_cannot_be_read_alembic_decides(tmp_path: Path, schema: str) -> None:
    location = _scripts(tmp_path, {"0001": None}, schema=schema)
    unreachable = "postgresql+asyncpg://nobody:secret@127.0.0.1:9/none"
    assert not migrations.at_head(unreachable, location, schema)
