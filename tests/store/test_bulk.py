"""Appending to several tables at once (store/bulk.py): on PostgreSQL one statement, elsewhere one
executemany a table; either way every value comes back as written, rows in the order given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from gateway.store.bulk import execute_many, insert_all, merged
from gateway.store.store import Store
from gateway.store.tables import history, outbox, processed_messages

AT = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=1)))


def outbox_row(n: int, **changes: Any) -> dict[str, Any]:
    row = {
        "event_id": f"e{n}",
        "referral_id": f"r{n}",
        "topic": "referrals.iapt",
        "key": "9434765919",
        "headers": '{"ce_type": "t"}',
        "value": '{"it\'s": "quoted"}',
        "created_at": AT,
        "published_at": None,
        "partition": n % 3,
        "offset": 2**40 + n,  # BIGINT
        "attempts": 0,
    }
    return row | changes


async def rows_of(store: Store, table: Any) -> list[Any]:
    async with store.door.read() as conn:
        return list((await conn.execute(select(table).order_by(*table.primary_key.columns))).all())


async def test_every_table_gets_its_rows_in_order_with_every_value_as_written(store: Store) -> None:
    events = [outbox_row(n) for n in range(5)] + [outbox_row(5, published_at=AT, partition=None, offset=None)]
    steps = [{"referral_id": "r1", "at": AT, "step": s, "detail": "{}"} for s in ("received", "routed", "published")]
    messages = [{"sender": "GP^A81001", "message_id": "MSG1", "referral_id": "r1", "created_at": AT}]

    def write(conn: Connection) -> None:
        insert_all(
            conn, merged({outbox: events[:3], history: steps}, {processed_messages: messages}, {outbox: events[3:]})
        )

    await store.write(write)

    stored = await rows_of(store, outbox)
    assert [r.event_id for r in stored] == [f"e{n}" for n in range(6)], "rows keep their order, across the parts"
    for row, written in zip(stored, events, strict=True):
        got = {name: getattr(row, name) for name in written}
        assert got == written | {"created_at": AT.astimezone(UTC), "published_at": written["published_at"] and AT}
    assert stored[0].created_at.tzinfo is not None
    assert [(r.step, r.at) for r in await rows_of(store, history)] == [(s["step"], AT) for s in steps]
    assert [(r.sender, r.message_id) for r in await rows_of(store, processed_messages)] == [("GP^A81001", "MSG1")]


async def test_a_batch_that_breaks_a_constraint_writes_nothing(store: Store) -> None:
    await store.write(lambda conn: insert_all(conn, {outbox: [outbox_row(1)]}))
    steps = [{"referral_id": "r2", "at": AT, "step": "received", "detail": "{}"}]

    with pytest.raises(IntegrityError):  # e1 again: the unique event id
        await store.write(lambda conn: insert_all(conn, {history: steps, outbox: [outbox_row(2), outbox_row(1)]}))

    assert [r.event_id for r in await rows_of(store, outbox)] == ["e1"]
    assert await rows_of(store, history) == []


async def test_rows_of_one_table_must_have_the_same_columns(store: Store) -> None:
    uneven = [outbox_row(1), {k: v for k, v in outbox_row(2).items() if k != "published_at"}]
    with pytest.raises(ValueError, match="rows for outbox differ in their columns"):
        await store.write(lambda conn: insert_all(conn, {outbox: uneven}))
    assert await rows_of(store, outbox) == []


async def test_nothing_to_write_is_no_statement(store: Store) -> None:
    await store.write(lambda conn: insert_all(conn, {outbox: [], history: []}))
    assert await rows_of(store, outbox) == []


async def test_the_prepared_path_writes_what_sqlalchemy_would_write(store: Store) -> None:
    """The statements compiled once and fed plain tuples (SQLite) store every value exactly as a
    SQLAlchemy insert and update of the same rows do: read back raw, the two are the same text."""
    steps = [{"referral_id": f"r{n}", "at": AT, "step": "received", "detail": "{}"} for n in (1, 2)]
    mark = (
        update(outbox)
        .where(outbox.c.event_id == bindparam("b_event", type_=outbox.c.event_id.type))
        .values(published_at=bindparam("b_at", type_=outbox.c.published_at.type))
    )

    def write(conn: Connection) -> None:
        execute_many(conn, insert(history), steps[:1])
        conn.execute(insert(history), steps[1:])
        execute_many(conn, insert(outbox), [outbox_row(1)])
        conn.execute(insert(outbox), [outbox_row(2)])
        execute_many(conn, mark, [{"b_event": "e1", "b_at": AT}])
        conn.execute(update(outbox).where(outbox.c.event_id == "e2").values(published_at=AT))

    await store.write(write)

    async with store.door.read() as conn:
        raw = (await conn.execute(text("SELECT CAST(at AS TEXT) FROM referral_history ORDER BY seq"))).scalars().all()
        marked = (
            await conn.execute(
                text("SELECT CAST(published_at AS TEXT), CAST(created_at AS TEXT) FROM outbox ORDER BY seq")
            )
        ).all()
    assert raw[0] == raw[1]
    assert marked[0] == marked[1]
    assert [(r.at, r.step) for r in await rows_of(store, history)] == [(AT, "received")] * 2
    assert {r.published_at for r in await rows_of(store, outbox)} == {AT}
