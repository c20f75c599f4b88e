"""Bringing the store's database to the head Alembic revision, on SQLite and PostgreSQL alike.

`Store.start()` calls `upgrade_to_head`. Several gateway processes may start at once against one
PostgreSQL, so there the whole upgrade runs in one transaction (PostgreSQL's DDL is transactional)
under an advisory lock: one process migrates, the others wait and then find the database at head.

`differences` is what the tests use to prove the migrations and `tables.py` agree.
Must not: define tables (tables.py does), or write any row but Alembic's own version row.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import StoreUnavailable
from gateway.store.tables import metadata

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = "referral-gateway:migrations:"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration without an ini file; `connection` is used as is when given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreUnavailable(f"no migrations found in {MIGRATIONS_DIR}")
    return head


async def upgrade_to_head(engine: AsyncEngine, schema: str | None) -> None:
    """Create the schema if asked for, then apply every migration not yet applied, in one transaction."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            lock = text("SELECT pg_advisory_xact_lock(hashtext(:key))")
            await conn.execute(lock, {"key": _LOCK_KEY + (schema or "")})
            if schema:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.run_sync(_upgrade)


def _upgrade(connection: Connection) -> None:
    before = MigrationContext.configure(connection).get_current_revision()
    if before is None and inspect(connection).has_table("referrals"):
        raise StoreUnavailable(
            "the database holds the gateway's tables but no migration history (it was created before the "
            "store had migrations); move it aside, or mark it with `alembic stamp` if it matches a revision"
        )
    try:
        command.upgrade(alembic_config(connection), "head")
    except CommandError as exc:  # e.g. a revision newer than this code knows
        raise StoreUnavailable(f"the store's schema cannot be brought to this version's head: {exc}") from exc
    after = MigrationContext.configure(connection).get_current_revision()
    if after != before:
        log.info("store schema migrated from %s to %s", before or "empty", after)


def compare_options(dialect_name: str) -> dict[str, Any]:
    """What env.py configures Alembic with; the comparison in `differences` uses the same."""
    return {"compare_type": True, "render_as_batch": dialect_name == "sqlite"}


def differences(connection: Connection, target: MetaData = metadata) -> list[Any]:
    """What autogenerate would write to make the database match `target` (empty: they agree)."""
    context = MigrationContext.configure(connection, opts=compare_options(connection.dialect.name))
    diffs: list[Any] = compare_metadata(context, target)
    return [d for d in diffs if not _is_alembic_version(d)]


def _is_alembic_version(diff: Any) -> bool:
    return isinstance(diff, tuple) and len(diff) > 1 and getattr(diff[1], "name", None) == "alembic_version"
