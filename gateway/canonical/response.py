"""`InboundResponse`: what an inbound adapter makes of a receiver's answer about a referral (a BaRS
`servicerequest-response`), for the status spine: the names of the referral it answers and the Task
outcome it reports. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir.resources.R4B.codeableconcept import CodeableConcept


@dataclass(frozen=True)
class Outcome:
    """The Task elements a response sets (None: left as they are)."""

    status: str
    business_status: CodeableConcept | None = None
    reason: CodeableConcept | None = None
    how: str = ""  # which rule gave it, for the history


@dataclass(frozen=True)
class InboundResponse:
    referral_ids: tuple[str, ...]  # the gateway's own ids the message names
    identifiers: tuple[tuple[str, str], ...]  # business identifiers (system, value) it names
    outcome: Outcome
    sender: str
    message_id: str
    digest: str | None = None  # the message's fingerprint (BaRS: X-Correlation-Id and body)
    names: list[str] = field(default_factory=list)  # how it named the referral, for a refusal's text
