"""Alembic, once: each service keeps its revisions in its own package and its own schema.

A service's `migrations/env.py` is just `run_env(metadata, schema="images")`; `upgrade()`
applies every revision. Concurrent upgrades (several replicas starting) serialise on an
advisory lock.

Alembic is imported only when there is something to apply. `upgrade()` to the head first reads
the heads of the migration scripts themselves (`script_heads`: their `revision` and
`down_revision`, parsed, not imported) and the schema's `alembic_version` (one query): when
they are the same, which is every start but the first after a new revision, there is nothing
to do. That costs one connection instead of a third of a second of CPU for Alembic's import
and its run, for each schema (`imagetron up` migrates four). Anything unusual in the scripts
(branch labels, dependencies, a value that is not a literal) or any error of the query leaves
the decision to Alembic.
"""

from __future__ import annotations

import ast
import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import MetaData

log = logging.getLogger(__name__)

#: How long the check of a schema's revision may wait for PostgreSQL before Alembic decides.
CHECK_TIMEOUT_SECONDS = 10.0


def upgrade(database_url: str, script_location: Path, schema: str, revision: str = "head") -> bool:
    """Whether Alembic ran (False: the schema was at its head already). Blocking: call it
    from a thread (`asyncio.to_thread`) inside an event loop."""
    if revision == "head" and at_head(database_url, script_location, schema):
        return False
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(cfg, revision)
    return True


def at_head(database_url: str, script_location: Path, schema: str) -> bool:
    """Whether `schema` is at the head of the scripts in `script_location` (False when that
    cannot be told for sure). Blocking, like `upgrade`."""
    heads = script_heads(script_location)
    if not heads:
        return False
    try:
        applied = asyncio.run(_applied_revisions(database_url, schema))
    except Exception as exc:  # Alembic will say what is wrong, if anything is
        log.debug("could not read the %s schema's revision: %r", schema, exc)
        return False
    return applied == heads


def script_heads(script_location: Path) -> frozenset[str] | None:
    """The revisions of `script_location/versions` that no other revision follows (Alembic's
    heads), read from the scripts' source; None when Alembic's own reading is needed."""
    revisions: dict[str, tuple[str, ...]] = {}
    for path in sorted((script_location / "versions").glob("*.py")):
        if path.name == "__init__.py" or path.name.startswith(".#"):
            continue  # what Alembic skips too
        names = _literal_assignments(
            path, ("revision", "down_revision", "branch_labels", "depends_on")
        )
        revision, down = names.get("revision"), names.get("down_revision")
        if not isinstance(revision, str) or revision in revisions:
            return None
        if names.get("branch_labels") is not None or names.get("depends_on") is not None:
            return None
        if down is None:
            revisions[revision] = ()
        elif isinstance(down, str):
            revisions[revision] = (down,)
        elif isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
            revisions[revision] = tuple(down)
        else:
            return None
    followed = {down for downs in revisions.values() for down in downs}
    if not followed <= revisions.keys():
        return None  # a revision follows one that is not there: Alembic reports it
    return frozenset(revisions.keys() - followed)


_UNSET = object()


def _literal_assignments(path: Path, names: Iterable[str]) -> dict[str, Any]:
    """Module-level `name = <literal>` (or `name: T = <literal>`) of `path`; a name assigned
    anything else maps to `_UNSET`, which no caller accepts."""
    wanted = set(names)
    found: dict[str, Any] = {}
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return {name: _UNSET for name in wanted}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in wanted:
            try:
                found[target.id] = ast.literal_eval(value)
            except ValueError:
                found[target.id] = _UNSET
    return found


async def _applied_revisions(database_url: str, schema: str) -> frozenset[str]:
    """The revisions recorded in `schema`'s version table (none when it has none)."""
    import asyncpg  # what SQLAlchemy's driver is here; SQLAlchemy itself is not needed

    scheme, sep, rest = database_url.partition("://")
    connection = await asyncpg.connect(
        scheme.split("+")[0] + sep + rest, timeout=CHECK_TIMEOUT_SECONDS
    )
    try:
        table = f'"{schema}".alembic_version'
        if await connection.fetchval("SELECT to_regclass($1)", table) is None:
            return frozenset()
        rows = await connection.fetch(f"SELECT version_num FROM {table}")  # noqa: S608
        return frozenset(row["version_num"] for row in rows)
    finally:
        await connection.close()


def run_env(target_metadata: MetaData, schema: str) -> None:
    """The body of a service's alembic `env.py` (online mode only)."""
    from alembic import context
    from sqlalchemy import Connection, text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("sqlalchemy.url is not set")

    def migrate(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=lambda name, type_, _parents: type_ != "schema" or name == schema,
        )
        with context.begin_transaction():
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                await conn.commit()
                await conn.run_sync(migrate)
                await conn.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())
