"""The outbox, as the relay sees it: claim a batch of unpublished rows, then record what Kafka
acknowledged, in one transaction.

On PostgreSQL the claim is `FOR UPDATE SKIP LOCKED`, so relays in several gateway processes share
the outbox without publishing a row twice; a relay that dies mid-batch releases its rows with its
transaction. SQLite serves one process, whose single relay needs no lock.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.deliveries import DEAD_LETTERED, DELIVERED, RETRYING
from gateway.store.store import Store, now
from gateway.store.tables import deliveries, history, outbox


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    event_id: str
    referral_id: str
    topic: str
    key: str
    headers: dict[str, str]
    value: str
    attempts: int
    created_at: datetime  # the commit that made it: the relay measures its publishing latency from here


class Claim:
    """Rows held for one publish round; the marks commit with the claim."""

    def __init__(self, conn: AsyncConnection, rows: list[OutboxRow]) -> None:
        self._conn = conn
        self.rows = rows

    async def published(self, done: Sequence[tuple[OutboxRow, int, int]]) -> None:
        """Kafka acknowledged these rows at (partition, offset)."""
        if not done:
            return
        at = now()
        await self._conn.execute(
            update(outbox)
            .where(outbox.c.seq == bindparam("b_seq"))
            .values(published_at=at, partition=bindparam("b_partition"), offset=bindparam("b_offset")),
            [{"b_seq": row.seq, "b_partition": p, "b_offset": o} for row, p, o in done],
        )
        about_referrals = [(row, p, o) for row, p, o in done if row.referral_id]  # audit events are about none
        if not about_referrals:
            return
        await self._conn.execute(
            insert(history),
            [
                {
                    "referral_id": row.referral_id,
                    "at": at,
                    "step": "published",
                    "detail": json.dumps(
                        {
                            "topic": row.topic,
                            "partition": p,
                            "offset": o,
                            "event_id": row.event_id,
                            "event_type": row.headers.get("ce_type"),
                        }
                    ),
                }
                for row, p, o in about_referrals
            ],
        )

    async def failed(self, rows: Sequence[OutboxRow], error: str) -> None:
        if rows:
            await self._conn.execute(
                update(outbox)
                .where(outbox.c.seq.in_([r.seq for r in rows]))
                .values(attempts=outbox.c.attempts + 1, last_error=error[:2000])
            )


class Outbox:
    def __init__(self, store: Store) -> None:
        self._store = store

    @asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[Claim]:
        query = (
            select(outbox)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.seq)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._store.begin() as conn:
            rows = (await conn.execute(query)).all()
            yield Claim(
                conn,
                [
                    OutboxRow(
                        r.seq,
                        r.event_id,
                        r.referral_id,
                        r.topic,
                        r.key,
                        json.loads(r.headers),
                        r.value,
                        r.attempts,
                        r.created_at,
                    )
                    for r in rows
                ],
            )

    async def republish_unconfirmed(self, topics: Collection[str]) -> int:
        """Mark unpublished again the events on `topics` that no receiver has confirmed (delivered or
        dead-lettered): a broker that lost its log (the embedded one keeps it in memory) must get them
        again. Receivers never see one twice: delivery is idempotent by event id. The retries under way
        were lost with the log too: their origin is forgotten, so the new copy carries them on."""
        confirmed = exists().where(
            deliveries.c.event_id == outbox.c.event_id,
            deliveries.c.status.in_((DELIVERED, DEAD_LETTERED)),
        )
        statement = (
            update(outbox)
            .where(outbox.c.topic.in_(list(topics)), outbox.c.published_at.is_not(None), ~confirmed)
            .values(published_at=None, partition=None, offset=None)
        )
        forget_origin = update(deliveries).where(deliveries.c.status == RETRYING).values(origin_offset=-1)
        async with self._store.begin() as conn:
            await conn.execute(forget_origin)
            return int((await conn.execute(statement)).rowcount)
