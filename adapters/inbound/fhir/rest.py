"""FHIR RESTful `POST /ServiceRequest`: a ServiceRequest (JSON or XML) to the canonical referral."""

from __future__ import annotations

from fhir.resources.R4B.servicerequest import ServiceRequest

from adapters.inbound.fhir import references, source
from adapters.inbound.fhir.parse import parse
from gateway.canonical import referral
from gateway.canonical.referral import InboundReferral

CHANNEL = "fhir-rest"


def service_request(body: bytes, content_type: str | None) -> ServiceRequest:
    """Parse and canonicalise: literal references resolved against contained resources."""
    sr = parse(body, content_type, ServiceRequest)
    assert isinstance(sr, ServiceRequest)
    return source.inferred(references.canonicalise(sr, {}))


def inbound(sr: ServiceRequest, correlation_id: str, request_id: str | None) -> InboundReferral:
    sender = referral.requester_ods(sr) or "unknown"
    return InboundReferral(
        service_request=sr, channel=CHANNEL, sender=sender, correlation_id=correlation_id, message_id=request_id
    )
