"""The migrations and `tables.py` describe one schema, on SQLite and PostgreSQL; `Store.start()` brings
a database to head, also when several processes start at once against one PostgreSQL schema."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, inspect, text
from sqlalchemy.engine import Connection

from gateway.errors import StoreUnavailable
from gateway.settings import StoreSettings
from gateway.store import Store
from gateway.store.migrate import alembic_config, differences, head_revision
from gateway.store.tables import metadata
from tests.conftest import POSTGRES_URL


def store_for(settings: StoreSettings, tmp_path: Path) -> Store:
    return Store(settings.url or f"sqlite+aiosqlite:///{tmp_path}/gateway.db", schema=settings.db_schema)


async def started(settings: StoreSettings, tmp_path: Path) -> Store:
    store = store_for(settings, tmp_path)
    await store.start()
    return store


async def revision(store: Store) -> str | None:
    async with store.door.read() as conn:
        rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    assert len(rows) <= 1
    return rows[0] if rows else None


async def test_a_migrated_database_matches_tables_py(store_settings: StoreSettings, tmp_path: Path) -> None:
    """Fails when a table or column is added to tables.py without a migration (see the README in
    gateway/store/migrations for the one command that writes it)."""
    store = await started(store_settings, tmp_path)
    try:
        assert await revision(store) == head_revision()
        async with store.door.read() as conn:
            diffs = await conn.run_sync(differences)
        assert diffs == [], f"tables.py and the migrations disagree; write a revision: {diffs}"
    finally:
        await store.stop()


def with_changes(base: MetaData) -> MetaData:
    """tables.py as someone might change it: a new table and a new column on an existing one."""
    changed = MetaData(naming_convention=dict(base.naming_convention))
    for table in base.tables.values():
        table.to_metadata(changed)
    Table("referral_attachments", changed, Column("seq", Integer, primary_key=True), Column("kind", String(32)))
    changed.tables["referrals"].append_column(Column("urgency", String(16)))
    return changed


async def test_the_check_sees_tables_and_columns_without_a_migration(
    store_settings: StoreSettings, tmp_path: Path
) -> None:
    store = await started(store_settings, tmp_path)
    try:
        async with store.door.read() as conn:
            diffs = await conn.run_sync(lambda sync: differences(sync, with_changes(metadata)))
    finally:
        await store.stop()
    kinds = {(d[0], getattr(d[1], "name", None) if d[0] == "add_table" else d[3].name) for d in diffs}
    assert kinds == {("add_table", "referral_attachments"), ("add_column", "urgency")}


async def test_a_restart_finds_the_database_at_head(store_settings: StoreSettings, tmp_path: Path) -> None:
    first = await started(store_settings, tmp_path)
    await first.stop()
    again = await started(store_settings, tmp_path)
    try:
        assert await revision(again) == head_revision()
    finally:
        await again.stop()


async def test_every_migration_goes_down_and_up_again(store_settings: StoreSettings, tmp_path: Path) -> None:
    store = await started(store_settings, tmp_path)
    try:
        async with store.door.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.downgrade(alembic_config(sync), "base"))
            assert await conn.run_sync(tables_in) == {"alembic_version"}
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
            assert await conn.run_sync(tables_in) == {*metadata.tables, "alembic_version"}
    finally:
        await store.stop()


def tables_in(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_stores_in_several_processes_migrate_one_postgresql_schema_once(postgres_schema: str) -> None:
    """Replicas starting together: the advisory lock lets one migrate while the others wait."""
    stores = [Store(POSTGRES_URL, schema=postgres_schema) for _ in range(4)]
    try:
        await asyncio.gather(*(s.start() for s in stores))
        assert [await revision(s) for s in stores] == [head_revision()] * 4
        async with stores[0].door.read() as conn:
            assert await conn.run_sync(differences) == []
    finally:
        await asyncio.gather(*(s.stop() for s in stores))


async def test_a_database_made_before_migrations_is_refused_with_the_reason(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/old.db")
    metadata.create_all(engine)
    engine.dispose()
    store = Store(f"sqlite+aiosqlite:///{tmp_path}/old.db")
    with pytest.raises(StoreUnavailable, match="no migration history"):
        await store.start()
