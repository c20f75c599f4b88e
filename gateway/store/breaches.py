"""Wait breaches in the store: the Tasks waiting at a watched status, the breaches open, and raising
or clearing one with its history steps and events in one transaction.

A breach is keyed by (Task, the moment it came to its status): raising it twice, from a second pass
or a second gateway process, finds the key taken and does nothing, so its event and its escalation
are committed exactly once. Must not: decide whether a wait is too long (gateway/safety/watcher.py).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Update, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.store.routed import routed_services
from gateway.store.rows import write_events, write_steps
from gateway.store.store import OutboxEvent, Store
from gateway.store.tables import referrals, task_versions, tasks, wait_breaches


@dataclass(frozen=True)
class Waiting:
    """A Task at a watched status, with what the watcher needs to judge its wait."""

    task_id: str
    referral_id: str
    status: str
    since: datetime  # when the Task came to this status
    priority: str
    service: str | None  # the directory service the referral was routed to
    task: str  # the Task as it stands (FHIR JSON)


@dataclass(frozen=True)
class Breach:
    id: str
    referral_id: str
    task_id: str
    service: str
    priority: str
    status: str
    since: datetime
    due_at: datetime
    wait_limit: str
    breached_at: datetime
    escalated_to: str | None


class Breaches:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def waiting(
        self, statuses: Collection[str], after: str | None = None, limit: int | None = None
    ) -> list[Waiting]:
        """Tasks at `statuses`; with `limit`, at most that many in id order, from the first id past
        `after` (a page: the watcher walks every open referral a page at a time)."""
        query = select(tasks).where(tasks.c.status.in_(sorted(statuses)))
        if after is not None:
            query = query.where(tasks.c.id > after)
        if limit is not None:
            query = query.order_by(tasks.c.id).limit(limit)
        async with self._store.door.read() as conn:
            rows = (await conn.execute(query)).all()
            services = await routed_services(conn, [r.referral_id for r in rows])
            moved = {r.id: r.status for r in rows if r.version > 1}
            since = await _status_since(conn, moved)
        return [
            Waiting(
                row.id,
                row.referral_id,
                row.status,
                since.get(row.id, row.updated_at),
                str(json.loads(row.resource).get("priority") or "routine"),
                services.get(row.referral_id),
                row.resource,
            )
            for row in rows
        ]

    async def open(self) -> list[Breach]:
        query = select(wait_breaches).where(wait_breaches.c.cleared_at.is_(None)).order_by(wait_breaches.c.breached_at)
        async with self._store.door.read() as conn:
            return [_breach(r) for r in (await conn.execute(query)).all()]

    async def counts(self) -> dict[tuple[str, str, str], int]:
        """Open breaches by (service, priority, status)."""
        c = wait_breaches.c
        query = (
            select(c.service, c.priority, c.status, func.count())
            .where(c.cleared_at.is_(None))
            .group_by(c.service, c.priority, c.status)
        )
        async with self._store.door.read() as conn:
            return {(r[0], r[1], r[2]): int(r[3]) for r in (await conn.execute(query)).all()}

    async def escalated_before(self, referral_id: str) -> bool:
        query = select(wait_breaches.c.id).where(
            wait_breaches.c.referral_id == referral_id, wait_breaches.c.escalated_to.is_not(None)
        )
        async with self._store.door.read() as conn:
            return (await conn.execute(query.limit(1))).first() is not None

    async def referral(self, referral_id: str) -> tuple[str, str, str, str] | None:
        """(resource, topic, NHS number, correlation id) of the referral a breach is about."""
        c = referrals.c
        query = select(c.resource, c.topic, c.nhs_number, c.correlation_id).where(c.id == referral_id)
        async with self._store.door.read() as conn:
            row = (await conn.execute(query)).first()
        return (row[0], row[1], row[2], row[3]) if row else None

    async def task(self, task_id: str) -> str | None:
        """The Task as it stands now (FHIR JSON)."""
        async with self._store.door.read() as conn:
            row = (await conn.execute(select(tasks.c.resource).where(tasks.c.id == task_id))).first()
        return str(row[0]) if row else None

    async def raise_breach(
        self, breach: Breach, events: Sequence[OutboxEvent], steps: Sequence[tuple[str, dict[str, Any]]]
    ) -> bool:
        """Commit the breach, its events and its history steps; False when it was raised already."""
        row = {**asdict(breach), "cleared_at": None}
        if events and breach.escalated_to:
            row["escalation_event_id"] = events[-1].event_id
        try:
            await self._store.write(_raise, row, events, steps)
        except IntegrityError:
            return False
        return True

    async def clear(
        self, breach: Breach, at: datetime, events: Sequence[OutboxEvent], steps: Sequence[tuple[str, dict[str, Any]]]
    ) -> bool:
        """Close the breach with its event and step; False when another pass closed it first."""
        query = (
            update(wait_breaches)
            .where(wait_breaches.c.id == breach.id, wait_breaches.c.cleared_at.is_(None))
            .values(cleared_at=at)
        )
        return await self._store.write(_clear, query, breach.referral_id, events, steps)


def _raise(
    conn: Connection, row: dict[str, Any], events: Sequence[OutboxEvent], steps: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    conn.execute(insert(wait_breaches).values(**row))
    write_events(conn, events, row["referral_id"])
    write_steps(conn, row["referral_id"], steps)


def _clear(
    conn: Connection,
    query: Update,
    referral_id: str,
    events: Sequence[OutboxEvent],
    steps: Sequence[tuple[str, dict[str, Any]]],
) -> bool:
    if conn.execute(query).rowcount != 1:
        return False
    write_events(conn, events, referral_id)
    write_steps(conn, referral_id, steps)
    return True


async def _status_since(conn: Any, current: dict[str, str]) -> dict[str, datetime]:
    """Task id → when it came to its current status: the first of its latest versions that all have
    it (a change to a note or the business status alone does not restart the clock)."""
    ids, since = sorted(current), {}
    for start in range(0, len(ids), 500):  # IN lists of a size every database takes
        query = (
            select(task_versions.c.task_id, task_versions.c.resource, task_versions.c.at)
            .where(task_versions.c.task_id.in_(ids[start : start + 500]))
            .order_by(task_versions.c.task_id, task_versions.c.version.desc())
        )
        left: set[str] = set()  # Tasks whose run of versions at the current status has ended
        for row in (await conn.execute(query)).all():
            if row.task_id in left:
                continue
            if json.loads(row.resource).get("status") != current[row.task_id]:
                left.add(row.task_id)
                continue
            since[row.task_id] = row.at
    return since


def _breach(row: Any) -> Breach:
    return Breach(
        row.id,
        row.referral_id,
        row.task_id,
        row.service,
        row.priority,
        row.status,
        row.since,
        row.due_at,
        row.wait_limit,
        row.breached_at,
        row.escalated_to,
    )
