"""Tracing a referral: every hop in order, with times, from its history (`referral_history`, which the
intake, the relay, the status spine, delivery and dead-letter handling each write to).

    find(store, q)      referrals whose id, identifier, NHS number or correlation id is `q`: a page of
                        them, newest first, with how many match in all
    trace(store, id)    the referral, its Task's status and its hops: received (adapter), validated,
                        routed (rule and ruleset version), published (topic/partition/offset), each
                        Task status change, each delivery attempt, retry and dead letter, replays

What each hop says is made by `describe` (pure). Patient identifiers are masked unless asked for.
Must not: change anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.canonical import nhs_number
from gateway.monitoring.dead_letters import DISCARDED, REPLAYED
from gateway.observability.masking import NHS_NUMBER_MASK, scrub_text
from gateway.store import Store, lookup
from gateway.store.inbound import Page
from gateway.store.lookup import Found as Found  # re-exported: a line of the list the view shows
from gateway.store.store import HistoryEntry

PAGE_SIZE = 20
Facts = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Hop:
    at: datetime
    step: str
    title: str
    facts: Facts
    elapsed: timedelta  # since the first hop
    outcome: str  # ok, warn, fail or info: how the page marks it


@dataclass(frozen=True)
class Trace:
    referral_id: str
    identifier: str
    nhs_number: str
    channel: str
    sender: str
    correlation_id: str
    status: str
    topic: str
    rule: str
    ruleset_version: str | None
    task_status: str | None
    created_at: datetime
    hops: tuple[Hop, ...]


async def find(
    store: Store, q: str, organisation: str | None = None, offset: int = 0, limit: int = PAGE_SIZE
) -> Page[Found]:
    """Referrals whose id, identifier value, NHS number or correlation id is `q` (with `organisation`,
    only those it sent or that are addressed to it): `limit` of them from `offset`, and the total."""
    q = q.strip()
    return await lookup.find(store, q, nhs_number.normalise(q), organisation, max(offset, 0), limit)


async def trace(store: Store, referral_id: str, unmasked: bool = False) -> Trace | None:
    row = await lookup.referral(store, referral_id)
    if row is None:
        return None
    history = await store.history(referral_id)
    shown = _shown(unmasked)
    return Trace(
        referral_id=row.id,
        identifier=f"{row.identifier_system}|{row.identifier_value}",
        nhs_number=row.nhs_number if unmasked else NHS_NUMBER_MASK,
        channel=row.channel,
        sender=row.sender,
        correlation_id=row.correlation_id,
        status=row.status,
        topic=row.topic,
        rule=row.rule,
        ruleset_version=_ruleset(history),
        task_status=row.task_status,
        created_at=row.created_at,
        hops=hops(history, shown),
    )


def hops(history: list[HistoryEntry], shown: Callable[[str], str] = scrub_text) -> tuple[Hop, ...]:
    if not history:
        return ()
    start = history[0].at
    return tuple(_hop(entry, start, shown) for entry in history)


def _hop(entry: HistoryEntry, start: datetime, shown: Callable[[str], str]) -> Hop:
    title, facts, outcome = describe(entry.step, entry.detail)
    return Hop(
        at=entry.at,
        step=entry.step,
        title=shown(title),
        facts=tuple((label, shown(value)) for label, value in facts),
        elapsed=entry.at - start,
        outcome=outcome,
    )


def describe(step: str, d: dict[str, Any]) -> tuple[str, Facts, str]:
    """One history step as a line for people: what happened, the facts that matter, and its outcome."""
    maker = _DESCRIPTIONS.get(step)
    if maker is None:
        return step, _facts(d, *sorted(d)), "info"
    return maker(d)


def _facts(d: dict[str, Any], *keys: str) -> Facts:
    return tuple((k.replace("_", " "), _text(d[k])) for k in keys if d.get(k) not in (None, ""))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _received(d: dict[str, Any]) -> tuple[str, Facts, str]:
    return f"Received by the {d.get('channel')} adapter from {d.get('sender')}", _facts(d, "message_id"), "ok"


def _validated(d: dict[str, Any]) -> tuple[str, Facts, str]:
    return f"Validated against {d.get('profile', 'the rules')}", (), "ok"


def _routed(d: dict[str, Any]) -> tuple[str, Facts, str]:
    facts = _facts(d, "rule", "ruleset_version", "service", "topic", "triage", "reason")
    return f"Routed by rule {d.get('rule')} to {d.get('service') or d.get('topic')}", facts, "ok"


def _published(d: dict[str, Any]) -> tuple[str, Facts, str]:
    where = f"{d.get('topic')} partition {d.get('partition')} offset {d.get('offset')}"
    return f"Published to {where}", _facts(d, "event_type", "event_id"), "ok"


def _updated(d: dict[str, Any]) -> tuple[str, Facts, str]:
    return f"New version from the {d.get('channel')} adapter: {d.get('status')}", _facts(d, "event_type"), "info"


def _status(d: dict[str, Any]) -> tuple[str, Facts, str]:
    facts = _facts(d, "channel", "sender", "reason", "business_status", "task_version")
    outcome = "warn" if d.get("status") in ("rejected", "cancelled", "failed") else "ok"
    return f"Task status changed to {d.get('status')}", facts, outcome


def _delivered(d: dict[str, Any]) -> tuple[str, Facts, str]:
    facts = _facts(d, "attempt", "receipt", "duplicate", "event_type", "event_id")
    return f"Delivered to {d.get('receiver')} ({d.get('format')})", facts, "ok"


def _delivery_failed(d: dict[str, Any]) -> tuple[str, Facts, str]:
    facts = _facts(d, "format", "error", "retriable", "event_id")
    if d.get("waiting"):  # in the receiver's MESH inbox, not downloaded yet: looked at again, not a failure
        return f"Waiting for {d.get('receiver')} to download it ({d.get('format')})", facts, "warn"
    return f"Delivery to {d.get('receiver')} failed (attempt {d.get('attempt')})", facts, "fail"


def _retry_scheduled(d: dict[str, Any]) -> tuple[str, Facts, str]:
    return f"Retry of the delivery to {d.get('receiver')} scheduled", _facts(d, "due", "attempts", "reason"), "warn"


def _dead_lettered(d: dict[str, Any]) -> tuple[str, Facts, str]:
    facts = _facts(d, "receiver", "attempts", "topic", "event_id")
    return f"Dead-lettered: {d.get('reason')}", facts, "fail"


def _replayed(d: dict[str, Any]) -> tuple[str, Facts, str]:
    facts = _facts(d, "dead_letter", "topic", "replay_event", "by")
    return f"Dead letter replayed to {d.get('receiver') or d.get('topic')}", facts, "info"


def _discarded(d: dict[str, Any]) -> tuple[str, Facts, str]:
    return f"Dead letter discarded: {d.get('reason')}", _facts(d, "dead_letter", "by"), "info"


def _wait_breached(d: dict[str, Any]) -> tuple[str, Facts, str]:
    facts = _facts(d, "service", "priority", "limit", "since", "due")
    return f"Waited at {d.get('status')} longer than {d.get('limit')}: wait breached", facts, "fail"


def _escalated(d: dict[str, Any]) -> tuple[str, Facts, str]:
    return f"Escalated: a copy sent to {d.get('to')}, marked as an escalation", _facts(d, "from", "event_id"), "warn"


def _wait_breach_cleared(d: dict[str, Any]) -> tuple[str, Facts, str]:
    facts = _facts(d, "service", "limit", "since", "cleared_at", "working_hours_waited")
    return f"The wait breach at {d.get('status')} cleared: the Task moved", facts, "ok"


_DESCRIPTIONS: dict[str, Callable[[dict[str, Any]], tuple[str, Facts, str]]] = {
    "received": _received,
    "validated": _validated,
    "routed": _routed,
    "published": _published,
    "updated": _updated,
    "status": _status,
    "delivered": _delivered,
    "delivery-failed": _delivery_failed,
    "retry-scheduled": _retry_scheduled,
    "dead-lettered": _dead_lettered,
    REPLAYED: _replayed,
    DISCARDED: _discarded,
    "wait-breached": _wait_breached,
    "escalated": _escalated,
    "wait-breach-cleared": _wait_breach_cleared,
}


def _ruleset(history: list[HistoryEntry]) -> str | None:
    routed = next((h for h in history if h.step == "routed"), None)
    return str(routed.detail.get("ruleset_version")) if routed and routed.detail.get("ruleset_version") else None


def _shown(unmasked: bool) -> Callable[[str], str]:
    return (lambda text: text) if unmasked else scrub_text
