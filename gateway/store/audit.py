"""The audit trail as the store keeps it: append-only rows (`write_audit` is the only write; there
is no update or delete here, and triggers refuse them in the database) and the searches that
`GET /fhir/AuditEvent` answers.

Each event is written with its outbox record for `gateway.audit`, in the caller's transaction
(`write_audit`, in rows.py with the other shared writers).
Must not: build AuditEvents (gateway/audit does) or decide who may read them beyond the filter given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, exists, or_, select
from sqlalchemy.exc import DBAPIError

from gateway.errors import StoreUnavailable
from gateway.store.group_commit import GroupCommitter
from gateway.store.rows import AuditRow as AuditRow  # re-exported: the rows live with the other writers
from gateway.store.rows import write_audit
from gateway.store.store import Store
from gateway.store.tables import audit_entities, audit_events


@dataclass(frozen=True)
class AuditQuery:
    entity: str | None = None  # a reference: ServiceRequest/<id>
    agent: str | None = None  # client id, user name, HL7 sender
    since: datetime | None = None
    before: datetime | None = None
    outcome: str | None = None
    organisation: str | None = None  # only events by this organisation or about its referrals
    limit: int = 50


class AuditLog:
    """Appends through a group commit of its own (many requests' events, one transaction) and searches."""

    def __init__(self, store: Store, batch_max: int = 256) -> None:
        self._store = store
        self._batch_max = batch_max
        self._committer: GroupCommitter[AuditRow, None] | None = None

    def start(self) -> None:
        if self._committer is None:
            self._committer = GroupCommitter(self._store.door.batch(_append), self._batch_max)
            self._committer.start()

    async def stop(self) -> None:
        committer, self._committer = self._committer, None
        if committer is not None:
            await committer.stop()

    async def append(self, row: AuditRow) -> None:
        """Append one event with its outbox record; returns after the commit."""
        if self._committer is None:
            raise StoreUnavailable("the audit trail is not started")
        try:
            await self._committer.submit(row)
        except RuntimeError as exc:  # the store stopped before the write committed
            raise StoreUnavailable(f"the audit trail did not commit: {exc}") from exc
        except DBAPIError as exc:
            raise StoreUnavailable(f"the audit trail did not commit: {exc.orig}") from exc

    async def search(self, query: AuditQuery) -> list[str]:
        """The matching AuditEvents (FHIR JSON), newest first."""
        async with self._store.door.read() as conn:
            rows = (await conn.execute(_select(query))).all()
        return [r.resource for r in rows]

    async def get(self, audit_id: str, organisation: str | None = None) -> str | None:
        query = _visible(select(audit_events.c.resource).where(audit_events.c.id == audit_id), organisation)
        async with self._store.door.read() as conn:
            row = (await conn.execute(query)).first()
        return str(row.resource) if row else None


def _append(conn: Connection, rows: Sequence[AuditRow]) -> list[None]:
    write_audit(conn, rows)
    return [None] * len(rows)


def _select(query: AuditQuery) -> Select[Any]:
    found = select(audit_events.c.resource).order_by(audit_events.c.seq.desc()).limit(query.limit)
    if query.entity is not None:
        about = select(audit_entities.c.event_id).where(audit_entities.c.reference == query.entity)
        found = found.where(audit_events.c.id.in_(about))
    if query.agent is not None:
        found = found.where(audit_events.c.agent == query.agent)
    if query.since is not None:
        found = found.where(audit_events.c.recorded >= query.since)
    if query.before is not None:
        found = found.where(audit_events.c.recorded < query.before)
    if query.outcome is not None:
        found = found.where(audit_events.c.outcome == query.outcome)
    return _visible(found, query.organisation)


def _visible(query: Select[Any], organisation: str | None) -> Select[Any]:
    if organisation is None:
        return query
    about_theirs = exists().where(
        audit_entities.c.event_id == audit_events.c.id,
        or_(audit_entities.c.requester == organisation, audit_entities.c.performer == organisation),
    )
    return query.where(or_(audit_events.c.agent_ods == organisation, about_theirs))
