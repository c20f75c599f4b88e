"""What the store says about traffic: the outbox backlog and, per receiver, what delivery made of its
events (the `deliveries` table the delivery spine keeps). Read-only.

A receiver's health is the state of its most recent delivery: delivered (healthy), waiting for a retry
(retrying) or given up (failing); a receiver nothing has been sent to yet is idle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from gateway.observability.masking import scrub_text
from gateway.store import Store, traffic
from gateway.store.deliveries import DEAD_LETTERED, DELIVERED, RETRYING

HEALTH = {DELIVERED: "healthy", RETRYING: "retrying", DEAD_LETTERED: "failing"}
_RECENT_FAILURES = 500


@dataclass(frozen=True)
class Backlog:
    waiting: int
    oldest: datetime | None  # when the oldest unpublished event was committed


@dataclass(frozen=True)
class ReceiverStats:
    receiver: str
    delivered: int = 0
    retrying: int = 0
    dead_lettered: int = 0
    retries: int = 0  # attempts beyond the first, over every delivery kept
    last_delivered: datetime | None = None
    last_change: datetime | None = None
    latest_status: str | None = None
    last_error: str | None = None

    @property
    def health(self) -> str:
        return HEALTH.get(self.latest_status or "", "idle")


async def backlog(store: Store) -> Backlog:
    return Backlog(*await traffic.backlog(store))


async def receiver_stats(store: Store) -> dict[str, ReceiverStats]:
    """Per receiver (directory service id): counts by state, retries, and the latest outcome."""
    return await _stats(store, "receiver")


async def format_stats(store: Store) -> dict[str, ReceiverStats]:
    """The same per outbound adapter (fhir-rest, fhir-messaging, hl7v2-mllp, kafka)."""
    return await _stats(store, "format")


async def _stats(store: Store, by: traffic.By) -> dict[str, ReceiverStats]:
    counts, failures = await traffic.delivery_counts(store, by, _RECENT_FAILURES)
    errors: dict[str, str] = {}
    for failed, error in failures:
        errors.setdefault(failed or "none", scrub_text(error))
    stats: dict[str, ReceiverStats] = {}
    for c in counts:
        name = c.name or "none"
        stats[name] = _add(stats.get(name) or ReceiverStats(name), c.status, c.count, c.attempts, c.last)
    return {r: _with_error(s, errors.get(r)) for r, s in stats.items()}


def _add(stats: ReceiverStats, status: str, count: int, attempts: int | None, last: datetime) -> ReceiverStats:
    retries = stats.retries + int(attempts or 0) - int(count)
    newer = stats.last_change is None or last > stats.last_change
    return ReceiverStats(
        receiver=stats.receiver,
        delivered=stats.delivered + (count if status == DELIVERED else 0),
        retrying=stats.retrying + (count if status == RETRYING else 0),
        dead_lettered=stats.dead_lettered + (count if status == DEAD_LETTERED else 0),
        retries=max(retries, 0),
        last_delivered=last if status == DELIVERED else stats.last_delivered,
        last_change=last if newer else stats.last_change,
        latest_status=status if newer else stats.latest_status,
    )


def _with_error(stats: ReceiverStats, error: str | None) -> ReceiverStats:
    if stats.latest_status == DELIVERED or error is None:
        return stats
    return replace(stats, last_error=error)
