"""Deleting what the store no longer needs, in one transaction on the writer: published outbox events,
the history and delivery records of settled referrals, and the MESH channel's sent records. The
pruning job (gateway/monitoring/retention.py) says when and how far back.

Referrals and their Tasks are the record and are never deleted here; nor is an unpublished event, a
delivery waiting for a retry, or a dead letter not yet replayed or discarded.
Must not: decide the retention periods (the settings do).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, func, select

from gateway.store.deliveries import RETRYING
from gateway.store.store import Store
from gateway.store.tables import deliveries, history, mesh_sent, outbox


@dataclass(frozen=True)
class Cutoffs:
    events: datetime  # published outbox events before this
    histories: datetime  # referrals whose last step is before this, and MESH messages sent before it
    dead_letter_topic: str  # whose events go only once settled
    settled_steps: Collection[str]  # the history steps that settle a dead letter (replayed, discarded)


@dataclass(frozen=True)
class Deleted:
    outbox: int
    history: int
    deliveries: int
    mesh_sent: int


async def prune(store: Store, cutoffs: Cutoffs) -> Deleted:
    return await store.write(_prune, cutoffs)


def _prune(conn: Connection, cutoffs: Cutoffs) -> Deleted:
    events = _prune_events(conn, cutoffs)
    steps, kept = _prune_histories(conn, cutoffs.histories)
    sent = conn.execute(delete(mesh_sent).where(mesh_sent.c.sent_at < cutoffs.histories))
    return Deleted(events, steps, kept, int(sent.rowcount or 0))


def _prune_events(conn: Connection, cutoffs: Cutoffs) -> int:
    settled = _settled_dead_letters(conn, cutoffs)
    result = conn.execute(
        delete(outbox).where(
            outbox.c.published_at < cutoffs.events,
            (outbox.c.topic != cutoffs.dead_letter_topic) | outbox.c.event_id.in_(settled),
        )
    )
    return int(result.rowcount or 0)


def _prune_histories(conn: Connection, before: datetime) -> tuple[int, int]:
    """Deliveries first: which referrals are stale is read from the history deleted after."""
    stale = (
        select(history.c.referral_id).group_by(history.c.referral_id).having(func.max(history.c.at) < before)
    ).scalar_subquery()
    kept = conn.execute(delete(deliveries).where(deliveries.c.referral_id.in_(stale), deliveries.c.status != RETRYING))
    steps = conn.execute(delete(history).where(history.c.referral_id.in_(stale)))
    return int(steps.rowcount or 0), int(kept.rowcount or 0)


def _settled_dead_letters(conn: Connection, cutoffs: Cutoffs) -> list[str]:
    """Dead letters published before the events' cutoff that were replayed or discarded."""
    candidates = select(outbox.c.referral_id).where(
        outbox.c.topic == cutoffs.dead_letter_topic, outbox.c.published_at < cutoffs.events
    )
    query = select(history.c.detail).where(
        history.c.step.in_(list(cutoffs.settled_steps)), history.c.referral_id.in_(candidates)
    )
    return [json.loads(r.detail).get("dead_letter", "") for r in conn.execute(query).all()]
