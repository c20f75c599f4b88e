"""Sending a logged message again: edited, or as it came (one, or every refused one of a sender or a
reason in a time window, once a cause such as a missing directory entry is fixed).

A resubmission is a new arrival on the original's channel, logged as a row of its own that names the
original, who sent it again and what they changed (a unified diff); it goes through the same surface
code and the same intake as the original did, so the same rules and the same de-duplication hold:
resubmitting twice makes one referral. A bulk resubmission skips an original that a resubmission
already turned into a referral. Each is audited (who, what changed, what became of it).

Must not: resubmit anything but a referral message (a Task update is answered by its sender), or
change the original row (the log is append-only).
"""

from __future__ import annotations

import asyncio
import difflib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl

from adapters.inbound.fhir import messaging, rest
from adapters.inbound.pad import inbound as pad_inbound
from adapters.inbound.pad.rules import Variant
from gateway.audit import context as audit_context
from gateway.audit.context import Actor
from gateway.audit.events import FAILED, SUCCESS, Entity
from gateway.audit.trail import AuditTrail
from gateway.canonical.referral import InboundReferral
from gateway.errors import GatewayError, Issue, MalformedInput, NotFound, UnsupportedInput
from gateway.inbound_log.arrival import ACCEPTED, DUPLICATE, REFUSED, Arrival
from gateway.inbound_log.log import InboundLog
from gateway.observability.masking import scrub_text
from gateway.settings import PadSettings
from gateway.store.inbound import InboundMessages, InboundQuery, LoggedMessage

log = logging.getLogger(__name__)

#: Outcomes after which an original needs no more resubmitting.
_DONE = (ACCEPTED, DUPLICATE)


class Intake(Protocol):
    """The intake spine (gateway/intake.py) as a resubmission uses it: what it answers is not read, so
    the log does not import the intake (which reads the arrival this package gives)."""

    async def accept(self, inbound: InboundReferral) -> object: ...
    async def update(self, inbound: InboundReferral) -> object: ...


class Hl7Surface(Protocol):
    async def __call__(self, text: str, arrival: Arrival | None = None) -> list[str]: ...


@dataclass(frozen=True)
class Resubmission:
    original: str  # the original's log id
    attempt: str | None  # the new attempt's log id; None when skipped
    outcome: str  # accepted, duplicate, refused, failed, or skipped
    referral_id: str | None
    issues: tuple[Issue, ...] = ()


class Resubmitter:
    def __init__(
        self,
        log: InboundLog,
        messages: InboundMessages,
        intake: Intake,
        hl7: Hl7Surface,
        pad: tuple[PadSettings, Path],
        audit: AuditTrail | None = None,
        bulk_max: int = 1000,
    ) -> None:
        self._log = log
        self._messages = messages
        self._intake = intake
        self._hl7 = hl7
        self._pad = pad
        self._audit = audit
        self._bulk_max = bulk_max

    async def resubmit(self, message_id: str, by: str, edited: bytes | None = None) -> Resubmission:
        """Send one logged message again, as `edited` when given; returns what became of it."""
        original = await self._messages.get(message_id)
        if original is None:
            raise NotFound(f"no inbound message {message_id} is logged here")
        return await self._send(original, by, edited)

    async def bulk(self, query: InboundQuery, by: str) -> list[Resubmission]:
        """Every refused original matching `query` sent again as it came (skipping one already resubmitted
        into a referral), oldest first."""
        criteria = InboundQuery(query.since, query.until, query.sender, {**query.equals, "outcome": REFUSED})
        page = await self._messages.search(criteria, 0, self._bulk_max)
        done = []
        for original in reversed(page.items):
            if original.resubmit_of is not None:
                continue  # an attempt itself: its original is the one to send
            if await self._resubmitted(original.id):
                done.append(Resubmission(original.id, None, "skipped", None))
                continue
            done.append(await self._send(original, by, None))
        return done

    async def _resubmitted(self, original_id: str) -> bool:
        attempts = await self._messages.search(InboundQuery(equals={"resubmit_of": original_id}), 0, 100)
        return any(a.outcome in _DONE for a in attempts.items)

    async def _send(self, original: LoggedMessage, by: str, edited: bytes | None) -> Resubmission:
        surface = self._surface(original)
        raw = original.raw if edited is None else edited
        arrival = Arrival(
            original.channel,
            raw,
            sender=original.sender,
            source_address=original.source_address,
            destination=original.destination,
            control_id=original.control_id,
            correlation_id=original.correlation_id,
            content_type=original.content_type,
            resubmit_of=original.id,
            resubmitted_by=by,
            edit_diff=diff(original.raw, raw) if edited is not None else None,
        )

        async def as_sent() -> None:
            # in a task of its own, so the sender's address (which the sender checks see) stays there
            audit_context.connected_from(original.source_address)
            try:
                await surface(arrival)
            except GatewayError:  # logged with its outcome; the caller reads it from the result
                log.info("resubmission %s of %s: %s", arrival.id, original.id, arrival.final_outcome())

        await asyncio.create_task(as_sent())
        done = Resubmission(
            original.id,
            arrival.id,
            arrival.final_outcome(),
            arrival.referral_id,
            arrival.error.issues if arrival.error else (),
        )
        await self._audited(done, by, arrival.edit_diff)
        return done

    def _surface(self, original: LoggedMessage) -> Callable[[Arrival], Awaitable[None]]:
        if original.channel == "hl7v2-mllp":
            return self._hl7v2
        route = (original.destination or "").split(" ")
        send = _HTTP_SURFACES.get((route[0], route[-1])) if len(route) == 2 else None
        if send is None:
            raise UnsupportedInput(
                f"a message to {original.destination or original.channel} is not resubmitted here",
                Issue("only referral messages are resubmitted", "destination", "not-supported"),
            )

        async def surface(arrival: Arrival) -> None:
            async with self._log.receiving(arrival):
                await send(self, arrival)

        return surface

    async def _hl7v2(self, arrival: Arrival) -> None:
        await self._hl7(_text(arrival.raw), arrival)

    async def _fhir_rest(self, arrival: Arrival) -> None:
        sr = rest.service_request(arrival.raw, arrival.content_type)
        await self._intake.accept(rest.inbound(sr, arrival.correlation_id or arrival.id, arrival.control_id))

    async def _fhir_messaging(self, arrival: Arrival) -> None:
        if not arrival.control_id:
            raise MalformedInput("X-Request-Id is required", Issue("no X-Request-Id", "X-Request-Id", "required"))
        inbound = messaging.from_bundle(
            arrival.raw, arrival.content_type, arrival.control_id, arrival.correlation_id or arrival.id
        )
        await (self._intake.accept(inbound) if inbound.reason == "new" else self._intake.update(inbound))

    async def _pad_fields(self, arrival: Arrival) -> None:
        settings, schemas = self._pad
        web_form = not (arrival.content_type or "").split(";")[0].strip().endswith("json")
        values = _form_fields(arrival.raw) if web_form else json.loads(arrival.raw)
        variant: Variant = "self" if (arrival.destination or "").endswith("/self-referral") else "physiotherapist"
        token = str(values.get("_submission") or arrival.control_id or arrival.id) if web_form else None
        values = {k: v for k, v in values.items() if not k.startswith("_")}  # the form's token and CSRF field
        inbound = pad_inbound.from_fields(
            values,
            variant,
            web_form=web_form,
            settings=settings,
            schemas_dir=schemas,
            correlation_id=arrival.correlation_id or arrival.id,
            message_id=token or arrival.control_id,
        )
        await self._intake.accept(inbound)

    async def _questionnaire(self, arrival: Arrival) -> None:
        settings, schemas = self._pad
        inbound = pad_inbound.from_questionnaire_response(
            arrival.raw,
            arrival.content_type,
            settings=settings,
            schemas_dir=schemas,
            correlation_id=arrival.correlation_id or arrival.id,
            message_id=arrival.control_id,
        )
        await self._intake.accept(inbound)

    async def _audited(self, done: Resubmission, by: str, edit: str | None) -> None:
        if self._audit is None:
            return
        what = f"resubmitted inbound message {done.original} as {done.attempt}: {done.outcome}"
        if done.referral_id:
            what += f" (ServiceRequest/{done.referral_id})"
        if edit:
            what += "; edited:\n" + scrub_text(edit)
        entities = [Entity(f"ServiceRequest/{done.referral_id}")] if done.referral_id else []
        outcome = SUCCESS if done.outcome in _DONE else FAILED
        await self._audit.note("resubmit", *entities, outcome=outcome, description=what, actor=Actor(by, "person"))


#: (method, path) as the log recorded it -> how a message to it is sent again.
_HTTP_SURFACES: dict[tuple[str, str], Callable[[Resubmitter, Arrival], Awaitable[None]]] = {
    ("POST", "/fhir/ServiceRequest"): Resubmitter._fhir_rest,
    ("POST", "/fhir/$process-message"): Resubmitter._fhir_messaging,
    ("POST", "/pad"): Resubmitter._pad_fields,
    ("POST", "/pad/self-referral"): Resubmitter._pad_fields,
    ("POST", "/fhir/QuestionnaireResponse"): Resubmitter._questionnaire,
}


def diff(before: bytes, after: bytes) -> str:
    """What an edit changed, as a unified diff of the message's lines (HL7 segments end in CR)."""
    old, new = _lines(before), _lines(after)
    return "\n".join(difflib.unified_diff(old, new, "original", "edited", lineterm="", n=1))


def _lines(raw: bytes) -> list[str]:
    return _text(raw).replace("\r\n", "\r").replace("\n", "\r").rstrip("\r").split("\r")


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _form_fields(raw: bytes) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in parse_qsl(_text(raw), keep_blank_values=True):
        if key in values:
            previous = values[key]
            values[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            values[key] = value
    return values
