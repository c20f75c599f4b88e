"""What a wait breach sends, built as events (pure, no I/O):

    breach_event / cleared_event   on referrals.status: the Task as it stands, the breach in the headers,
                                   for the topic's readers (no receiver is sent these)
    escalation_event               a copy of the referral for the fallback service, on the referral's
                                   own topic, addressed to the fallback (`routing_service`), marked as
                                   an escalation in the headers and in the ServiceRequest itself

The copy is marked in the resource as well as the headers because a receiver's system keeps the
ServiceRequest, not our headers: an extension says why and from which service, and a note says the
same for a person reading it. The copy keeps the referral's identifiers, so the fallback can name it
back; it is sent to the fallback only, never again to the first receiver.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.bus import events
from gateway.store.breaches import Breach
from gateway.store.store import OutboxEvent

ESCALATION_EXTENSION = "https://referral-gateway.nhs.example/fhir/StructureDefinition/Extension-Gateway-Escalation"
SOURCE = "urn:referral-gateway:safety:wait-watcher"


def breach_headers(breach: Breach) -> dict[str, str]:
    return {
        "referral": f"ServiceRequest/{breach.referral_id}",
        "task_status": breach.status,
        "breach_id": breach.id,
        "breach_service": breach.service,
        "breach_priority": breach.priority,
        "breach_limit": breach.wait_limit,
        "breach_since": breach.since.isoformat(),
        "breach_due": breach.due_at.isoformat(),
        **({"escalated_to": breach.escalated_to} if breach.escalated_to else {}),
    }


def breach_event(breach: Breach, task: str, key: str, correlation_id: str, topic: str) -> OutboxEvent:
    return _task_event(events.TASK_WAIT_BREACHED, breach, task, key, correlation_id, topic, breach_headers(breach))


def cleared_event(breach: Breach, task: str, key: str, correlation_id: str, at: datetime, topic: str) -> OutboxEvent:
    headers = {**breach_headers(breach), "breach_cleared": at.isoformat()}
    return _task_event(events.TASK_WAIT_CLEARED, breach, task, key, correlation_id, topic, headers)


def _task_event(
    event_type: str, breach: Breach, task: str, key: str, correlation_id: str, topic: str, headers: dict[str, str]
) -> OutboxEvent:
    """The Task as it stands, on the status topic, the breach in the headers."""
    return events.new_event(
        topic=topic,
        key=key,
        event_type=event_type,
        source=SOURCE,
        subject=f"Task/{breach.task_id}",
        value=task,
        correlation_id=correlation_id,
        extra=headers,
    )


def escalation_event(breach: Breach, referral: str, topic: str, key: str, correlation_id: str) -> OutboxEvent:
    assert breach.escalated_to is not None
    return events.new_event(
        topic=topic,
        key=key,
        event_type=events.SERVICEREQUEST_ESCALATED,
        source=SOURCE,
        subject=f"ServiceRequest/{breach.referral_id}",
        value=escalated_copy(referral, breach),
        correlation_id=correlation_id,
        extra={
            "routing_service": breach.escalated_to,
            "escalation": "true",
            "escalated_from": breach.service,
            "breach_id": breach.id,
        },
    )


def why(breach: Breach) -> str:
    return (
        f"Escalated by the referral gateway: not picked up by {breach.service} within {breach.wait_limit} "
        f"at Task status '{breach.status}' (waiting since {breach.since.isoformat(timespec='minutes')}, "
        f"due by {breach.due_at.isoformat(timespec='minutes')})."
    )


def escalated_copy(referral: str, breach: Breach) -> str:
    """The stored ServiceRequest (FHIR JSON) with the escalation extension and note; valid FHIR R4."""
    sr: dict[str, Any] = json.loads(referral)
    marker = {
        "url": ESCALATION_EXTENSION,
        "extension": [
            {"url": "reason", "valueString": why(breach)},
            {"url": "originalService", "valueString": breach.service},
            {"url": "waitedAtStatus", "valueCode": breach.status},
            {"url": "breachedAt", "valueDateTime": breach.breached_at.isoformat()},
        ],
    }
    sr["extension"] = [*sr.get("extension", []), marker]
    sr["note"] = [*sr.get("note", []), {"text": why(breach)}]
    ServiceRequest.model_validate(sr)  # what leaves is valid FHIR R4
    return json.dumps(sr, separators=(",", ":"), ensure_ascii=False)
