"""The rows every write path shares: outbox events, history steps and audit events, appended inside
the caller's transaction. The referral intake, Task changes, delivery and the audit trail all use
these, so one transaction can carry a change, its event and its audit record together.

Each write is one synchronous function over a SQLAlchemy `Connection`, run in a transaction on the
store's writer (store/door.py `write`, store/writer.py).
Must not: open or commit a transaction (the caller owns it), or build FHIR resources.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import uuid6
from sqlalchemy import Connection

from gateway.store.bulk import Rows, insert_all
from gateway.store.tables import audit_entities, audit_events, history, outbox


def now() -> datetime:
    return datetime.now(UTC)


def appended_id() -> str:
    """The id of a row the store appends and never rewrites (an event, an inbound message, an audit
    record): a UUIDv7, ordered by time, so the table's unique index on it grows at its end. A random
    UUID put each new row on a random leaf of that index, a page read and written for every row."""
    return str(uuid6.uuid7())


@dataclass(frozen=True)
class OutboxEvent:
    """One Kafka record waiting in the outbox."""

    event_id: str
    topic: str
    key: str
    headers: dict[str, str]
    value: str


@dataclass(frozen=True)
class AuditRow:
    """One event ready to append: its columns, what it is about, and its record for the audit topic."""

    event: dict[str, Any]  # audit_events columns but seq
    entities: tuple[dict[str, Any], ...]  # audit_entities columns
    record: OutboxEvent


def outbox_rows(events: Sequence[OutboxEvent], referral_id: str, created: datetime) -> list[dict[str, Any]]:
    return [
        {
            "event_id": e.event_id,
            "referral_id": referral_id,
            "topic": e.topic,
            "key": e.key,
            "headers": json.dumps(e.headers),
            "value": e.value,
            "created_at": created,
            "attempts": 0,
        }
        for e in events
    ]


def write_events(conn: Connection, events: Sequence[OutboxEvent], referral_id: str) -> None:
    insert_all(conn, {outbox: outbox_rows(events, referral_id, now())})


def write_steps(conn: Connection, referral_id: str, steps: Sequence[tuple[str, dict[str, Any]]]) -> None:
    if steps:
        at = now()
        rows = [{"referral_id": referral_id, "at": at, "step": s, "detail": json.dumps(d)} for s, d in steps]
        insert_all(conn, {history: rows})


def write_audit(conn: Connection, rows: Sequence[AuditRow]) -> None:
    """Append audit events (append-only: there is no update or delete) with their outbox records."""
    insert_all(conn, audit_rows(rows))


def audit_rows(rows: Sequence[AuditRow]) -> Rows:
    """The rows `write_audit` appends, for a caller that appends them with its own (store/bulk.py)."""
    if not rows:
        return {}
    return {
        audit_events: [r.event for r in rows],
        audit_entities: [e for r in rows for e in r.entities],
        outbox: outbox_rows([r.record for r in rows], "", now()),
    }
