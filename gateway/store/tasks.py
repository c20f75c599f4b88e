"""Stored Tasks: the current version of each referral's Task and all its versions.

A Task is kept as its FHIR JSON; parsing it is the status spine's business (gateway/status.py).
Must not: import a FHIR model, or hand a connection out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from gateway.errors import StaleWrite
from gateway.store.rows import write_events, write_steps
from gateway.store.store import OutboxEvent, Store, now
from gateway.store.tables import processed_messages, task_versions, tasks


@dataclass(frozen=True)
class StoredTask:
    id: str
    referral_id: str
    status: str
    version: int
    resource: str
    updated_at: datetime


def task_rows(task: dict[str, Any], referral_id: str, nhs_number: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `tasks` row and first `task_versions` row for a new Task (its FHIR JSON)."""
    resource, at = json.dumps(task, separators=(",", ":")), now()
    owner, requester = task.get("owner", {}).get("identifier", {}), task.get("requester", {}).get("identifier", {})
    row = {
        "id": task["id"],
        "referral_id": referral_id,
        "status": task["status"],
        "version": 1,
        "resource": resource,
        "owner": owner.get("value"),
        "requester": requester.get("value"),
        "nhs_number": nhs_number,
        "updated_at": at,
    }
    return row, {"task_id": task["id"], "version": 1, "resource": resource, "at": at}


class TaskStore:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, task_id: str) -> StoredTask | None:
        return await self._one(select(tasks).where(tasks.c.id == task_id))

    async def for_referral(self, referral_id: str) -> StoredTask | None:
        return await self._one(select(tasks).where(tasks.c.referral_id == referral_id))

    async def search(
        self, equals: dict[str, str], limit: int = 50, organisation: str | None = None
    ) -> list[StoredTask]:
        """Tasks whose columns equal the given values; with `organisation`, only its own (owner or requester)."""
        query = select(tasks).order_by(tasks.c.updated_at).limit(limit)
        if organisation is not None:
            query = query.where(or_(tasks.c.owner == organisation, tasks.c.requester == organisation))
        for column, value in equals.items():
            query = query.where(tasks.c[column] == value)
        async with self._store.door.read() as conn:
            return [_stored(r) for r in (await conn.execute(query)).all()]

    async def versions(self, task_id: str) -> list[str]:
        query = (
            select(task_versions.c.resource).where(task_versions.c.task_id == task_id).order_by(task_versions.c.version)
        )
        async with self._store.door.read() as conn:
            return [r.resource for r in (await conn.execute(query)).all()]

    async def save_version(
        self,
        current: StoredTask,
        resource: str,
        status: str,
        event: OutboxEvent,
        steps: Sequence[tuple[str, dict[str, Any]]],
        message_key: tuple[str, str] | None = None,
    ) -> StoredTask:
        """Commit the next version (its FHIR JSON and status) with its status event; with the sender's
        message id (a BaRS response's X-Request-Id) kept, so it is not taken twice. `StaleWrite` when
        another change committed first (`unique_key`: that message id)."""
        version = _Version(current, resource, status, event, tuple(steps), message_key)
        try:
            return await self._store.write(_save_version, version)
        except IntegrityError as exc:
            raise StaleWrite(f"task {current.id} changed meanwhile", unique_key=True) from exc

    async def _one(self, query: Any) -> StoredTask | None:
        async with self._store.door.read() as conn:
            row = (await conn.execute(query)).first()
        return _stored(row) if row else None


@dataclass(frozen=True)
class _Version:
    current: StoredTask
    resource: str
    status: str
    event: OutboxEvent
    steps: tuple[tuple[str, dict[str, Any]], ...]
    message_key: tuple[str, str] | None


def _save_version(conn: Connection, new: _Version) -> StoredTask:
    current, at, version = new.current, now(), new.current.version + 1
    result = conn.execute(
        update(tasks)
        .where(tasks.c.id == current.id, tasks.c.version == current.version)
        .values(status=new.status, version=version, resource=new.resource, updated_at=at)
    )
    if result.rowcount != 1:
        raise StaleWrite(f"task {current.id} changed meanwhile")
    conn.execute(insert(task_versions).values(task_id=current.id, version=version, resource=new.resource, at=at))
    write_events(conn, [new.event], current.referral_id)
    write_steps(conn, current.referral_id, new.steps)
    if new.message_key:
        sender, message_id = new.message_key
        row = {"sender": sender, "message_id": message_id, "referral_id": current.referral_id, "created_at": at}
        conn.execute(insert(processed_messages).values(**row))
    return StoredTask(current.id, current.referral_id, new.status, version, new.resource, at)


def _stored(row: Row[Any]) -> StoredTask:
    return StoredTask(row.id, row.referral_id, row.status, row.version, row.resource, row.updated_at)
