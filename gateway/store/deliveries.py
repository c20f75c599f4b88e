"""Deliveries: what became of each (event, receiver). An attempt's row, the referral's history steps
and, for a retry or a dead letter, the outbox record are written in one transaction.

Rows are changed optimistically (`version`): when two consumers act on the same delivery, one write
wins and the other learns it was late. Must not: decide what to do with a delivery (the delivery
spine does) or talk to Kafka or a receiver.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.store.rows import outbox_rows, write_events, write_steps
from gateway.store.store import OutboxEvent, Store, now
from gateway.store.tables import deliveries, history, outbox

DELIVERED = "delivered"
RETRYING = "retrying"
DEAD_LETTERED = "dead-lettered"
ESCALATED = "uk.nhs.referral.servicerequest.escalated"  # gateway.bus.events.SERVICEREQUEST_ESCALATED


@dataclass(frozen=True)
class DeliveryKey:
    """Which event, for whom, and where the copy being acted on was first published."""

    event_id: str
    receiver: str
    referral_id: str
    event_type: str
    origin_topic: str
    origin_partition: int
    origin_offset: int


@dataclass(frozen=True)
class DeliveryRow:
    seq: int
    event_id: str
    receiver: str
    referral_id: str
    format: str | None
    status: str
    attempts: int
    version: int
    retry_id: str | None
    next_attempt_at: datetime | None
    origin_topic: str
    origin_partition: int
    origin_offset: int
    last_error: str | None
    receipt: str | None


@dataclass(frozen=True)
class Outcome:
    """What an attempt came to: the row's new state, the history steps, the record to publish."""

    status: str
    attempts: int
    steps: tuple[tuple[str, dict[str, Any]], ...]
    format: str | None = None
    retry_id: str | None = None
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    receipt: str | None = None
    record: OutboxEvent | None = None


class Deliveries:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, event_id: str, receiver: str) -> DeliveryRow | None:
        query = select(deliveries).where(deliveries.c.event_id == event_id, deliveries.c.receiver == receiver)
        return await self._one(query)

    async def waiting_before(self, referral_id: str, receiver: str, seq: int | None) -> DeliveryRow | None:
        """An earlier event of the same referral for the same receiver still waiting for a retry."""
        query = select(deliveries).where(
            deliveries.c.referral_id == referral_id,
            deliveries.c.receiver == receiver,
            deliveries.c.status == RETRYING,
        )
        if seq is not None:
            query = query.where(deliveries.c.seq < seq)
        return await self._one(query.order_by(deliveries.c.seq).limit(1))

    async def last_receiver(self, referral_id: str) -> str | None:
        """Who the referral's earlier events went to (an update goes where its referral went; not
        where an escalated copy went)."""
        query = select(deliveries.c.receiver).where(
            deliveries.c.referral_id == referral_id, deliveries.c.event_type != ESCALATED
        )
        async with self._store.door.read() as conn:
            found = (await conn.execute(query.order_by(deliveries.c.seq.desc()).limit(1))).first()
        return str(found.receiver) if found else None

    async def for_referral(self, referral_id: str) -> list[DeliveryRow]:
        query = select(deliveries).where(deliveries.c.referral_id == referral_id).order_by(deliveries.c.seq)
        async with self._store.door.read() as conn:
            return [_row(r) for r in (await conn.execute(query)).all()]

    async def record(self, key: DeliveryKey, current: DeliveryRow | None, outcome: Outcome) -> bool:
        """Write the outcome; False when another consumer (or an earlier run) already moved this delivery."""
        try:
            return await self._store.write(_record, key, current, outcome)
        except IntegrityError:
            return False

    async def look_up(
        self, wanted: Sequence[tuple[str, str, str]]
    ) -> list[tuple[DeliveryRow | None, DeliveryRow | None]]:
        """For each (event id, receiver, referral id): its delivery (`get`) and the earliest earlier
        event of the referral for that receiver still waiting for a retry (`waiting_before`), read
        for the whole batch in two queries."""
        if not wanted:
            return []
        events = select(deliveries).where(deliveries.c.event_id.in_({e for e, _, _ in wanted}))
        waiting = (
            select(deliveries)
            .where(deliveries.c.referral_id.in_({r for _, _, r in wanted}), deliveries.c.status == RETRYING)
            .order_by(deliveries.c.seq)
        )
        async with self._store.door.read() as conn:
            rows = {(r.event_id, r.receiver): _row(r) for r in (await conn.execute(events)).all()}
            retrying = [_row(r) for r in (await conn.execute(waiting)).all()]
        found = []
        for event_id, receiver, referral_id in wanted:
            current = rows.get((event_id, receiver))
            earlier = next(
                (
                    r
                    for r in retrying
                    if r.referral_id == referral_id
                    and r.receiver == receiver
                    and (current is None or r.seq < current.seq)
                ),
                None,
            )
            found.append((current, earlier))
        return found

    async def record_many(self, outcomes: Sequence[tuple[DeliveryKey, DeliveryRow | None, Outcome]]) -> list[bool]:
        """Many deliveries' outcomes (`record`) in one transaction; for each, False when another
        consumer (or an earlier run) had moved it. A batch that hits a constraint (a row another
        consumer inserted first) is written again one outcome at a time, so only that one is refused."""
        if not outcomes:
            return []
        try:
            return await self._store.write(_write_outcomes, outcomes)
        except IntegrityError:
            return [await self.record(*outcome) for outcome in outcomes]

    async def record_unaddressed(
        self, referral_id: str, steps: tuple[tuple[str, dict[str, Any]], ...], record: OutboxEvent
    ) -> bool:
        """A dead letter for an event no receiver can be named for; False if it was written before."""
        try:
            await self._store.write(_record_unaddressed, referral_id, steps, record)
        except IntegrityError:
            return False
        return True

    async def _one(self, query: Any) -> DeliveryRow | None:
        async with self._store.door.read() as conn:
            found = (await conn.execute(query)).first()
        return _row(found) if found else None


def _record(conn: Connection, key: DeliveryKey, current: DeliveryRow | None, outcome: Outcome) -> bool:
    if not _write_row(conn, key, current, outcome):
        return False
    write_steps(conn, key.referral_id, outcome.steps)
    if outcome.record is not None:
        write_events(conn, [outcome.record], key.referral_id)
    return True


def _record_unaddressed(
    conn: Connection, referral_id: str, steps: tuple[tuple[str, dict[str, Any]], ...], record: OutboxEvent
) -> None:
    write_steps(conn, referral_id, steps)
    write_events(conn, [record], referral_id)


def _write_row(conn: Connection, key: DeliveryKey, current: DeliveryRow | None, outcome: Outcome) -> bool:
    at = now()
    values = _values(key, current, outcome, at)
    if current is None:
        identity = {"event_id": key.event_id, "receiver": key.receiver, "referral_id": key.referral_id}
        conn.execute(
            insert(deliveries).values(**identity, event_type=key.event_type, version=1, created_at=at, **values)
        )
        return True
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.seq == current.seq, deliveries.c.version == current.version)
        .values(version=current.version + 1, **values)
    )
    return bool(result.rowcount == 1)


Outcomes = Sequence[tuple[DeliveryKey, DeliveryRow | None, Outcome]]


def _write_outcomes(conn: Connection, outcomes: Outcomes) -> list[bool]:
    """The rows (new ones in one statement), then every written outcome's history steps and outbox
    records, one statement a table."""
    at = now()
    fresh = [(k, o) for k, c, o in outcomes if c is None]
    if fresh:
        conn.execute(
            insert(deliveries),
            [
                {
                    "event_id": k.event_id,
                    "receiver": k.receiver,
                    "referral_id": k.referral_id,
                    "event_type": k.event_type,
                    "version": 1,
                    "created_at": at,
                    **_values(k, None, o, at),
                }
                for k, o in fresh
            ],
        )
    written = [
        current is None
        or conn.execute(
            update(deliveries)
            .where(deliveries.c.seq == current.seq, deliveries.c.version == current.version)
            .values(version=current.version + 1, **_values(key, current, outcome, at))
        ).rowcount
        == 1
        for key, current, outcome in outcomes
    ]
    done = [(k, o) for (k, _, o), ok in zip(outcomes, written, strict=True) if ok]
    steps = [
        {"referral_id": k.referral_id, "at": at, "step": step, "detail": json.dumps(detail)}
        for k, o in done
        for step, detail in o.steps
    ]
    if steps:
        conn.execute(insert(history), steps)
    records = [row for k, o in done if o.record is not None for row in outbox_rows([o.record], k.referral_id, at)]
    if records:
        conn.execute(insert(outbox), records)
    return written


def _values(key: DeliveryKey, current: DeliveryRow | None, outcome: Outcome, at: datetime) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "attempts": outcome.attempts,
        "format": outcome.format or (current.format if current else None),
        "retry_id": outcome.retry_id,
        "next_attempt_at": outcome.next_attempt_at,
        "last_error": outcome.last_error,
        "receipt": outcome.receipt,
        "origin_topic": key.origin_topic,
        "origin_partition": key.origin_partition,
        "origin_offset": key.origin_offset,
        "updated_at": at,
    }


def _row(r: Row[Any]) -> DeliveryRow:
    return DeliveryRow(
        seq=r.seq,
        event_id=r.event_id,
        receiver=r.receiver,
        referral_id=r.referral_id,
        format=r.format,
        status=r.status,
        attempts=r.attempts,
        version=r.version,
        retry_id=r.retry_id,
        next_attempt_at=r.next_attempt_at,
        origin_topic=r.origin_topic,
        origin_partition=r.origin_partition,
        origin_offset=r.origin_offset,
        last_error=r.last_error,
        receipt=r.receipt,
    )
