"""The outbox, as the relay sees it: claim a batch of unpublished rows, then record what Kafka
acknowledged.

On PostgreSQL the claim is `FOR UPDATE SKIP LOCKED` and the marks commit in the claim's transaction,
so relays in several gateway processes share the outbox without publishing a row twice; a relay
that dies mid-batch releases its rows with its transaction. SQLite serves one process, whose single
relay needs no lock: it reads the rows, and later writes the marks, on the store's writer thread.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Integer, Update, bindparam, exists, func, insert, select, update

from gateway.store.bulk import execute_many
from gateway.store.deliveries import RETRYING
from gateway.store.door import run_statements
from gateway.store.store import Store, now
from gateway.store.tables import deliveries, history, outbox

_OVERDUE_BATCH = 1000  # overdue retries published again in one round, at most


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
    """Rows held for one publish round. What Kafka acknowledged (or refused) is noted here and written
    when the round ends, in one transaction: the claim's own on PostgreSQL (its row locks last until
    then), the store's writer on SQLite (one hop, in turn with the group commits)."""

    def __init__(self, rows: list[OutboxRow]) -> None:
        self.rows = rows
        self._published: list[tuple[OutboxRow, int, int]] = []
        self._failed: list[OutboxRow] = []
        self._error = ""

    def published(self, done: Sequence[tuple[OutboxRow, int, int]]) -> None:
        """Kafka acknowledged these rows at (partition, offset)."""
        self._published.extend(done)

    def failed(self, rows: Sequence[OutboxRow], error: str) -> None:
        self._failed.extend(rows)
        self._error = error

    def write(self, conn: Connection) -> None:
        if self._published:
            _mark_published(conn, self._published)
        if self._failed:
            conn.execute(
                update(outbox)
                .where(outbox.c.seq.in_([r.seq for r in self._failed]))
                .values(attempts=outbox.c.attempts + 1, last_error=self._error[:2000])
            )


#: The relay's mark, built once: each row's values go to the driver as they are (store/bulk.py).
_MARK = (
    update(outbox)
    .where(outbox.c.seq == bindparam("b_seq", type_=outbox.c.seq.type))
    .values(
        published_at=bindparam("b_at", type_=outbox.c.published_at.type),
        partition=bindparam("b_partition", type_=outbox.c.partition.type),
        offset=bindparam("b_offset", type_=outbox.c.offset.type),
    )
)
_HISTORY = insert(history)


def _mark_published(conn: Connection, done: Sequence[tuple[OutboxRow, int, int]]) -> None:
    at = now()
    marks = [{"b_seq": row.seq, "b_at": at, "b_partition": p, "b_offset": o} for row, p, o in done]
    execute_many(conn, _MARK, marks)
    about_referrals = [(row, p, o) for row, p, o in done if row.referral_id]  # audit events are about none
    if not about_referrals:
        return
    execute_many(
        conn,
        _HISTORY,
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


#: The relay's claim, built once (its compiled form is cached; the limit is a parameter).
_CLAIM = (
    select(outbox)
    .where(outbox.c.published_at.is_(None))
    .order_by(outbox.c.seq)
    .limit(bindparam("b_limit", type_=Integer))
    .with_for_update(skip_locked=True)
)


def _unpublished(conn: Connection, limit: int) -> list[OutboxRow]:
    return [
        OutboxRow(
            r.seq, r.event_id, r.referral_id, r.topic, r.key, json.loads(r.headers), r.value, r.attempts, r.created_at
        )
        for r in conn.execute(_CLAIM, {"b_limit": limit}).all()
    ]


def _republish(conn: Connection, again: Update, forget: Update) -> int:
    count = int(conn.execute(again).rowcount)
    conn.execute(forget)
    return count


class Outbox:
    def __init__(self, store: Store) -> None:
        self._store = store

    @asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[Claim]:
        if not self._store.locks_rows:  # SQLite: one process, one relay; reads and marks on the writer
            claim = Claim(await self._store.write(_unpublished, limit))
            yield claim
            await self._store.write(claim.write)
            return
        async with self._store.door.locking() as conn:  # FOR UPDATE SKIP LOCKED: held until the marks commit
            claim = Claim(await conn.run_sync(_unpublished, limit))
            yield claim
            await conn.run_sync(claim.write)

    async def reached(self) -> dict[tuple[str, int], int]:
        """Per partition, one past the first offset of the latest batch Kafka acknowledged there (rows
        marked at one instant): what the relay checks the broker's log against when it starts."""
        latest = func.max(outbox.c.published_at).over(partition_by=(outbox.c.topic, outbox.c.partition))
        marked = (
            select(outbox.c.topic, outbox.c.partition, outbox.c.offset, outbox.c.published_at, latest.label("latest"))
            .where(outbox.c.offset.is_not(None))
            .subquery()
        )
        query = (
            select(marked.c.topic, marked.c.partition, func.min(marked.c.offset))
            .where(marked.c.published_at == marked.c.latest)
            .group_by(marked.c.topic, marked.c.partition)
        )
        async with self._store.door.read() as conn:
            rows = (await conn.execute(query)).all()
        return {(topic, partition): int(top) + 1 for topic, partition, top in rows}

    async def republish_lost(
        self, lost: Collection[str], before: datetime, *, delivered: Collection[str], retries: str
    ) -> int:
        """The broker lost what it held of the topics `lost` up to `before` (the embedded one keeps its log
        in memory; a Kafka topic can be deleted or truncated). The copy each unconfirmed delivery waits
        for is marked unpublished again, so the relay sends it once more: an event on a `delivered`
        topic that no delivery has read yet, or the retry (on `retries`) a retrying delivery waits for,
        which keeps its attempts and its due time. What receivers confirmed (delivered, dead-lettered)
        is not sent again; a receiver never gets one event twice, delivery being idempotent by event id.
        Every other row published there forgets its partition and offset: they belong to a log that is
        gone. Returns how many rows are to be published again."""
        gone = outbox.c.topic.in_(list(lost)) & (outbox.c.published_at < before)
        unread = ~exists().where(deliveries.c.event_id == outbox.c.event_id)
        awaited = select(deliveries.c.retry_id).where(deliveries.c.status == RETRYING)
        waited_for = (outbox.c.topic.in_(list(delivered)) & unread) | (
            (outbox.c.topic == retries) & outbox.c.event_id.in_(awaited)
        )
        again = update(outbox).where(gone, waited_for).values(published_at=None, partition=None, offset=None)
        forget = update(outbox).where(gone, outbox.c.offset.is_not(None)).values(partition=None, offset=None)
        return await self._store.write(_republish, again, forget)

    async def republish_overdue(self, retries: str, before: datetime) -> int:
        """The retries (on `retries`) that retrying deliveries wait for, due before `before` and last
        published before it too, marked unpublished so the relay sends them again: a retry that long
        overdue was lost by the broker, in a way the relay's look at the log ends could not see (the
        log grew back past its old end before it looked). A retry only late is harmless twice: the
        delivery ledger answers the second copy. Returns how many are to be published again.
        The ledger is read first, outside the store's writer: most rounds find nothing to write."""
        overdue = (
            select(deliveries.c.retry_id)
            .where(deliveries.c.status == RETRYING, deliveries.c.next_attempt_at < before)
            .limit(_OVERDUE_BATCH)
        )
        async with self._store.door.read() as conn:
            ids = [retry_id for (retry_id,) in (await conn.execute(overdue)).all() if retry_id]
        if not ids:
            return 0
        again = (
            update(outbox)
            .where(outbox.c.topic == retries, outbox.c.event_id.in_(ids), outbox.c.published_at < before)
            .values(published_at=None, partition=None, offset=None)
        )
        (count,) = await self._store.write(run_statements, again)
        return count
