"""Dead letters as the store keeps them: the outbox rows of the dead-letter topic, the history steps
that replayed or discarded them, the delivery ledger's word on each, and a replay's queued record.
The engineers' view of them (gateway/monitoring/dead_letters.py) asks here.
Must not: decide whether a dead letter may be replayed (the view does) or hand a connection out.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select
from sqlalchemy.exc import IntegrityError

from gateway.store.outbox import OutboxRow
from gateway.store.rows import write_events, write_steps
from gateway.store.store import HistoryEntry, OutboxEvent, Store
from gateway.store.tables import deliveries, history, outbox, pairs_among


async def on_topic(
    store: Store, topic: str, since: datetime | None, until: datetime | None, mentioning: str | None
) -> list[OutboxRow]:
    """The topic's outbox rows, newest first; `mentioning`: only rows whose headers hold that value
    (coarse: the caller checks the header it means)."""
    query = select(outbox).where(outbox.c.topic == topic).order_by(outbox.c.created_at.desc())
    if since is not None:
        query = query.where(outbox.c.created_at >= since)
    if until is not None:
        query = query.where(outbox.c.created_at < until)
    if mentioning is not None:
        query = query.where(outbox.c.headers.contains(json.dumps(mentioning)))
    async with store.door.read() as conn:
        return [_row(r) for r in (await conn.execute(query)).all()]


async def one_on_topic(store: Store, topic: str, event_id: str) -> OutboxRow | None:
    query = select(outbox).where(outbox.c.event_id == event_id, outbox.c.topic == topic)
    async with store.door.read() as conn:
        found = (await conn.execute(query)).first()
    return _row(found) if found else None


async def steps_of(store: Store, referral_ids: Collection[str], steps: Collection[str]) -> list[HistoryEntry]:
    """Those referrals' history steps of these kinds, in the order written."""
    query = (
        select(history)
        .where(history.c.referral_id.in_(list(referral_ids)), history.c.step.in_(list(steps)))
        .order_by(history.c.seq)
    )
    async with store.door.read() as conn:
        rows = (await conn.execute(query)).all()
    return [HistoryEntry(r.at, r.step, json.loads(r.detail)) for r in rows]


async def delivery_statuses(store: Store, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(event id, receiver) → the delivery ledger's status, for the keys it holds."""
    if not keys:
        return {}
    query = select(deliveries.c.event_id, deliveries.c.receiver, deliveries.c.status).where(
        pairs_among(deliveries.c.event_id, deliveries.c.receiver, keys)
    )
    async with store.door.read() as conn:
        rows = (await conn.execute(query)).all()
    return {(r.event_id, r.receiver): r.status for r in rows}


async def queue_replay(store: Store, record: OutboxEvent, referral_id: str, step: tuple[str, dict[str, Any]]) -> bool:
    """Commit the replayed record with its history step; False when that record was queued before."""
    try:
        await store.write(_queue, record, referral_id, step)
    except IntegrityError:
        return False
    return True


def _queue(conn: Connection, record: OutboxEvent, referral_id: str, step: tuple[str, dict[str, Any]]) -> None:
    write_events(conn, [record], referral_id)
    write_steps(conn, referral_id, [step])


def _row(r: Row[Any]) -> OutboxRow:
    return OutboxRow(
        r.seq, r.event_id, r.referral_id, r.topic, r.key, json.loads(r.headers), r.value, r.attempts, r.created_at
    )
