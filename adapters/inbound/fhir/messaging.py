"""FHIR messaging, NHS Booking and Referral Standard (BaRS) style: a `message` Bundle whose first
entry is a MessageHeader (event `servicerequest-request`, reason new / update / delete, focus the
ServiceRequest) to the canonical referral.

BaRS rules enforced here: the MessageHeader comes first; the event and reason come from the BaRS code
systems; the focus resolves within the Bundle; a ServiceRequest's references resolve against the
Bundle's entries or its contained resources. Must not: decide what an update is allowed to do (the
intake does, against the stored referral).
"""

from __future__ import annotations

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
    target, header_warnings = targets.decode(target_header)
    parsed, warnings = parse_with_warnings(body, content_type, Bundle)
    bundle = cast(Bundle, parsed)
    if bundle.type != "message":
        raise MalformedInput(
            "$process-message takes a Bundle of type 'message'",
            Issue(f"type is '{bundle.type}'", "Bundle.type", "value"),
        )
    header = _header(bundle)
    _check_event(header)
    reason, problems = _reason(header)
    entries = references.index((e.fullUrl, e.resource) for e in bundle.entry or [] if e.resource)
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
        sr.status = "revoked"
    return InboundReferral(
        service_request=sr,
        channel=CHANNEL,
        sender=resolved.sender or _endpoint(header),
        correlation_id=correlation_id,
        message_id=request_id,
        reason=reason or "new",
        resolved=resolved.how,
        warnings=(*header_warnings, *warnings),
    )


def _header(bundle: Bundle) -> MessageHeader:
    first = bundle.entry[0].resource if bundle.entry else None
    if first is None or first.get_resource_type() != "MessageHeader":
        raise MalformedInput(
            "the first entry of a message Bundle must be its MessageHeader",
            Issue("entry[0] is not a MessageHeader", "Bundle.entry[0].resource", "structure"),
        )
    return cast(MessageHeader, first)


def _check_event(header: MessageHeader) -> None:
    event = header.eventCoding
    if (
        event is None
        or event.system != systems.BARS_MESSAGE_EVENTS
        or event.code != systems.BARS_EVENT_SERVICEREQUEST_REQUEST
    ):
        got = f"{event.system}|{event.code}" if event else "nothing"
        raise UnsupportedInput(
            f"only the BaRS event {systems.BARS_EVENT_SERVICEREQUEST_REQUEST} is processed here",
            Issue(f"eventCoding is {got}", "MessageHeader.eventCoding", "not-supported"),
        )


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
