"""Finding referrals for people (the trace view, gateway/monitoring/trace.py): by any of the values a
person may hold (id, business identifier, NHS number, correlation id), a page at a time, and one
referral with its Task's status. Read-only. Must not: mask anything (the view does) or hand a
connection out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select

from gateway.store.inbound import Page
from gateway.store.store import Store
from gateway.store.tables import referrals, tasks


@dataclass(frozen=True)
class Found:
    """A referral a query matched, as a line in a list."""

    id: str
    identifier: str
    channel: str
    status: str
    topic: str
    created_at: datetime
    requester: str | None
    performer: str | None


@dataclass(frozen=True)
class Referral:
    """A referral's columns as a trace shows them, with its Task's status."""

    id: str
    identifier_system: str
    identifier_value: str
    nhs_number: str
    channel: str
    sender: str
    correlation_id: str
    status: str
    topic: str
    rule: str
    created_at: datetime
    task_status: str | None


async def find(store: Store, q: str, nhs_number: str, organisation: str | None, offset: int, limit: int) -> Page[Found]:
    """Referrals whose id, identifier value or correlation id is `q`, or whose NHS number is
    `nhs_number` (with `organisation`, only those it sent or that are addressed to it), newest first."""
    matches = or_(
        referrals.c.id == q,
        referrals.c.identifier_value == q,
        referrals.c.nhs_number == nhs_number,
        referrals.c.correlation_id == q,
    )
    if organisation is not None:
        matches = and_(matches, or_(referrals.c.requester == organisation, referrals.c.performer == organisation))
    query = select(referrals).where(matches).order_by(referrals.c.created_at.desc(), referrals.c.id)
    async with store.door.read() as conn:
        total = int((await conn.execute(select(func.count()).select_from(referrals).where(matches))).scalar_one())
        rows = (await conn.execute(query.offset(offset).limit(limit))).all()
    found = [
        Found(r.id, r.identifier_value, r.channel, r.status, r.topic, r.created_at, r.requester, r.performer)
        for r in rows
    ]
    return Page(found, total, offset, limit)


async def referral(store: Store, referral_id: str) -> Referral | None:
    async with store.door.read() as conn:
        row = (await conn.execute(select(referrals).where(referrals.c.id == referral_id))).first()
        task = (await conn.execute(select(tasks.c.status).where(tasks.c.referral_id == referral_id))).first()
    if row is None:
        return None
    return Referral(
        row.id,
        row.identifier_system,
        row.identifier_value,
        row.nhs_number,
        row.channel,
        row.sender,
        row.correlation_id,
        row.status,
        row.topic,
        row.rule,
        row.created_at,
        task.status if task else None,
    )
