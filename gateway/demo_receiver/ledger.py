"""What the demo receiver took (one entry per referral) and every request it saw, plus how it is
told to behave (fail with an HTTP status or an HL7 ACK code, be slow)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class Received:
    """One referral as the receiver keeps it; a resend of the same identity changes nothing."""

    format: str  # fhir-rest, fhir-messaging, hl7v2-mllp
    identity: str  # what makes two copies one referral (identifier system|value, placer referral number)
    request_id: str | None  # the sender's id for the message (X-Request-Id, MSH-10)
    reason: str  # new, update or delete
    version: int
    at: str
    body: str  # what arrived: FHIR JSON or HL7 v2 text


@dataclass(frozen=True)
class StatusSeen:
    """A referral's status as the referrer hears it back from the gateway (a Task, or an RRI^I12)."""

    format: str
    identity: str  # the referral's business identifier (system|value, or RF1-6)
    status: str
    text: str | None  # business status or reason, if given
    at: str


@dataclass(frozen=True)
class Hit:
    """One request, whatever became of it."""

    format: str
    identity: str
    request_id: str | None
    outcome: str  # created, updated, duplicate, or failed: <status / ACK code>


@dataclass
class Behaviour:
    """How to answer the next `times` requests (None: every request until told otherwise)."""

    http_status: int | None = None  # answer HTTP requests with this status instead of taking them
    ack_code: str | None = None  # answer MLLP messages with this ACK code (AE, AR) instead of AA
    delay_s: float = 0.0  # wait this long before answering
    times: int | None = None


@dataclass
class ReceivedReferrals:
    file: Path | None = None
    behaviour: Behaviour = field(default_factory=Behaviour)
    referrals: dict[str, Received] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    statuses: list[StatusSeen] = field(default_factory=list)
    on_new: Callable[[str], None] | None = None  # told the gateway's referral id of each new referral
    _request_ids: set[str] = field(default_factory=set)

    def heard(self, fmt: str, identity: str, status: str, text: str | None) -> StatusSeen:
        seen = StatusSeen(fmt, identity, status, text, datetime.now(UTC).isoformat())
        self.statuses.append(seen)
        return seen

    def keep(
        self, fmt: str, identity: str, request_id: str | None, reason: str, body: str, referral_id: str | None = None
    ) -> tuple[Received, str]:
        """Take a referral; returns it as kept and what happened (created, updated, duplicate)."""
        known = self.referrals.get(identity)
        repeated = bool(request_id and request_id in self._request_ids)
        if request_id:
            self._request_ids.add(request_id)
        if known is not None and (repeated or reason == "new"):
            self.hits.append(Hit(fmt, identity, request_id, "duplicate"))
            return known, "duplicate"
        version = known.version + 1 if known else 1
        kept = Received(fmt, identity, request_id, reason, version, datetime.now(UTC).isoformat(), body)
        self.referrals[identity] = kept
        self._write(kept)
        outcome = "updated" if version > 1 else "created"
        if outcome == "created" and referral_id and self.on_new is not None:
            self.on_new(referral_id)
        self.hits.append(Hit(fmt, identity, request_id, outcome))
        return kept, outcome

    async def misbehave(self, kind: str) -> int | str | None:
        """Be slow and/or fail as told, counting the request down: the failure to answer with
        ('http': a status; 'mllp': an ACK code), or None to take the request."""
        b = self.behaviour
        answer = b.http_status if kind == "http" else b.ack_code
        if b.times == 0 or (answer is None and not b.delay_s):
            return None
        if b.times is not None:
            b.times -= 1
        if b.delay_s:
            await asyncio.sleep(b.delay_s)
        return answer

    def failed(self, fmt: str, identity: str, request_id: str | None, answer: int | str) -> None:
        self.hits.append(Hit(fmt, identity, request_id, f"failed: {answer}"))

    def _write(self, received: Received) -> None:
        if self.file is not None:
            with self.file.open("a", encoding="utf-8") as out:
                out.write(json.dumps(asdict(received)) + "\n")
