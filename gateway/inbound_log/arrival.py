"""One message that arrived, and what became of it: the log's row in the making (pure, no I/O).

The surface that took the message fills in what it knows (who, from where, the control or request
id), the intake notes what it decided, and a refusal names its reason class:

    unreadable     not parseable as what it claims to be (HL7 syntax, JSON, FHIR, media type)
    header         the message's or the request's header (MSH, X-Request-Id, NHSD-*, MessageHeader)
    mapping        read, but not turned into a referral (a field missing or wrong in the adapter)
    ukcore         a referral, but it breaks the UK Core rules (the intake's check)
    routing        valid, but no service takes it
    authorisation  no valid credentials, not allowed, or too many requests
    state          does not fit the referral's or Task's state (not found, conflict, If-Match)
    gateway        the gateway's own failure (the store did not commit): counted, not a refusal

Must not: log patient details (the row holds them; log lines carry ids only).
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.errors import (
    Conflict,
    DuplicateRequest,
    Forbidden,
    GatewayError,
    Issue,
    MalformedInput,
    NotFound,
    PreconditionFailed,
    RateLimited,
    ReceiverError,
    Unauthenticated,
    UnroutableReferral,
    UnsupportedInput,
)
from gateway.store.rows import appended_id, now

REASONS = ("unreadable", "header", "mapping", "ukcore", "routing", "authorisation", "state")
ACCEPTED, DUPLICATE, REFUSED, FAILED = "accepted", "duplicate", "refused", "failed"
OUTCOMES = (ACCEPTED, DUPLICATE, REFUSED, FAILED)

#: Issue locations that name a header: HL7 MSH fields, HTTP headers, the FHIR MessageHeader.
_HEADER_PREFIXES = ("MSH", "X-", "NHSD-", "MessageHeader", "Bundle.entry[0]", "Content-Type")

_current: ContextVar[Arrival | None] = ContextVar("inbound_arrival", default=None)
_frame: ContextVar[bytes | None] = ContextVar("inbound_frame", default=None)


@dataclass
class Arrival:
    channel: str  # the inbound adapter, as /metrics names it: hl7v2-mllp, fhir-rest, fhir-messaging, pad ...
    raw: bytes
    sender: str = ""
    source_address: str | None = None
    destination: str | None = None  # what it was sent to: MSH-5^MSH-6, the HTTP route
    control_id: str | None = None
    correlation_id: str | None = None
    content_type: str | None = None
    resubmit_of: str | None = None
    resubmitted_by: str | None = None
    edit_diff: str | None = None
    id: str = field(default_factory=appended_id)
    received_at: datetime = field(default_factory=now)
    # what happened to it
    nhs_number: str | None = None
    in_intake: bool = False  # the intake took it up: an InvalidReferral from here is a UK Core refusal
    outcome: str | None = None
    referral_id: str | None = None
    error: GatewayError | None = None
    reason: str | None = None
    logged: bool = False  # its row is committed (by the referral's transaction, or by the log)
    counted: bool = False  # its outcome is counted and logged: settled once, however many ways out

    def refuse(self, error: GatewayError, reason: str | None = None) -> None:
        """The surface refused it (or the gateway failed); the first noted error is the one logged."""
        if self.error is None:
            self.error = error
            self.reason = reason

    def settled(self, outcome: str, referral_id: str | None) -> None:
        """The intake committed its row with the referral (accepted, or a duplicate of `referral_id`)."""
        self.outcome, self.referral_id, self.logged = outcome, referral_id, True

    def row(self) -> dict[str, Any]:
        """The log's columns but the outcome's (the referral's commit fills those in)."""
        return {
            "id": self.id,
            "received_at": self.received_at,
            "channel": self.channel,
            "sender": self.sender[:255],
            "source_address": self.source_address,
            "destination": (self.destination or "")[:255] or None,
            "control_id": (self.control_id or "")[:255] or None,
            "correlation_id": (self.correlation_id or "")[:128] or None,
            "content_type": (self.content_type or "")[:128] or None,
            "raw": self.raw,
            "size": len(self.raw),
            "nhs_number": self.nhs_number,
            "issues": "[]",
            "reason": None,
            "resubmit_of": self.resubmit_of,
            "resubmitted_by": self.resubmitted_by,
            "edit_diff": self.edit_diff,
        }

    def final_row(self) -> dict[str, Any]:
        """The whole row, once the outcome is known (a message the intake did not commit)."""
        outcome = self.final_outcome()
        return {
            **self.row(),
            "outcome": outcome,
            "referral_id": self.referral_id,
            "reason": self.final_reason() if outcome in (REFUSED, FAILED) else None,
            "issues": json.dumps([_issue(i) for i in self.error.issues]) if self.error else "[]",
        }

    def final_outcome(self) -> str:
        if self.outcome is not None:
            return self.outcome
        if self.error is None:
            return ACCEPTED
        if isinstance(self.error, DuplicateRequest):
            return DUPLICATE
        return FAILED if isinstance(self.error, ReceiverError) or type(self.error) is GatewayError else REFUSED

    def final_reason(self) -> str:
        if self.reason is not None:
            return self.reason
        return reason_of(self.error, self.in_intake) if self.error else "gateway"


def reason_of(error: GatewayError, in_intake: bool) -> str:
    """The reason class of a refusal (see the module docstring)."""
    if isinstance(error, ReceiverError) or type(error) is GatewayError:
        return "gateway"
    if isinstance(error, Unauthenticated | Forbidden | RateLimited):
        return "authorisation"
    if isinstance(error, UnroutableReferral):
        return "routing"
    if isinstance(error, NotFound | Conflict | PreconditionFailed | DuplicateRequest):
        return "state"
    if in_intake:
        return "ukcore"
    if any((i.expression or "").startswith(_HEADER_PREFIXES) for i in error.issues):
        return "header"
    if isinstance(error, MalformedInput | UnsupportedInput):
        return "unreadable"
    return "mapping"


def current() -> Arrival | None:
    """The message being handled in this task, if a surface is logging it."""
    return _current.get()


def refused_here(error: GatewayError) -> None:
    """Note `error` as the refusal of the message being handled, if one is being logged (for a
    surface that renders the error itself, such as the pad's form page or the app's error handler)."""
    arrival = _current.get()
    if arrival is not None:
        arrival.refuse(error)


def frame_received(frame: bytes) -> None:
    """The MLLP listener read this frame and hands its text to the handler next (same task)."""
    _frame.set(frame)


def wire_bytes(text: str) -> bytes:
    """The bytes of the frame whose text this is, as the listener read them (`frame_received`); the
    text as UTF-8 when no frame was noted (a handler called without a listener)."""
    frame = _frame.get()
    if frame is not None:
        _frame.set(None)
        return frame
    return text.encode("utf-8")


def _issue(issue: Issue) -> dict[str, Any]:
    return {"diagnostics": issue.diagnostics, "expression": issue.expression, "code": issue.code}
