"""What the store says about traffic, for the engineers' views (gateway/monitoring/ledger.py): the
outbox backlog, and what delivery made of the events per receiver or per outbound format. Read-only.
Must not: judge health (the views do) or hand a connection out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select

from gateway.store.store import Store
from gateway.store.tables import deliveries, outbox

By = Literal["receiver", "format"]


@dataclass(frozen=True)
class StatusCount:
    """Deliveries of one receiver (or format) in one state: how many, their attempts, the latest change."""

    name: str | None
    status: str
    count: int
    attempts: int | None
    last: datetime


async def backlog(store: Store) -> tuple[int, datetime | None]:
    """How many events wait for the relay, and when the oldest of them was committed."""
    query = select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.published_at.is_(None))
    async with store.door.read() as conn:
        waiting, oldest = (await conn.execute(query)).one()
    return int(waiting), oldest


async def delivery_counts(
    store: Store, by: By, recent_errors: int
) -> tuple[list[StatusCount], list[tuple[str | None, str]]]:
    """Counts by (`by`, status), and the latest `recent_errors` errors as (`by`, error), newest first."""
    column = deliveries.c[by]
    counts = select(
        column,
        deliveries.c.status,
        func.count(),
        func.sum(deliveries.c.attempts),
        func.max(deliveries.c.updated_at),
    ).group_by(column, deliveries.c.status)
    errors = (
        select(column, deliveries.c.last_error)
        .where(deliveries.c.last_error.is_not(None))
        .order_by(deliveries.c.updated_at.desc())
        .limit(recent_errors)
    )
    async with store.door.read() as conn:
        rows = (await conn.execute(counts)).all()
        failures = (await conn.execute(errors)).all()
    return [StatusCount(*r) for r in rows], [(name, error) for name, error in failures]
