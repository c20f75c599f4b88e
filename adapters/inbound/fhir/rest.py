"""FHIR RESTful `POST /ServiceRequest`: a ServiceRequest (JSON or XML) to the canonical referral."""

from __future__ import annotations

from dataclasses import dataclass

from fhir.resources.R4B.servicerequest import ServiceRequest

from adapters.inbound.fhir import references, source, targets
from adapters.inbound.fhir.parse import parse_with_warnings, summary
from adapters.inbound.fhir.parties import ServiceOwner
from gateway.canonical import referral, ukcore
from gateway.canonical.referral import InboundReferral
from gateway.errors import InvalidReferral, Issue

CHANNEL = "fhir-rest"


@dataclass(frozen=True)
class Read:
    """A ServiceRequest as the gateway understood it, with how its parties were found and warnings."""

    service_request: ServiceRequest
    resolved: dict[str, str]
    warnings: tuple[Issue, ...]


def read(
    body: bytes, content_type: str | None, target_header: str | None = None, service_owner: ServiceOwner | None = None
) -> Read:
    """Parse and canonicalise (references resolved against contained resources), refusing with every
    problem at once: what cannot be resolved and every UK Core rule broken."""
    target, header_warnings = targets.decode(target_header)
    parsed, warnings = parse_with_warnings(body, content_type, ServiceRequest)
    assert isinstance(parsed, ServiceRequest)
    resolved = references.resolve(parsed, references.Context(target=target, service_owner=service_owner))
    sr = source.inferred(resolved.service_request)
    problems = references.with_rules(resolved, ukcore.issues(sr))
    if problems:
        raise InvalidReferral(summary("the ServiceRequest cannot be taken as it is", problems), *problems)
    return Read(sr, resolved.how, (*header_warnings, *warnings))


def service_request(body: bytes, content_type: str | None) -> ServiceRequest:
    return read(body, content_type).service_request


def inbound(
    sr: ServiceRequest | Read, correlation_id: str, request_id: str | None, digest: str | None = None
) -> InboundReferral:
    found = sr if isinstance(sr, Read) else Read(sr, {}, ())
    model = found.service_request
    sender = referral.requester_ods(model) or "unknown"
    return InboundReferral(
        service_request=model,
        channel=CHANNEL,
        sender=sender,
        correlation_id=correlation_id,
        message_id=request_id,
        message_digest=digest,
        resolved=found.resolved,
        warnings=found.warnings,
    )
