"""The event envelope: one Kafka record per referral change (schemas/event-envelope.schema.json).

key = the patient's NHS number, so one patient's events stay in order on one partition;
value = the FHIR resource as JSON; headers = CloudEvents-style attributes plus routing facts.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.store.rows import appended_id
from gateway.store.store import OutboxEvent

__all__ = ["OutboxEvent", "new_event"]

SCHEMA_VERSION = "1"
CONTENT_TYPE = "application/fhir+json"

SERVICEREQUEST_CREATED = "uk.nhs.referral.servicerequest.created"
SERVICEREQUEST_UPDATED = "uk.nhs.referral.servicerequest.updated"
SERVICEREQUEST_CANCELLED = "uk.nhs.referral.servicerequest.cancelled"
SERVICEREQUEST_ENTERED_IN_ERROR = "uk.nhs.referral.servicerequest.entered-in-error"
TASK_UPDATED = "uk.nhs.referral.task.updated"
#: A referral waited at its Task's status longer than its service allows, and the breach cleared (the
#: Task moved); on referrals.status for its readers. No receiver is sent either (gateway/safety).
TASK_WAIT_BREACHED = "uk.nhs.referral.task.wait-breached"
TASK_WAIT_CLEARED = "uk.nhs.referral.task.wait-cleared"
#: A copy of a referral whose wait was breached, sent to the service's fallback, marked as an escalation.
SERVICEREQUEST_ESCALATED = "uk.nhs.referral.servicerequest.escalated"
#: Events about a Task, on referrals.status: what delivery carries back to a referrer, or leaves to the topic.
STATUS_EVENTS = frozenset({TASK_UPDATED, TASK_WAIT_BREACHED, TASK_WAIT_CLEARED})


def new_event(
    *,
    topic: str,
    key: str,
    event_type: str,
    source: str,
    subject: str,
    value: str,
    correlation_id: str,
    extra: dict[str, str] | None = None,
) -> OutboxEvent:
    headers = {
        "ce_specversion": "1.0",
        "ce_id": appended_id(),
        "ce_type": event_type,
        "ce_source": source,
        "ce_subject": subject,
        "ce_time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "content-type": CONTENT_TYPE,
        "correlation_id": correlation_id,
        "schema_version": SCHEMA_VERSION,
        **(extra or {}),
    }
    return OutboxEvent(event_id=headers["ce_id"], topic=topic, key=key, headers=headers, value=value)
