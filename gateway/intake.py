"""The intake spine: validate → route → store + outbox, for every inbound adapter.

    InboundReferral ──UK Core rules──▶ Router ──▶ Store (referral + outbox event + audit event,
                                                         one group commit) ──▶ relay

A caller hears back only after the commit, so an HTTP 201 or an HL7 AA always means "durably
accepted", audit event included, and the inbound log's row of the message it came in is in that commit
too when its surface logs it (gateway/inbound_log), saying which referral it became.
A resend (same business identifier, or the same sender's message id)
returns the first referral and adds no event. Updates and cancellations follow the same path with a
new version. The ServiceRequest is validated once (by the adapter) and serialised once: the adapter's
own JSON when it has it (HL7 v2), else one dump of the model; that one string is the stored row and
the event's value. The model is never copied.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.audit import spines
from gateway.audit.trail import AuditTrail
from gateway.bus import events
from gateway.canonical import patient, ukcore
from gateway.canonical import referral as ref
from gateway.canonical.referral import InboundReferral
from gateway.canonical.task import initial_task
from gateway.errors import Conflict, DuplicateRequest, GatewayError, Issue, NotFound, PreconditionFailed, StaleWrite
from gateway.inbound_log import arrival as arrivals
from gateway.observability import metrics
from gateway.observability.log_context import bind_correlation, correlation
from gateway.routing import RouteDecision, Router
from gateway.store.store import AcceptResult, NewReferral, Store, StoredReferral, now
from gateway.store.tasks import task_rows

log = logging.getLogger(__name__)

#: Statuses from which a referral may still be cancelled (BaRS: only while active).
_CANCELLABLE = {"active", "on-hold", "draft"}
#: A referral marked entered in error (BaRS delete: it should never have existed), unlike one cancelled
#: (revoked: circumstances changed), may be so marked after a cancellation too, but not once completed.
_CORRECTABLE = _CANCELLABLE | {"revoked"}
#: The statuses that end a referral from the referrer's side, and the event each one publishes.
_EVENT_TYPES = {
    "revoked": events.SERVICEREQUEST_CANCELLED,
    "entered-in-error": events.SERVICEREQUEST_ENTERED_IN_ERROR,
}
TASK_INITIAL_STATUS = "requested"
_STAMPED = frozenset({"resourceType", "id", "meta"})  # what `_stamped` sets on the resource


@dataclass(frozen=True)
class Acceptance:
    referral_id: str
    resource: str  # the ServiceRequest as stored, FHIR JSON
    created: bool
    topic: str
    rule: str
    version: int

    @cached_property
    def service_request(self) -> ServiceRequest:
        return ServiceRequest.model_validate_json(self.resource)


class Intake:
    def __init__(
        self,
        store: Store,
        router: Router,
        on_commit: Callable[[], None],
        on_cancelled: Callable[[str], Awaitable[None]] | None = None,
        audit: AuditTrail | None = None,
    ) -> None:
        self._store = store
        self._router = router
        self._on_commit = on_commit
        self._on_cancelled = on_cancelled
        self._audit = audit

    async def accept(self, inbound: InboundReferral) -> Acceptance:
        """Accept a new referral; returns after it is committed (or found to be a resend)."""
        token = bind_correlation(inbound.correlation_id)
        try:
            with metrics.intake(inbound.channel):
                result = await self._commit(inbound)
        except GatewayError as error:
            await spines.referral_action(self._audit, "create", inbound.channel, inbound.sender, None, error)
            raise
        finally:
            correlation.reset(token)
        metrics.accepted(inbound.channel, result.created)
        return _acceptance(result.referral, created=result.created)

    async def _commit(self, inbound: InboundReferral) -> AcceptResult:
        key = (inbound.sender, inbound.message_id) if inbound.message_id else None
        arrival = _taken_up(inbound)
        ukcore.validate(inbound.service_request)
        decision = self._router.route(inbound.service_request)
        new = _new_referral(inbound, decision, key)
        new.audit = spines.referral_accepted(self._audit, inbound.channel, inbound.sender)
        new.inbound = arrival.row() if arrival else None
        result = await self._store.accept(new)  # the referral, its event, audit event and log row: one commit
        if arrival is not None:
            arrival.settled(arrivals.ACCEPTED if result.created else arrivals.DUPLICATE, result.referral.id)
        if result.created:
            log.info("referral %s accepted from %s, routed by %s", result.referral.id, inbound.channel, decision.rule)
        if result.created or new.audit is not None:
            self._on_commit()
        return result

    async def take(self, inbound: InboundReferral) -> Acceptance:
        """A new referral under the sender's message id: the earlier answer when it is a retry,
        `DuplicateRequest` when the id came with another message, else accepted."""
        return await self.replayed(inbound) or await self.accept(inbound)

    async def replayed(self, inbound: InboundReferral) -> Acceptance | None:
        """The answer to a message taken before (BaRS: the same sender's X-Request-Id): the referral as
        it stands when the message is a retry (same fingerprint), `DuplicateRequest` when the id came
        with another message; None when the id is new."""
        if not inbound.message_id:
            return None
        earlier = await self._store.message_referral(inbound.sender, inbound.message_id)
        if earlier is None:
            return None
        taken = [h.detail for h in await self._store.history(earlier.id) if h.step in ("received", "updated")]
        if inbound.message_digest and any(
            d.get("message_id") == inbound.message_id and d.get("digest") == inbound.message_digest for d in taken
        ):
            log.info("message %s from %s is a retry; answered again", inbound.message_id, inbound.sender)
            return _acceptance(earlier, created=False)
        raise DuplicateRequest(
            f"request {inbound.message_id} has already been processed, with another body or correlation id",
            Issue(
                "a message with this X-Request-Id was processed before; a retry keeps its X-Correlation-Id and body",
                "X-Request-Id",
                "duplicate",
            ),
        )

    async def update(
        self,
        inbound: InboundReferral,
        referral_id: str | None = None,
        if_match: int | None = None,
        authorise: Callable[[StoredReferral], None] | None = None,
    ) -> Acceptance:
        """A new version of a known referral (PUT, BaRS update, cancellation). `authorise` sees the
        current referral first and raises if the caller may not change it."""
        current: StoredReferral | None = None
        _taken_up(inbound)
        try:
            current = await self._find(inbound.service_request, referral_id)
            if authorise is not None:
                authorise(current)
            acceptance = await self._update(inbound, current, if_match)
        except GatewayError as error:
            await spines.referral_action(self._audit, "update", inbound.channel, inbound.sender, current, error)
            raise
        await spines.referral_action(self._audit, "update", inbound.channel, inbound.sender, current)
        return acceptance

    async def _update(self, inbound: InboundReferral, current: StoredReferral, if_match: int | None) -> Acceptance:
        if if_match is not None and if_match != current.version:
            raise PreconditionFailed(f"If-Match names version {if_match}; the current version is {current.version}")
        sr = inbound.service_request
        ukcore.validate(sr)
        if sr.status == "revoked" and current.status not in _CANCELLABLE:
            raise Conflict(f"the referral is {current.status}; only an active referral can be cancelled")
        if sr.status == "entered-in-error" and current.status not in _CORRECTABLE:
            raise Conflict(f"the referral is {current.status}; it can no longer be marked entered in error")
        if current.status in {"completed", "entered-in-error"} or (
            current.status == "revoked" and sr.status != "entered-in-error"
        ):
            raise Conflict(f"the referral is {current.status} and can no longer change")
        return await self._write_version(current, inbound)

    async def _find(self, sr: ServiceRequest, referral_id: str | None) -> StoredReferral:
        if referral_id is None:
            ident = ref.business_identifier(sr)
            referral_id = ref.referral_id_for(*ident) if ident else None
        found = await self._store.get(referral_id) if referral_id else None
        if found is None:
            raise NotFound(f"no referral {referral_id or 'with that identifier'} is known here")
        return found

    async def _write_version(self, current: StoredReferral, inbound: InboundReferral) -> Acceptance:
        sr = inbound.service_request
        resource = _stamped(inbound, current.id, current.version + 1)
        kind = _EVENT_TYPES.get(str(sr.status), events.SERVICEREQUEST_UPDATED)
        patient_key, traced = await self._patient_key(current, sr)
        event = _event(patient_key, current.id, resource, current.topic, kind, inbound, {"routing_rule": current.rule})
        key = (inbound.sender, inbound.message_id) if inbound.message_id else None
        steps = [
            (
                "updated",
                {
                    "event_type": kind,
                    "status": sr.status,
                    "channel": inbound.channel,
                    **_message(inbound),
                    **_told(inbound),
                },
            )
        ]
        if traced:  # updated in place: found by its NHS number from now on, its events keep their key
            steps.append(("nhs-number-traced", {"patient_key": patient_key}))
        arrival = arrivals.current()
        try:
            stored = await self._store.update(
                current,
                str(sr.status),
                event,
                steps,
                key,
                nhs_number=ref.nhs_number(sr) if traced else None,
                inbound=arrival.row() if arrival else None,
            )
        except StaleWrite as exc:
            raise StaleWrite("the referral changed while this update was being made; read it and try again") from exc
        if arrival is not None:
            arrival.settled(arrivals.ACCEPTED, stored.id)
        self._on_commit()
        if sr.status in _EVENT_TYPES and self._on_cancelled is not None:
            await self._on_cancelled(stored.id)
        return _acceptance(stored, created=False)

    async def _patient_key(self, current: StoredReferral, sr: ServiceRequest) -> tuple[str, bool]:
        """The key this referral's events keep for life (gateway/canonical/patient.py), and whether this
        version is the one that brings the traced NHS number."""
        number = ref.nhs_number(sr)
        if patient.is_untraced_key(current.nhs_number):
            return current.nhs_number, number is not None
        history = await self._store.history(current.id)
        if any(entry.step == "nhs-number-traced" for entry in history):
            return patient.untraced_key(current.id), False
        return current.nhs_number, False


def _told(inbound: InboundReferral) -> dict[str, Any]:
    """How the parties were found, what the access headers claimed and what was read leniently, for
    the referral's history."""
    told: dict[str, Any] = {}
    if inbound.resolved:
        told["resolved"] = inbound.resolved
    if inbound.claims:
        told["claims"] = inbound.claims
    if inbound.warnings:
        told["warnings"] = [{"diagnostics": w.diagnostics, "expression": w.expression} for w in inbound.warnings]
    return told


def _message(inbound: InboundReferral) -> dict[str, str | None]:
    """What the history keeps of the message itself: its id, and its fingerprint where it has one."""
    kept = {"message_id": inbound.message_id}
    return {**kept, "digest": inbound.message_digest} if inbound.message_digest else kept


def _taken_up(inbound: InboundReferral) -> arrivals.Arrival | None:
    """The logged message this referral came in, noted as taken up by the intake (a refusal from here
    on is the intake's); None when its surface does not log it."""
    arrival = arrivals.current()
    if arrival is not None:
        arrival.in_intake = True
        arrival.nhs_number = (ref.nhs_number(inbound.service_request) or "")[:16] or None
    return arrival


def _new_referral(inbound: InboundReferral, decision: RouteDecision, key: tuple[str, str] | None) -> NewReferral:
    sr = inbound.service_request
    system, value = ref.business_identifier(sr) or ("", "")
    referral_id = ref.referral_id_for(system, value)
    resource = _stamped(inbound, referral_id, 1)
    patient_key = ref.nhs_number(sr) or patient.untraced_key(referral_id)
    routing = {
        "routing_rule": decision.rule,
        "routing_reason": decision.reason,
        "routing_service": decision.service,
        "routing_ruleset": decision.ruleset_version,
    }
    event = _event(patient_key, referral_id, resource, decision.topic, events.SERVICEREQUEST_CREATED, inbound, routing)
    at = now()
    row: dict[str, Any] = {
        "id": referral_id,
        "identifier_system": system,
        "identifier_value": value,
        "nhs_number": patient_key,  # the NHS number, or the untraced patient's key
        "requester": ref.requester_ods(sr),
        "performer": ref.performer_ods(sr),
        "status": sr.status,
        "version": 1,
        "resource": event.value,
        "channel": inbound.channel,
        "sender": inbound.sender,
        "correlation_id": inbound.correlation_id,
        "topic": decision.topic,
        "rule": decision.rule,
        "created_at": at,
        "updated_at": at,
    }
    steps: list[tuple[str, dict[str, Any]]] = [
        (
            "received",
            {"channel": inbound.channel, "sender": inbound.sender, **_message(inbound), **_told(inbound)},
        ),
        ("validated", {"profile": "UK Core"}),
        (
            "routed",
            {
                "topic": decision.topic,
                "rule": decision.rule,
                "reason": decision.reason,
                "service": decision.service,
                "triage": decision.triage,
                "ruleset_version": decision.ruleset_version,
            },
        ),
    ]
    task = initial_task(resource, TASK_INITIAL_STATUS)
    return NewReferral(
        row=row, event=event, steps=steps, message_key=key, task_rows=task_rows(task, referral_id, row["nhs_number"])
    )


def _stamped(inbound: InboundReferral, referral_id: str, version: int) -> dict[str, Any]:
    """The ServiceRequest as FHIR JSON with the gateway's id and meta: the adapter's own JSON when it
    has it (validated already), else the model dumped once. The model itself is never copied."""
    body = inbound.resource if inbound.resource is not None else inbound.service_request.model_dump(mode="json")
    meta: dict[str, Any] = {"versionId": str(version), "lastUpdated": now().isoformat().replace("+00:00", "Z")}
    kept = {k: v for k, v in (body.get("meta") or {}).items() if k in ("tag", "profile", "security")}
    if ref.nhs_number(inbound.service_request):  # traced: the flag no longer holds
        kept["tag"] = [t for t in kept.get("tag", []) if t != patient.flag_tag()] or None
    meta.update({k: v for k, v in kept.items() if v})
    rest = {k: v for k, v in body.items() if k not in _STAMPED}
    return {"resourceType": body.get("resourceType", "ServiceRequest"), "id": referral_id, "meta": meta, **rest}


def _event(
    patient_key: str,
    referral_id: str,
    resource: dict[str, Any],
    topic: str,
    kind: str,
    inbound: InboundReferral,
    extra: dict[str, str],
) -> events.OutboxEvent:
    """The outbox event, keyed by the patient (the NHS number, or the untraced patient's key); its value
    is the one serialisation of the resource, stored with the row too."""
    return events.new_event(
        topic=topic,
        key=patient_key,
        event_type=kind,
        source=f"urn:referral-gateway:{inbound.channel}:{inbound.sender}",
        subject=f"ServiceRequest/{referral_id}",
        value=json.dumps(resource, separators=(",", ":"), ensure_ascii=False),
        correlation_id=inbound.correlation_id,
        extra=extra,
    )


def _acceptance(stored: StoredReferral, created: bool) -> Acceptance:
    return Acceptance(
        referral_id=stored.id,
        resource=stored.resource,
        created=created,
        topic=stored.topic,
        rule=stored.rule,
        version=stored.version,
    )
