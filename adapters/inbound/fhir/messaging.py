"""FHIR messaging, NHS Booking and Referral Standard (BaRS) style: a `message` Bundle whose first
entry is a MessageHeader (event `servicerequest-request`, reason new / update / delete, focus the
ServiceRequest) to the canonical referral. `read` parses the Bundle once and names its event, so a
`servicerequest-response` goes to `adapters.inbound.fhir.response` without a second parse.

BaRS reasons: `new` is a referral; `update` changes it, or cancels it when the ServiceRequest is
`revoked` (circumstances changed); `delete` marks it `entered-in-error` (it should never have been
sent), whatever status the sender wrote.

BaRS rules enforced here: the MessageHeader comes first; the event and reason come from the BaRS code
systems; the focus resolves within the Bundle; a ServiceRequest's references resolve against the
Bundle's entries or its contained resources. Must not: decide what an update is allowed to do (the
intake does, against the stored referral).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.messageheader import MessageHeader
from fhir.resources.R4B.servicerequest import ServiceRequest

from adapters.inbound.fhir import references, source, targets
from adapters.inbound.fhir.parse import parse_with_warnings, summary
from adapters.inbound.fhir.parties import ServiceOwner
from gateway.canonical import systems, ukcore
from gateway.canonical.referral import InboundReferral, Reason
from gateway.errors import InvalidReferral, Issue, MalformedInput, UnsupportedInput

CHANNEL = "fhir-messaging"
_REASONS: dict[str, Reason] = {"new": "new", "update": "update", "delete": "delete"}


EVENTS = (systems.BARS_EVENT_SERVICEREQUEST_REQUEST, systems.BARS_EVENT_SERVICEREQUEST_RESPONSE)


@dataclass(frozen=True)
class Message:
    """A message Bundle as read: its header, its event code, its entries by every name a reference
    may use, and the warnings about what was read leniently."""

    bundle: Bundle
    header: MessageHeader
    event: str
    entries: references.Index
    warnings: tuple[Issue, ...] = ()


def read(body: bytes, content_type: str | None) -> Message:
    parsed, warnings = parse_with_warnings(body, content_type, Bundle)
    bundle = cast(Bundle, parsed)
    if bundle.type != "message":
        raise MalformedInput(
            "$process-message takes a Bundle of type 'message'",
            Issue(f"type is '{bundle.type}'", "Bundle.type", "value"),
        )
    header = _header(bundle)
    event = _event(header)
    entries = references.index((e.fullUrl, e.resource) for e in bundle.entry or [] if e.resource)
    return Message(bundle, header, event, entries, tuple(warnings))


def from_bundle(
    body: bytes,
    content_type: str | None,
    request_id: str,
    correlation_id: str,
    target_header: str | None = None,
    service_owner: ServiceOwner | None = None,
) -> InboundReferral:
    """The referral a BaRS message carries. `target_header` is NHSD-Target-Identifier as sent;
    `service_owner` answers which organisation provides a service (the directory)."""
    message = read(body, content_type)
    return referral(message, request_id, correlation_id, target_header=target_header, service_owner=service_owner)


def referral(
    message: Message,
    request_id: str,
    correlation_id: str,
    digest: str | None = None,
    target_header: str | None = None,
    service_owner: ServiceOwner | None = None,
) -> InboundReferral:
    """The referral a `servicerequest-request` message carries; `digest` is the message's fingerprint."""
    if message.event != systems.BARS_EVENT_SERVICEREQUEST_REQUEST:
        raise UnsupportedInput(
            f"a {message.event} message is not a referral",
            Issue(f"eventCoding is {message.event}", "MessageHeader.eventCoding", "not-supported"),
        )
    target, header_warnings = targets.decode(target_header)
    header, entries = message.header, message.entries
    reason, problems = _reason(header)
    sr = _focus(header, entries, problems)
    context = references.Context(
        resources=entries,
        sender=header.sender,
        receivers=tuple(d.receiver for d in header.destination or [] if d.receiver is not None),
        target=target,
        service_owner=service_owner,
    )
    resolved = references.resolve(sr, context)
    sr = source.inferred(resolved.service_request)
    problems += references.with_rules(resolved, ukcore.issues(sr))
    if problems:  # every problem with the message at once, each at its FHIRPath
        raise InvalidReferral(summary("the BaRS message cannot be taken as it is", problems), *problems)
    if reason == "delete":
        sr.status = "entered-in-error"
    return InboundReferral(
        service_request=sr,
        channel=CHANNEL,
        sender=resolved.sender or _endpoint(header),
        correlation_id=correlation_id,
        message_id=request_id,
        reason=reason or "new",
        resolved=resolved.how,
        warnings=(*header_warnings, *message.warnings),
        message_digest=digest,
    )


def _header(bundle: Bundle) -> MessageHeader:
    first = bundle.entry[0].resource if bundle.entry else None
    if first is None or first.get_resource_type() != "MessageHeader":
        raise MalformedInput(
            "the first entry of a message Bundle must be its MessageHeader",
            Issue("entry[0] is not a MessageHeader", "Bundle.entry[0].resource", "structure"),
        )
    return cast(MessageHeader, first)


def _event(header: MessageHeader) -> str:
    event = header.eventCoding
    if event is None or event.system != systems.BARS_MESSAGE_EVENTS or event.code not in EVENTS:
        got = f"{event.system}|{event.code}" if event else "nothing"
        raise UnsupportedInput(
            f"the BaRS events processed here are {' and '.join(EVENTS)}",
            Issue(f"eventCoding is {got}", "MessageHeader.eventCoding", "not-supported"),
        )
    return str(event.code)


def _reason(header: MessageHeader) -> tuple[Reason | None, list[Issue]]:
    for coding in (header.reason.coding if header.reason else None) or []:
        if coding.system == systems.BARS_MESSAGE_REASON and coding.code in _REASONS:
            return _REASONS[coding.code], []
    return None, [
        Issue(
            "MessageHeader.reason must be new, update or delete (message-reason-bars)",
            "MessageHeader.reason",
            "required",
        )
    ]


def _focus(header: MessageHeader, entries: references.Index, problems: list[Issue]) -> ServiceRequest:
    ref = header.focus[0].reference if header.focus else None
    target = entries.get(ref) if ref else None
    if target is None or target.get_resource_type() != "ServiceRequest":
        focus = Issue(
            f"MessageHeader.focus must reference the ServiceRequest in this Bundle: '{ref}' does not resolve to one",
            "MessageHeader.focus[0].reference",
            "not-found",
        )
        raise InvalidReferral(summary("the BaRS message has no ServiceRequest to take", [focus]), *problems, focus)
    return cast(ServiceRequest, target)


def _endpoint(header: MessageHeader) -> str:
    """Who sent it when MessageHeader.sender names no organisation: the source endpoint."""
    return str(header.source.endpoint) if header.source else "unknown"


def sender(header: MessageHeader) -> str:
    """Who sent a message, as its header says: MessageHeader.sender's identifier, else the source endpoint."""
    ident = header.sender.identifier if header.sender else None
    if ident is not None and ident.value:
        return str(ident.value)
    return _endpoint(header)
