"""What the store says about traffic: the outbox backlog and, per receiver, what delivery made of its
events (the `deliveries` table the delivery spine keeps). Read-only.

A receiver's health is the state of its most recent delivery: delivered (healthy), waiting for a retry
(retrying) or given up (failing); a receiver nothing has been sent to yet is idle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.observability.masking import scrub_text
from gateway.store import Store
from gateway.store.deliveries import DEAD_LETTERED, DELIVERED, RETRYING
from gateway.store.tables import deliveries, outbox

HEALTH = {DELIVERED: "healthy", RETRYING: "retrying", DEAD_LETTERED: "failing"}
_RECENT_FAILURES = 500


@dataclass(frozen=True)
class Backlog:
    waiting: int
    oldest: datetime | None  # when the oldest unpublished event was committed


@dataclass(frozen=True)
class ReceiverStats:
    receiver: str
    delivered: int = 0
    retrying: int = 0
    dead_lettered: int = 0
    retries: int = 0  # attempts beyond the first, over every delivery kept
    last_delivered: datetime | None = None
    last_change: datetime | None = None
    latest_status: str | None = None
    last_error: str | None = None

    @property
    def health(self) -> str:
        return HEALTH.get(self.latest_status or "", "idle")


async def backlog(store: Store) -> Backlog:
    query = select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.published_at.is_(None))
    async with store.connect() as conn:
        waiting, oldest = (await conn.execute(query)).one()
    return Backlog(int(waiting), oldest)


async def receiver_stats(store: Store) -> dict[str, ReceiverStats]:
    """Per receiver (directory service id): counts by state, retries, and the latest outcome."""
    return await _stats(store, "receiver")


async def format_stats(store: Store) -> dict[str, ReceiverStats]:
    """The same per outbound adapter (fhir-rest, fhir-messaging, hl7v2-mllp, kafka)."""
    return await _stats(store, "format")


async def _stats(store: Store, by: str) -> dict[str, ReceiverStats]:
    column = deliveries.c[by]
    query = select(
        column,
        deliveries.c.status,
        func.count(),
        func.sum(deliveries.c.attempts),
        func.max(deliveries.c.updated_at),
    ).group_by(column, deliveries.c.status)
    async with store.connect() as conn:
        rows = (await conn.execute(query)).all()
        errors = await _last_errors(conn, column)
    stats: dict[str, ReceiverStats] = {}
    for name, status, count, attempts, last in rows:
        name = name or "none"
        stats[name] = _add(stats.get(name) or ReceiverStats(name), status, count, attempts, last)
    return {r: _with_error(s, errors.get(r)) for r, s in stats.items()}


async def _last_errors(conn: AsyncConnection, column: ColumnElement[Any]) -> dict[str, str]:
    query = (
        select(column, deliveries.c.last_error)
        .where(deliveries.c.last_error.is_not(None))
        .order_by(deliveries.c.updated_at.desc())
        .limit(_RECENT_FAILURES)
    )
    found: dict[str, str] = {}
    for name, error in (await conn.execute(query)).all():
        found.setdefault(name or "none", scrub_text(error))
    return found


def _add(stats: ReceiverStats, status: str, count: int, attempts: int | None, last: datetime) -> ReceiverStats:
    retries = stats.retries + int(attempts or 0) - int(count)
    newer = stats.last_change is None or last > stats.last_change
    return ReceiverStats(
        receiver=stats.receiver,
        delivered=stats.delivered + (count if status == DELIVERED else 0),
        retrying=stats.retrying + (count if status == RETRYING else 0),
        dead_lettered=stats.dead_lettered + (count if status == DEAD_LETTERED else 0),
        retries=max(retries, 0),
        last_delivered=last if status == DELIVERED else stats.last_delivered,
        last_change=last if newer else stats.last_change,
        latest_status=status if newer else stats.latest_status,
    )


def _with_error(stats: ReceiverStats, error: str | None) -> ReceiverStats:
    if stats.latest_status == DELIVERED or error is None:
        return stats
    return replace(stats, last_error=error)
