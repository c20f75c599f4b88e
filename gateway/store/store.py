"""The store: one class over SQLAlchemy Core, for SQLite (default) and PostgreSQL.

Accepting a referral commits its row, its first history entries, its outbox event and the sender's
message id together, through group commit. Library errors leave this module as `StoreUnavailable`.
Must not: publish to Kafka (the relay does), or know any wire format.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from gateway.errors import StaleWrite, StoreUnavailable
from gateway.store import duplicates
from gateway.store.bulk import Rows, insert_all, merged
from gateway.store.door import Door
from gateway.store.group_commit import GroupCommitter, Result
from gateway.store.inbound import InboundMessages
from gateway.store.rows import AuditRow, audit_rows, outbox_rows, write_events, write_steps
from gateway.store.rows import OutboxEvent as OutboxEvent  # re-exported: the writers' shared rows
from gateway.store.rows import now as now
from gateway.store.tables import (
    history,
    inbound_messages,
    outbox,
    processed_messages,
    referrals,
    task_versions,
    tasks,
)

log = logging.getLogger(__name__)


class Prefix(str):
    """A search value that matches every column value starting with it (the untraced patients' keys)."""


@dataclass(frozen=True)
class StoredReferral:
    id: str
    version: int
    status: str
    resource: str
    nhs_number: str
    requester: str | None
    performer: str | None
    channel: str
    sender: str
    correlation_id: str
    topic: str
    rule: str
    updated_at: datetime


@dataclass
class NewReferral:
    """Everything one accepted referral writes, in one transaction."""

    row: dict[str, Any]
    event: OutboxEvent
    steps: list[tuple[str, dict[str, Any]]]
    message_key: tuple[str, str] | None = None
    task_rows: tuple[dict[str, Any], dict[str, Any]] | None = None  # tasks row, first task_versions row
    #: the audit event of the outcome (the referral stored, created or not), committed with it
    audit: Callable[[StoredReferral, bool], AuditRow] | None = None
    #: the inbound log's row of the message this referral came in (gateway/inbound_log), committed with
    #: it; the commit fills in its outcome: accepted as this referral, or a duplicate of an earlier one
    inbound: dict[str, Any] | None = None

    @property
    def identifier(self) -> tuple[str, str]:
        return self.row["identifier_system"], self.row["identifier_value"]


@dataclass(frozen=True)
class AcceptResult:
    referral: StoredReferral
    created: bool


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    step: str
    detail: dict[str, Any] = field(default_factory=dict)


class Store:
    """The referrals' repository, and the door (store/door.py) the other repositories share."""

    def __init__(self, url: str, batch_max: int = 256, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        self.door = Door(url, schema)
        self._batch_max = batch_max
        self._committer: GroupCommitter[NewReferral, AcceptResult] | None = None
        self.inbound = InboundMessages(self.door, batch_max)

    async def start(self) -> None:
        if self.door.started:
            return
        await self.door.open()
        self._committer = GroupCommitter(self.door.batch(_apply_accepts), self._batch_max)
        self._committer.start()
        self.inbound.start()

    async def stop(self) -> None:
        await self.inbound.stop()
        if self._committer is not None:
            await self._committer.stop()
            self._committer = None
        await self.door.close()

    @property
    def locks_rows(self) -> bool:
        """Whether writers in several processes share the store, claiming rows with FOR UPDATE SKIP
        LOCKED (PostgreSQL); SQLite serves one process."""
        return self.door.shared

    async def write(self, work: Callable[..., Result], *args: Any) -> Result:
        """The one write entry point: `work(conn, *args)` in one transaction on the store's writer."""
        return await self.door.write(work, *args)

    async def ping(self) -> None:
        """Answers when the database does (readiness); `StoreUnavailable` when it does not."""
        await self.door.ping()

    # -- referrals --------------------------------------------------------------------------

    async def accept(self, new: NewReferral) -> AcceptResult:
        """Commit a new referral (or find the one it duplicates); returns after the commit."""
        if self._committer is None:
            raise StoreUnavailable("the store is not started")
        try:
            return await self._committer.submit(new)
        except DBAPIError as exc:
            raise StoreUnavailable(f"the store did not commit the referral: {exc.orig}") from exc

    async def get(self, referral_id: str) -> StoredReferral | None:
        async with self.door.read() as conn:
            row = (await conn.execute(select(referrals).where(referrals.c.id == referral_id))).first()
        return _stored(row) if row else None

    async def search(
        self, equals: dict[str, str], limit: int = 50, organisation: str | None = None
    ) -> list[StoredReferral]:
        """Referrals whose columns equal the given values (identifier_value, nhs_number, ...); with
        `organisation`, only those it sent or that are addressed to it."""
        query = select(referrals).order_by(referrals.c.created_at).limit(limit)
        if organisation is not None:
            query = query.where(or_(referrals.c.requester == organisation, referrals.c.performer == organisation))
        for column, value in equals.items():
            if isinstance(value, Prefix):
                query = query.where(referrals.c[column].startswith(str(value), autoescape=True))
            else:
                query = query.where(referrals.c[column] == value)
        async with self.door.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_stored(r) for r in rows]

    async def message_referral(self, sender: str, message_id: str) -> StoredReferral | None:
        """The referral a sender's message id already produced, if any."""
        query = (
            select(referrals)
            .join(processed_messages, processed_messages.c.referral_id == referrals.c.id)
            .where(processed_messages.c.sender == sender, processed_messages.c.message_id == message_id)
        )
        async with self.door.read() as conn:
            row = (await conn.execute(query)).first()
        return _stored(row) if row else None

    async def update(
        self,
        referral: StoredReferral,
        status: str,
        event: OutboxEvent,
        steps: list[tuple[str, dict[str, Any]]],
        message_key: tuple[str, str] | None = None,
        nhs_number: str | None = None,
        inbound: dict[str, Any] | None = None,
    ) -> StoredReferral:
        """Commit a new version of a referral with its event (whose value is the new resource); with
        `inbound`, the log's row of the message that asked for it. `nhs_number`: the patient was traced,
        the referral is found by it now. `StaleWrite` when another change committed first (its version,
        or the same sender's message id)."""
        change = _Change(referral, status, event, steps, message_key, nhs_number, inbound)
        try:
            return await self.door.write(_apply_update, change)
        except IntegrityError as exc:
            raise StaleWrite(f"referral {referral.id} changed meanwhile", unique_key=True) from exc

    async def enqueue(self, events: Sequence[OutboxEvent], referral_id: str) -> None:
        """Commit events to the outbox on their own (not part of a referral change)."""
        await self.door.write(write_events, events, referral_id)

    async def add_step(self, referral_id: str, step: str, detail: dict[str, Any]) -> None:
        await self.door.write(write_steps, referral_id, [(step, detail)])

    async def history(self, referral_id: str) -> list[HistoryEntry]:
        query = select(history).where(history.c.referral_id == referral_id).order_by(history.c.seq)
        async with self.door.read() as conn:
            rows = (await conn.execute(query)).all()
        return [HistoryEntry(r.at, r.step, json.loads(r.detail)) for r in rows]

    # -- outbox -----------------------------------------------------------------------------

    async def outbox_backlog(self) -> int:
        query = select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        async with self.door.read() as conn:
            return int((await conn.execute(query)).scalar_one())


@dataclass(frozen=True)
class _Change:
    referral: StoredReferral
    status: str
    event: OutboxEvent
    steps: list[tuple[str, dict[str, Any]]]
    message_key: tuple[str, str] | None
    nhs_number: str | None
    inbound: dict[str, Any] | None


def _apply_update(conn: Connection, change: _Change) -> StoredReferral:
    referral, at = change.referral, now()
    values: dict[str, Any] = {
        "version": referral.version + 1,
        "status": change.status,
        "resource": change.event.value,
        "updated_at": at,
    }
    if change.nhs_number is not None:
        values["nhs_number"] = change.nhs_number
    result = conn.execute(
        update(referrals).where(referrals.c.id == referral.id, referrals.c.version == referral.version).values(**values)
    )
    if result.rowcount != 1:
        raise StaleWrite(f"referral {referral.id} changed meanwhile")
    if change.nhs_number is not None:  # its Task is found by the NHS number too
        conn.execute(update(tasks).where(tasks.c.referral_id == referral.id).values(nhs_number=change.nhs_number))
    write_events(conn, [change.event], referral.id)
    write_steps(conn, referral.id, change.steps)
    if change.message_key:
        sender, message_id = change.message_key
        conn.execute(
            insert(processed_messages).values(
                sender=sender, message_id=message_id, referral_id=referral.id, created_at=at
            )
        )
    if change.inbound is not None:
        conn.execute(insert(inbound_messages).values(**change.inbound, outcome="accepted", referral_id=referral.id))
    return _stored(conn.execute(select(referrals).where(referrals.c.id == referral.id)).one())


def _stored(row: Row[Any]) -> StoredReferral:
    return StoredReferral(
        id=row.id,
        version=row.version,
        status=row.status,
        resource=row.resource,
        nhs_number=row.nhs_number,
        requester=row.requester,
        performer=row.performer,
        channel=row.channel,
        sender=row.sender,
        correlation_id=row.correlation_id,
        topic=row.topic,
        rule=row.rule,
        updated_at=row.updated_at,
    )


def _apply_accepts(conn: Connection, items: Sequence[NewReferral]) -> list[AcceptResult]:
    """One transaction for a batch: find duplicates with two queries, insert the rest in bulk."""
    known = _existing_by_identifier(conn, [i.identifier for i in items])
    by_message = _existing_by_message(conn, [i.message_key for i in items if i.message_key])
    results: list[AcceptResult] = []
    fresh: list[NewReferral] = []
    for item in items:
        earlier = (by_message.get(item.message_key) if item.message_key else None) or known.get(item.identifier)
        if earlier is not None:
            results.append(AcceptResult(earlier, created=False))
            continue
        stored = _stored_from_row(item.row)
        known[item.identifier] = stored
        if item.message_key:
            by_message[item.message_key] = stored
        fresh.append(item)
        results.append(AcceptResult(stored, created=True))
    # in key order, so batches of two processes holding the same referrals wait, never deadlock
    fresh_rows = _fresh_rows(sorted(fresh, key=lambda i: i.row["id"]))
    audits = [i.audit(r.referral, r.created) for i, r in zip(items, results, strict=True) if i.audit is not None]
    insert_all(conn, merged(fresh_rows, audit_rows(audits), _inbound_rows(items, results)))
    return results


def _inbound_rows(items: Sequence[NewReferral], results: list[AcceptResult]) -> Rows:
    """The log's rows of the batch's messages, each with what became of it."""
    logged = [
        {**i.inbound, "outcome": "accepted" if r.created else "duplicate", "referral_id": r.referral.id}
        for i, r in zip(items, results, strict=True)
        if i.inbound is not None
    ]
    return {inbound_messages: logged} if logged else {}


def _fresh_rows(fresh: list[NewReferral]) -> Rows:
    if not fresh:
        return {}
    created = now()
    tasks_new = [i.task_rows for i in fresh if i.task_rows]
    return {
        referrals: [i.row for i in fresh],
        outbox: [row for i in fresh for row in outbox_rows([i.event], i.row["id"], created)],
        history: [
            {"referral_id": i.row["id"], "at": created, "step": s, "detail": json.dumps(d)}
            for i in fresh
            for s, d in i.steps
        ],
        tasks: [t for t, _ in tasks_new],
        task_versions: [v for _, v in tasks_new],
        processed_messages: [
            {"sender": sender, "message_id": message_id, "referral_id": i.row["id"], "created_at": created}
            for i in fresh
            if i.message_key
            for sender, message_id in [i.message_key]
        ],
    }


def _existing_by_identifier(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], StoredReferral]:
    return {(found[0], found[1]): StoredReferral(*found[2:]) for found in duplicates.by_identifier(conn, keys)}


def _existing_by_message(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], StoredReferral]:
    return {(found[0], found[1]): StoredReferral(*found[2:]) for found in duplicates.by_message(conn, keys)}


def _stored_from_row(row: dict[str, Any]) -> StoredReferral:
    return StoredReferral(
        id=row["id"],
        version=row["version"],
        status=row["status"],
        resource=row["resource"],
        nhs_number=row["nhs_number"],
        requester=row["requester"],
        performer=row["performer"],
        channel=row["channel"],
        sender=row["sender"],
        correlation_id=row["correlation_id"],
        topic=row["topic"],
        rule=row["rule"],
        updated_at=row["updated_at"],
    )
