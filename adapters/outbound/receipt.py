"""`Outgoing` (what every outbound adapter is given) and `Receipt` (what a receiver answered)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.canonical.referral import Reason


@dataclass(frozen=True)
class Outgoing:
    """One event for one receiver (a referral, or a Task change back to the referrer), with the ids
    that make a resend recognisable."""

    resource: str  # the ServiceRequest (or, for a status event, the Task) as published (FHIR JSON)
    event_id: str  # unique per event: the receiver's de-duplication key
    reason: Reason  # new, update or delete
    correlation_id: str
    sent_at: str  # when the event was made (ce_time), so every copy of a message reads the same
    referral: str | None = None  # a status event: `resource` is the Task, this the ServiceRequest it is about

    @property
    def is_status(self) -> bool:
        return self.referral is not None


@dataclass(frozen=True)
class Receipt:
    """A receiver took the delivery: how it answered (never patient data)."""

    summary: str
    duplicate: bool = False  # the receiver already had it and said so
