"""The inbound message log in the store: append a message with its outcome, find messages, prune old ones.

Rows come ready-made (gateway/inbound_log builds them); a message that became a referral is appended by
the referral's own group commit (store.py), every other one here, through a group commit of its own:
a burst of refusals costs one transaction, and one statement, per batch. Searches are paged and say
how many messages match in all.
Must not: update a row (the log is append-only; the database refuses it too), or decide an outcome.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Boolean, ColumnElement, Connection, Select, and_, delete, func, literal, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from gateway.errors import StoreUnavailable
from gateway.store.bulk import insert_all
from gateway.store.door import Door, run_statements
from gateway.store.group_commit import GroupCommitter
from gateway.store.tables import inbound_messages

T = TypeVar("T")

#: The log's columns a search may ask to equal a value.
EQUALS = ("channel", "outcome", "reason", "control_id", "referral_id", "nhs_number", "resubmit_of")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a search, with how many match in all."""

    items: list[T]
    total: int
    offset: int
    limit: int

    @property
    def next_offset(self) -> int | None:
        return self.offset + self.limit if self.offset + self.limit < self.total else None

    @property
    def previous_offset(self) -> int | None:
        return max(self.offset - self.limit, 0) if self.offset > 0 else None


@dataclass(frozen=True)
class InboundQuery:
    """What to look for; every criterion given must hold. `sender` matches the sender as recorded, or
    the facility of an HL7 sender (MSH-3^MSH-4), so an ODS code finds what came by any channel; an
    NHS number also finds a message refused before the intake read it, by the number as written."""

    since: datetime | None = None
    until: datetime | None = None
    sender: str | None = None
    equals: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggedMessage:
    id: str
    received_at: datetime
    channel: str
    sender: str
    source_address: str | None
    destination: str | None
    control_id: str | None
    correlation_id: str | None
    content_type: str | None
    raw: bytes
    outcome: str
    reason: str | None
    referral_id: str | None
    nhs_number: str | None
    issues: list[dict[str, Any]]
    resubmit_of: str | None
    resubmitted_by: str | None
    edit_diff: str | None


class InboundMessages:
    """`store.inbound`: the log's one door."""

    def __init__(self, door: Door, batch_max: int) -> None:
        self._door = door
        self._batch_max = batch_max
        self._committer: GroupCommitter[dict[str, Any], None] | None = None

    def start(self) -> None:
        if self._committer is None:
            self._committer = GroupCommitter(self._door.batch(_append), self._batch_max)
            self._committer.start()

    async def stop(self) -> None:
        committer, self._committer = self._committer, None
        if committer is not None:
            await committer.stop()

    async def record(self, row: dict[str, Any]) -> None:
        """Append one message and its outcome; returns after the commit."""
        if self._committer is None:
            raise StoreUnavailable("the store is not started")
        try:
            await self._committer.submit(row)
        except RuntimeError as exc:
            raise StoreUnavailable(f"the inbound log did not commit: {exc}") from exc
        except DBAPIError as exc:
            raise StoreUnavailable(f"the inbound log did not commit: {exc.orig}") from exc

    async def get(self, message_id: str) -> LoggedMessage | None:
        async with self._door.read() as conn:
            row = (await conn.execute(select(inbound_messages).where(inbound_messages.c.id == message_id))).first()
        return _logged(row) if row else None

    async def search(self, query: InboundQuery, offset: int = 0, limit: int = 50) -> Page[LoggedMessage]:
        """Newest first, `limit` from `offset`, with the number matching in all."""
        where = _filtered(select(inbound_messages), query)
        count = _filtered(select(func.count()).select_from(inbound_messages), query)
        page = where.order_by(inbound_messages.c.seq.desc()).offset(offset).limit(limit)
        async with self._door.read() as conn:
            total = int((await conn.execute(count)).scalar_one())
            rows = (await conn.execute(page)).all()
        return Page([_logged(r) for r in rows], total, offset, limit)

    async def prune(self, before: datetime) -> int:
        """Delete what was received before `before` (retention); the only delete there is."""
        (pruned,) = await self._door.write(
            run_statements, delete(inbound_messages).where(inbound_messages.c.received_at < before)
        )
        return pruned


def _filtered(query: Select[Any], criteria: InboundQuery) -> Select[Any]:
    c = inbound_messages.c
    if criteria.since is not None:
        query = query.where(c.received_at >= criteria.since)
    if criteria.until is not None:
        query = query.where(c.received_at < criteria.until)
    if criteria.sender:
        query = query.where(or_(c.sender == criteria.sender, c.sender.like(f"%^{criteria.sender}")))
    for name, value in criteria.equals.items():
        if name not in EQUALS:
            raise ValueError(f"the inbound log cannot be searched by {name}")
        query = query.where(_nhs_number(value) if name == "nhs_number" else c[name] == value)
    return query


def _nhs_number(value: str) -> ColumnElement[bool]:
    """The patient's messages: those the intake read the number from, and those refused before it (the
    number as written in the message, valid or not: how a refused one is found again)."""
    c = inbound_messages.c
    if not value.isdigit():
        return c.nhs_number == value
    return or_(c.nhs_number == value, and_(c.nhs_number.is_(None), _Holds(c.raw, literal(value.encode()))))


class _Holds(FunctionElement[bool]):
    """`haystack` (bytes) holds `needle` (bytes): SQLite's instr, PostgreSQL's position (LIKE does not
    match a blob on SQLite)."""

    type = Boolean()
    inherit_cache = True
    name = "holds"


@compiles(_Holds)
def _holds_sqlite(element: _Holds, compiler: Any, **kw: Any) -> str:
    haystack, needle = list(element.clauses)
    return f"instr({compiler.process(haystack, **kw)}, {compiler.process(needle, **kw)}) > 0"


@compiles(_Holds, "postgresql")
def _holds_postgresql(element: _Holds, compiler: Any, **kw: Any) -> str:
    haystack, needle = list(element.clauses)
    return f"position({compiler.process(needle, **kw)} in {compiler.process(haystack, **kw)}) > 0"


def _append(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[None]:
    insert_all(conn, {inbound_messages: list(rows)})
    return [None for _ in rows]


def _logged(row: Any) -> LoggedMessage:
    return LoggedMessage(
        id=row.id,
        received_at=row.received_at,
        channel=row.channel,
        sender=row.sender,
        source_address=row.source_address,
        destination=row.destination,
        control_id=row.control_id,
        correlation_id=row.correlation_id,
        content_type=row.content_type,
        raw=bytes(row.raw),
        outcome=row.outcome,
        reason=row.reason,
        referral_id=row.referral_id,
        nhs_number=row.nhs_number,
        issues=json.loads(row.issues),
        resubmit_of=row.resubmit_of,
        resubmitted_by=row.resubmitted_by,
        edit_diff=row.edit_diff,
    )
