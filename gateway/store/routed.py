"""Where accepted referrals were routed: the referral rows with the service their `routed` history
step names. Read by the routing dry run and the wait watcher. Must not: route anything."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from gateway.store.store import Store
from gateway.store.tables import history, referrals


@dataclass(frozen=True)
class Routed:
    id: str
    identifier: str  # the business identifier's value (UBRN, pad reference), never a patient's
    resource: str  # the ServiceRequest as stored
    topic: str
    rule: str
    service: str | None
    created_at: datetime


async def accepted_since(store: Store, since: datetime) -> list[Routed]:
    """Every referral accepted at or after `since`, oldest first."""
    query = select(referrals).where(referrals.c.created_at >= since).order_by(referrals.c.created_at)
    async with store.door.read() as conn:
        rows = (await conn.execute(query)).all()
        services = await routed_services(conn, [r.id for r in rows])
    return [
        Routed(r.id, r.identifier_value, r.resource, r.topic, r.rule, services.get(r.id), r.created_at) for r in rows
    ]


async def routed_services(conn: Any, referral_ids: list[str]) -> dict[str, str]:
    """Referral id → the directory service its last `routed` step names."""
    found: dict[str, str] = {}
    for start in range(0, len(referral_ids), 500):  # IN lists of a size every database takes
        query = (
            select(history.c.referral_id, history.c.detail)
            .where(history.c.step == "routed", history.c.referral_id.in_(referral_ids[start : start + 500]))
            .order_by(history.c.seq)
        )
        for row in (await conn.execute(query)).all():
            service = json.loads(row.detail).get("service")
            if service:
                found[row.referral_id] = str(service)
    return found
