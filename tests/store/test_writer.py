"""The store's writer: a batch runs whole on the writer thread (SQLite) in one transaction that
commits when it returns and rolls back when it raises; driver errors become StoreUnavailable."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select

from gateway.audit.events import Entity
from gateway.audit.trail import AuditTrail
from gateway.errors import StoreUnavailable
from gateway.inbound_log.arrival import Arrival
from gateway.monitoring.retention import Pruner
from gateway.settings import RetentionSettings
from gateway.store.deliveries import Deliveries, DeliveryKey, Outcome
from gateway.store.rows import write_steps
from gateway.store.store import Store
from gateway.store.tables import history
from tests.store.test_group_commit import new_referral


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


async def test_on_sqlite_every_write_of_every_repository_goes_through_the_writer(store: Store) -> None:
    """One connection writes the file: the async engine (aiosqlite) only reads, so no two writers
    wait on each other's lock. Writes here go through the referrals', Tasks', deliveries', dead
    letters', inbound log's, audit trail's and retention's doors."""
    if store.locks_rows:
        pytest.skip("PostgreSQL's writers share one server; this is SQLite's single writer")
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "DELETE", "REPLACE"}:
            seen.append(statement)

    event.listen(store.door.engine.sync_engine, "before_cursor_execute", note)
    try:
        await _every_kind_of_write(store)
    finally:
        event.remove(store.door.engine.sync_engine, "before_cursor_execute", note)
    assert seen == [], f"written through the async engine: {seen[:3]}"
    assert await _steps(store, "r-w") > 0


async def _every_kind_of_write(store: Store) -> None:
    referral = (await store.accept(new_referral(uuid.uuid4().hex))).referral
    value = new_referral(uuid.uuid4().hex).event
    updated = await store.update(referral, "on-hold", value, [("updated", {})])
    await store.add_step("r-w", "noted", {})
    ledger = Deliveries(store)
    key = DeliveryKey(value.event_id, "physio-north", updated.id, "t", "referrals.msk-pain", 0, 1)
    await ledger.record(key, None, Outcome("delivered", 1, (("delivered", {}),), format="fhir-rest"))
    await store.inbound.record(Arrival("pad", b"a=1").final_row())
    trail = AuditTrail(store, lambda: None, topic="gateway.audit")
    await trail.start()
    try:
        await trail.record("read", Entity(f"ServiceRequest/{updated.id}"))
    finally:
        await trail.stop()
    await Pruner(store, RetentionSettings(), "referrals.deadletter").prune()
