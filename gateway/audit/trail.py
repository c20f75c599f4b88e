"""The audit recorder: every create, read, update, delivery, replay and refusal becomes one FHIR
AuditEvent, appended to the store (its own tables) with its outbox record for the audit topic (`gateway.audit`).

`record` returns after the commit. Writes from many requests share transactions (group commit, as
referrals do), so auditing every read costs one fsync per batch, not per read. `row` gives the
same row to a spine that writes it inside its own transaction (delivery; the intake, whose accepted
referrals carry their audit event into the referral's own commit).
Who and from where come from the current context (context.py) unless given.
Must not: decide whether an action is allowed (gateway/auth does), or update a written event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from gateway.audit import context
from gateway.audit.context import Actor
from gateway.audit.events import SUCCESS, AuditRecord, Entity, audit_json
from gateway.bus import events
from gateway.errors import StoreUnavailable
from gateway.store import Store
from gateway.store.audit import AuditLog, AuditRow
from gateway.store.rows import appended_id
from gateway.store.store import now

log = logging.getLogger(__name__)

AUDIT_RECORDED = "uk.nhs.referral.audit.recorded"


class AuditTrail:
    def __init__(self, store: Store, wake_relay: Callable[[], None], batch_max: int = 256, *, topic: str) -> None:
        self._topic = topic  # settings.topics.audit
        self._wake_relay = wake_relay
        self.log = AuditLog(store, batch_max)

    async def start(self) -> None:
        self.log.start()

    async def stop(self) -> None:
        await self.log.stop()

    async def record(
        self,
        interaction: str,
        *entities: Entity,
        outcome: str = SUCCESS,
        description: str | None = None,
        actor: Actor | None = None,
        recipient: str | None = None,
    ) -> None:
        row = self.row(
            interaction, *entities, outcome=outcome, description=description, actor=actor, recipient=recipient
        )
        await self.log.append(row)
        self._wake_relay()

    async def note(
        self,
        interaction: str,
        *entities: Entity,
        outcome: str = SUCCESS,
        description: str | None = None,
        actor: Actor | None = None,
        recipient: str | None = None,
    ) -> None:
        """`record` where the action has happened (or been refused) whatever the trail can do: a
        trail that cannot be written is logged, not raised."""
        try:
            await self.record(
                interaction, *entities, outcome=outcome, description=description, actor=actor, recipient=recipient
            )
        except StoreUnavailable as exc:
            log.error("audit event (%s, outcome %s) not recorded: %s", interaction, outcome, exc)

    def row(
        self,
        interaction: str,
        *entities: Entity,
        outcome: str = SUCCESS,
        description: str | None = None,
        actor: Actor | None = None,
        recipient: str | None = None,
    ) -> AuditRow:
        who = actor or context.current_actor() or context.anonymous()
        record = AuditRecord(appended_id(), now(), interaction, outcome, who, entities, description, recipient)
        return audit_row(record, self._topic)


def audit_row(record: AuditRecord, topic: str) -> AuditRow:
    resource = orjson.dumps(audit_json(record)).decode()  # the one serialisation: the row's and the event's
    actor = record.actor
    event = {
        "id": record.id,
        "recorded": record.recorded,
        "action": record.interaction,
        "outcome": record.outcome,
        "agent": actor.id[:255],
        "agent_ods": actor.ods,
        "source_address": actor.address,
        "resource": resource,
    }
    entities = _entity_rows(record)
    subject = next(iter(e.reference for e in record.entities), f"AuditEvent/{record.id}")
    outbox = events.new_event(
        topic=topic,
        key=subject[:64],
        event_type=AUDIT_RECORDED,
        source="urn:referral-gateway:audit",
        subject=f"AuditEvent/{record.id}",
        value=resource,
        correlation_id=record.id,
        extra={"audit_action": record.interaction, "audit_outcome": record.outcome},
    )
    return AuditRow(event, entities, outbox)


def _entity_rows(record: AuditRecord) -> tuple[dict[str, Any], ...]:
    """One row per resource the event is about (a search's query is in the event, not indexed)."""
    rows: dict[str, dict[str, Any]] = {}
    for e in record.entities:
        if e.query is None and e.reference not in rows:
            rows[e.reference] = {
                "event_id": record.id,
                "reference": e.reference,
                "requester": e.requester,
                "performer": e.performer,
            }
    return tuple(rows.values())
