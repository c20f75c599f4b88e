"""The MESH channel's record of what it sent: (event, recipient mailbox) → MESH message id and the
status tracking last reported. Written right after MESH accepted a message, so a delivery tried
again (after a crash, or a tracking time-out) follows that message instead of sending another.
Must not: talk to MESH or decide anything about a delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update

from gateway.store.door import run_statements
from gateway.store.store import Store, now
from gateway.store.tables import mesh_sent


@dataclass(frozen=True)
class SentMessage:
    event_id: str
    recipient: str
    message_id: str
    referral_id: str | None
    mailbox: str
    workflow_id: str
    status: str
    sent_at: datetime
    tracked_at: datetime | None


class MeshSentLog:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def find(self, event_id: str, recipient: str) -> SentMessage | None:
        query = select(mesh_sent).where(mesh_sent.c.event_id == event_id, mesh_sent.c.recipient == recipient)
        async with self._store.door.read() as conn:
            row = (await conn.execute(query)).first()
        return SentMessage(**row._mapping) if row else None

    async def sent(
        self,
        event_id: str,
        recipient: str,
        message_id: str,
        mailbox: str,
        workflow_id: str,
        referral_id: str | None = None,
    ) -> None:
        """A new message for this (event, recipient): replaces one that MESH could not deliver."""
        key = (mesh_sent.c.event_id == event_id) & (mesh_sent.c.recipient == recipient)
        values = {
            "event_id": event_id,
            "recipient": recipient,
            "message_id": message_id,
            "referral_id": referral_id,
            "mailbox": mailbox,
            "workflow_id": workflow_id,
            "status": "accepted",
            "sent_at": now(),
        }
        await self._store.write(run_statements, delete(mesh_sent).where(key), insert(mesh_sent).values(**values))

    async def referral_of(self, event_id: str) -> str | None:
        """The referral an event the channel sent was about (a receiver's answer names the event)."""
        query = select(mesh_sent.c.referral_id).where(mesh_sent.c.event_id == event_id).limit(1)
        async with self._store.door.read() as conn:
            found = (await conn.execute(query)).scalar_one_or_none()
        return str(found) if found else None

    async def tracked(self, event_id: str, recipient: str, status: str) -> None:
        key = (mesh_sent.c.event_id == event_id) & (mesh_sent.c.recipient == recipient)
        await self._store.write(run_statements, update(mesh_sent).where(key).values(status=status, tracked_at=now()))

    async def awaiting(self) -> list[SentMessage]:
        """Messages sent and not yet reported downloaded or failed (the dashboard's 'waiting out')."""
        query = select(mesh_sent).where(mesh_sent.c.status == "accepted").order_by(mesh_sent.c.sent_at)
        async with self._store.door.read() as conn:
            rows = (await conn.execute(query)).all()
        return [SentMessage(**r._mapping) for r in rows]
