"""The store's writer: a batch runs whole on the writer thread (SQLite) in one transaction that
commits when it returns and rolls back when it raises; driver errors become StoreUnavailable."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Connection, func, select

from gateway.errors import StoreUnavailable
from gateway.store.rows import write_steps
from gateway.store.store import Store
from gateway.store.tables import history


def _steps_then(conn: Connection, referral_id: str, fail: bool) -> str:
    write_steps(conn, referral_id, [("one", {}), ("two", {})])
    if fail:
        raise RuntimeError("the batch failed half way")
    return threading.current_thread().name


async def _steps(store: Store, referral_id: str) -> int:
    async with store.door.read() as conn:
        query = select(func.count()).select_from(history).where(history.c.referral_id == referral_id)
        return int((await conn.execute(query)).scalar_one())


async def test_a_batch_commits_whole_and_on_sqlite_off_the_event_loop(store: Store) -> None:
    thread = await store.write(_steps_then, "r-1", False)
    assert await _steps(store, "r-1") == 2
    if not store.locks_rows:
        assert thread.startswith("store-writer")
        assert thread != threading.current_thread().name


async def test_a_batch_that_raises_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError, match="half way"):
        await store.write(_steps_then, "r-2", True)
    assert await _steps(store, "r-2") == 0


async def test_a_driver_error_is_store_unavailable(store: Store) -> None:
    def broken(conn: Connection) -> None:
        conn.exec_driver_sql("INSERT INTO no_such_table VALUES (1)")

    with pytest.raises(StoreUnavailable, match="did not commit"):
        await store.write(broken)
