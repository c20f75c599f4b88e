"""The store: one class over SQLAlchemy Core, for SQLite (default) and PostgreSQL.

Accepting a referral commits its row, its first history entries, its outbox event and the sender's
message id together, through group commit. Library errors leave this module as `StoreUnavailable`.
Must not: publish to Kafka (the relay does), or know any wire format.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest
from sqlalchemy import Connection, Row, event, func, insert, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from gateway.errors import StoreUnavailable
from gateway.store.bulk import Rows, insert_all, merged
from gateway.store.group_commit import GroupCommitter, Item, Result, Transaction
from gateway.store.inbound import InboundMessages
from gateway.store.migrate import upgrade_to_head
from gateway.store.rows import AuditRow, audit_rows, outbox_rows
from gateway.store.rows import OutboxEvent as OutboxEvent  # re-exported: the writers' shared rows
from gateway.store.rows import insert_events as insert_events
from gateway.store.rows import insert_steps as insert_steps
from gateway.store.rows import now as now
from gateway.store.tables import (
    history,
    inbound_messages,
    outbox,
    pairs_among,
    processed_messages,
    referrals,
    task_versions,
    tasks,
)
from gateway.store.writer import BatchWriter

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

    def service_request(self) -> ServiceRequest:
        return ServiceRequest.model_validate_json(self.resource)


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
    def __init__(self, url: str, batch_max: int = 256, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        self._shared = make_url(url).get_backend_name() != "sqlite"
        self._batch_max = batch_max
        self._engine: AsyncEngine | None = None
        self._writer: BatchWriter | None = None
        self._committer: GroupCommitter[NewReferral, AcceptResult] | None = None
        self.inbound = InboundMessages(self, batch_max)

    async def start(self) -> None:
        if self._engine is not None:
            return
        engine = _create_engine(self.url, self.schema)
        try:
            await upgrade_to_head(engine, self.schema)
        except DBAPIError as exc:
            await engine.dispose()
            raise StoreUnavailable(
                f"the store at {make_url(self.url).render_as_string()} cannot be opened: {exc.orig}"
            ) from exc
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        self._writer = BatchWriter(engine, self.url, _sqlite_pragmas)
        self._committer = GroupCommitter(self.batch_transaction(_apply_accepts), self._batch_max)
        self._committer.start()
        self.inbound.start()

    async def stop(self) -> None:
        await self.inbound.stop()
        if self._committer is not None:
            await self._committer.stop()
            self._committer = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise StoreUnavailable("the store is not started")
        return self._engine

    @property
    def locks_rows(self) -> bool:
        """Whether writers in several processes share the store, claiming rows with FOR UPDATE SKIP
        LOCKED (PostgreSQL); SQLite serves one process."""
        return self._shared

    async def write(self, work: Callable[..., Result], *args: Any) -> Result:
        """`work(conn, *args)` in one transaction on the store's writer (store/writer.py)."""
        with _committing():
            return await self._started_writer().run(work, *args)

    def batch_transaction(
        self, work: Callable[[Connection, Sequence[Item]], list[Result]]
    ) -> Transaction[Item, Result]:
        """A group committer's transaction: `work` over a batch on the store's writer, the driver's
        errors left as they are (the committer replays a batch that hit a constraint)."""

        async def transaction(items: Sequence[Item]) -> list[Result]:
            return await self._started_writer().run(work, items)

        return transaction

    def _started_writer(self) -> BatchWriter:
        if self._writer is None:
            raise StoreUnavailable("the store is not started")
        return self._writer

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction; library errors become `StoreUnavailable`."""
        with _committing():
            async with self.engine.begin() as conn:
                yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn:
                yield conn
        except DBAPIError as exc:
            raise StoreUnavailable(f"the store cannot be read: {exc.orig}") from exc

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
        async with self.connect() as conn:
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
        async with self.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_stored(r) for r in rows]

    async def message_referral(self, sender: str, message_id: str) -> StoredReferral | None:
        """The referral a sender's message id already produced, if any."""
        query = (
            select(referrals)
            .join(processed_messages, processed_messages.c.referral_id == referrals.c.id)
            .where(processed_messages.c.sender == sender, processed_messages.c.message_id == message_id)
        )
        async with self.connect() as conn:
            row = (await conn.execute(query)).first()
        return _stored(row) if row else None

    async def update(
        self,
        conn: AsyncConnection,
        referral: StoredReferral,
        status: str,
        event: OutboxEvent,
        steps: list[tuple[str, dict[str, Any]]],
        message_key: tuple[str, str] | None = None,
        nhs_number: str | None = None,
        inbound: dict[str, Any] | None = None,
    ) -> StoredReferral:
        """Write a new version of a referral with its event (whose value is the new resource), inside
        the caller's transaction; with `inbound`, the log's row of the message that asked for it.
        `nhs_number`: the patient was traced, the referral is found by it now."""
        values: dict[str, Any] = {
            "version": referral.version + 1,
            "status": status,
            "resource": event.value,
            "updated_at": now(),
        }
        if nhs_number is not None:
            values["nhs_number"] = nhs_number
        result = await conn.execute(
            update(referrals)
            .where(referrals.c.id == referral.id, referrals.c.version == referral.version)
            .values(**values)
        )
        if result.rowcount != 1:
            raise IntegrityError("concurrent update", None, Exception(referral.id))
        if nhs_number is not None:  # its Task is found by the NHS number too
            await conn.execute(update(tasks).where(tasks.c.referral_id == referral.id).values(nhs_number=nhs_number))
        await insert_events(conn, [event], referral.id)
        await insert_steps(conn, referral.id, steps)
        if message_key:
            await conn.execute(
                insert(processed_messages).values(
                    sender=message_key[0], message_id=message_key[1], referral_id=referral.id, created_at=now()
                )
            )
        if inbound is not None:
            await conn.execute(insert(inbound_messages).values(**inbound, outcome="accepted", referral_id=referral.id))
        row = (await conn.execute(select(referrals).where(referrals.c.id == referral.id))).one()
        return _stored(row)

    async def enqueue(self, events: Sequence[OutboxEvent], referral_id: str) -> None:
        """Commit events to the outbox on their own (not part of a referral change)."""
        async with self.begin() as conn:
            await insert_events(conn, events, referral_id)

    async def add_step(self, referral_id: str, step: str, detail: dict[str, Any]) -> None:
        async with self.begin() as conn:
            await insert_steps(conn, referral_id, [(step, detail)])

    async def history(self, referral_id: str) -> list[HistoryEntry]:
        query = select(history).where(history.c.referral_id == referral_id).order_by(history.c.seq)
        async with self.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [HistoryEntry(r.at, r.step, json.loads(r.detail)) for r in rows]

    # -- outbox -----------------------------------------------------------------------------

    async def outbox_backlog(self) -> int:
        query = select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        async with self.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


@contextmanager
def _committing() -> Iterator[None]:
    """A write's library errors as `StoreUnavailable`; a constraint violation stays itself (callers
    answer it as a conflict or a resend)."""
    try:
        yield
    except IntegrityError:
        raise
    except DBAPIError as exc:
        raise StoreUnavailable(f"the store did not commit: {exc.orig}") from exc


def _create_engine(url: str, schema: str | None) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        settings = {"search_path": schema} if schema else {}
        return create_async_engine(url, pool_pre_ping=True, pool_size=10, connect_args={"server_settings": settings})
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the relay read while intake writes; FULL sync makes a commit survive power loss.
    cursor = dbapi_conn.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


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
    query = select(referrals).where(pairs_among(referrals.c.identifier_system, referrals.c.identifier_value, keys))
    return {(r.identifier_system, r.identifier_value): _stored(r) for r in conn.execute(query).all()}


def _existing_by_message(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], StoredReferral]:
    if not keys:
        return {}
    query = (
        select(
            referrals,
            processed_messages.c.sender.label("msg_sender"),
            processed_messages.c.message_id.label("msg_id"),
        )
        .join(processed_messages, processed_messages.c.referral_id == referrals.c.id)
        .where(pairs_among(processed_messages.c.sender, processed_messages.c.message_id, keys))
    )
    return {(r.msg_sender, r.msg_id): _stored(r) for r in conn.execute(query).all()}


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
