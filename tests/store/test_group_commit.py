"""Group commit: concurrent accepts share transactions, resends find the first referral, and a
constraint violation in one write never fails the others — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.bus.events import new_event
from gateway.settings import StoreSettings
from gateway.store import duplicates
from gateway.store.store import NewReferral, Store, StoredReferral, now
from gateway.store.tables import outbox, pairs_among, referrals


def new_referral(ubrn: str, message: tuple[str, str] | None = None) -> NewReferral:
    referral_id = str(uuid.uuid5(uuid.NAMESPACE_URL, ubrn))
    resource = json.dumps({"resourceType": "ServiceRequest", "id": referral_id})
    row: dict[str, Any] = {
        "id": referral_id,
        "identifier_system": "urn:test",
        "identifier_value": ubrn,
        "nhs_number": "9434765919",
        "requester": "A81001",
        "performer": "RX1PN",
        "status": "active",
        "version": 1,
        "resource": resource,
        "channel": "test",
        "sender": "A81001",
        "correlation_id": "c",
        "topic": "referrals.msk-pain",
        "rule": "r",
        "created_at": now(),
        "updated_at": now(),
    }
    event = new_event(
        topic="referrals.msk-pain",
        key="9434765919",
        event_type="t",
        source="s",
        subject=f"ServiceRequest/{referral_id}",
        value=resource,
        correlation_id="c",
    )
    return NewReferral(row=row, event=event, steps=[("received", {})], message_key=message)


@pytest.fixture
async def store(store_settings: StoreSettings, tmp_path: Any) -> Any:
    store = Store(
        store_settings.url or f"sqlite+aiosqlite:///{tmp_path}/g.db", batch_max=64, schema=store_settings.db_schema
    )
    await store.start()
    yield store
    await store.stop()


async def counts(store: Store) -> tuple[int, int]:
    async with store.door.read() as conn:
        r = (await conn.execute(select(func.count()).select_from(referrals))).scalar_one()
        o = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
    return int(r), int(o)


async def test_concurrent_accepts_and_resends_commit_each_referral_once(store: Store) -> None:
    ubrns = [uuid.uuid4().hex for _ in range(50)]
    results = await asyncio.gather(*(store.accept(new_referral(u)) for u in ubrns + ubrns))
    created = [r for r in results if r.created]
    assert len(created) == 50
    assert {r.referral.id for r in results} == {r.referral.id for r in created}
    assert await counts(store) == (50, 50)


async def test_a_resent_message_id_finds_the_first_referral(store: Store) -> None:
    first = await store.accept(new_referral("a", ("GP1", "MSG-1")))
    again = await store.accept(new_referral("b", ("GP1", "MSG-1")))  # same control id, other content
    assert (first.created, again.created) == (True, False)
    assert again.referral.id == first.referral.id
    assert await store.message_referral("GP1", "MSG-1") == first.referral


async def test_a_constraint_violation_fails_only_its_own_write(store: Store) -> None:
    clash = new_referral("x")
    clash.event = new_event(topic="t", key="k", event_type="t", source="s", subject="s", value="{}", correlation_id="c")
    await store.accept(clash)
    # the same outbox event id again, under another referral: the batch falls back to one-by-one
    dup_event = new_referral("y")
    dup_event.event = clash.event
    outcomes = await asyncio.gather(store.accept(dup_event), store.accept(new_referral("z")), return_exceptions=True)
    assert isinstance(outcomes[0], Exception)
    assert not isinstance(outcomes[1], Exception) and outcomes[1].created
    assert await counts(store) == (2, 2)


def _with_identifier(ubrn: str, system: str, message: tuple[str, str] | None = None) -> NewReferral:
    new = new_referral(f"{system}|{ubrn}", message)
    new.row["identifier_system"], new.row["identifier_value"] = system, ubrn
    return new


async def test_values_shared_across_pairs_are_not_taken_for_a_duplicate(store: Store) -> None:
    """The duplicate checks ask each column for its own values (index-friendly), then keep only the
    exact pairs: (A, 2) is new although A and 2 are both known, as parts of (A, 1) and (B, 2)."""
    await asyncio.gather(
        store.accept(_with_identifier("1", "urn:A", ("GP1", "M-1"))),
        store.accept(_with_identifier("2", "urn:B", ("GP2", "M-2"))),
    )
    crossed = await asyncio.gather(
        store.accept(_with_identifier("2", "urn:A", ("GP1", "M-2"))),
        store.accept(_with_identifier("1", "urn:B", ("GP2", "M-1"))),
    )
    assert [r.created for r in crossed] == [True, True]
    again = await store.accept(_with_identifier("2", "urn:A", ("GP9", "M-9")))
    assert not again.created and again.referral.id == crossed[0].referral.id
    assert await counts(store) == (4, 4)


async def test_the_duplicate_check_searches_the_index_rather_than_scanning(store: Store) -> None:
    """On SQLite a row-value IN scans the whole table, so every batch grew slower with the store."""
    if store.locks_rows:
        pytest.skip("the query plan checked here is SQLite's")
    query = select(referrals.c.id).where(
        pairs_among(referrals.c.identifier_system, referrals.c.identifier_value, [("urn:A", "1"), ("urn:B", "2")])
    )
    sql = str(query.compile(compile_kwargs={"literal_binds": True}))
    async with store.door.read() as conn:
        plan = " ".join(str(row[-1]) for row in (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")).all())
    assert "USING INDEX" in plan and "SCAN referrals" not in plan, plan


@pytest.mark.parametrize("joined", [False, True], ids=["by identifier", "by message id"])
async def test_the_prepared_duplicate_checks_search_the_index_too(store: Store, joined: bool) -> None:
    """SQLite's checks are SQL written once per batch shape; their plans search the indexes as well."""
    if store.locks_rows:
        pytest.skip("the query plan checked here is SQLite's")
    first, second = ("sender", "message_id") if joined else ("identifier_system", "identifier_value")
    sql = duplicates._sql(first, second, 2, 2, 2, joined)
    values = ("urn:A", "urn:B", "1", "2", "urn:A", "1", "urn:B", "2")
    async with store.door.read() as conn:
        plan = " ".join(str(row[-1]) for row in (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", values)).all())
    assert "SCAN r" not in plan and "SCAN m" not in plan, plan


def test_the_duplicate_checks_answer_with_a_stored_referral_s_fields_in_order() -> None:
    assert duplicates.COLUMNS == tuple(f.name for f in dataclasses.fields(StoredReferral))


async def test_a_batch_finds_earlier_referrals_by_identifier_and_by_message_id(store: Store) -> None:
    ubrn, message = uuid.uuid4().hex, ("GP^A81001", uuid.uuid4().hex)
    first = await store.accept(new_referral(ubrn))
    by_message = await store.accept(new_referral(uuid.uuid4().hex, message))
    again = await asyncio.gather(
        store.accept(new_referral(ubrn)), store.accept(new_referral(uuid.uuid4().hex, message))
    )
    assert [(r.created, r.referral) for r in again] == [(False, first.referral), (False, by_message.referral)]
    assert again[0].referral.updated_at.tzinfo is not None
