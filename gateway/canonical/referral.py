"""`InboundReferral`: what every inbound adapter hands the intake spine, and read-only accessors
for the canonical ServiceRequest.

The canonical ServiceRequest names people and organisations by identifier (logical references):
`subject.identifier` is the NHS number, `requester.identifier` and `performer[0].identifier` are ODS
codes. What more the sender said about the parties travels contained: the requesting practitioner
and their role (the `requesting-practitioner` extension), the receiving HealthcareService (a
further performer, typed HealthcareService, identified by DoS id), a patient still to be traced.
That keeps each event self-contained: a receiver needs no other resource to act on it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.canonical import systems
from gateway.errors import Issue

_ID_NAMESPACE = uuid.UUID("6f1c7c1e-6a43-4c55-9a0b-5a3f0c0b7e21")


def referral_id_for(system: str, value: str) -> str:
    """Deterministic: the same business identifier always gets the same id, in every process."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{system}|{value}"))


Reason = Literal["new", "update", "delete"]


@dataclass(frozen=True)
class InboundReferral:
    """A referral as an inbound adapter understood it, before validation and routing."""

    service_request: ServiceRequest
    channel: str  # the adapter: fhir-rest, fhir-messaging, hl7v2-mllp, pad
    sender: str  # who sent it: an ODS code, or MSH-3^MSH-4 for HL7 v2
    correlation_id: str
    message_id: str | None = None  # the sender's id for this message (X-Request-Id, MSH-10)
    #: A fingerprint of the message as sent (BaRS: X-Correlation-Id and body), kept with the message id
    #: so a retry of the same message is told apart from another message reusing its id.
    message_digest: str | None = None
    reason: Reason = "new"
    attachments: tuple[Resource, ...] = field(default=())  # e.g. the pad's QuestionnaireResponse
    #: `service_request` as the FHIR JSON it was built from, when the adapter built that JSON itself (the
    #: HL7 v2 and pad mappings, valid by construction: gateway/canonical/trusted.py). The intake then
    #: stores and publishes it as it is instead of dumping the model again, and validates it with
    #: fhir.resources only when `intake.validate_mapped` says so. It must dump exactly as the model does
    #: (tests/trust/test_valid_by_construction.py and the golden tests hold the mappings to that).
    resource: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    #: How each party was found (party → source), recorded in the referral's history.
    resolved: dict[str, str] = field(default_factory=dict, compare=False)
    #: What was read leniently (system URI variants): told to the sender, recorded in the history.
    warnings: tuple[Issue, ...] = field(default=(), compare=False)
    #: What the sender's access headers claimed (BaRS NHSD-*), as checked against its token: header →
    #: organisation (and practitioner), recorded in the history.
    claims: dict[str, str] = field(default_factory=dict, compare=False)


def stored_service_request(resource: str) -> ServiceRequest:
    """A referral's ServiceRequest from its JSON as the store keeps it (the store itself parses no FHIR)."""
    return ServiceRequest.model_validate_json(resource)


def identifier_value(reference: object, system: str) -> str | None:
    """The value of a logical reference's identifier when it is in `system`."""
    ident = getattr(reference, "identifier", None)
    if ident is not None and ident.system == system and ident.value:
        return str(ident.value)
    return None


def nhs_number(sr: ServiceRequest) -> str | None:
    return identifier_value(sr.subject, systems.NHS_NUMBER)


def requester_ods(sr: ServiceRequest) -> str | None:
    return identifier_value(sr.requester, systems.ODS_CODE) if sr.requester else None


def performer_ods(sr: ServiceRequest) -> str | None:
    for performer in sr.performer or []:
        code = identifier_value(performer, systems.ODS_CODE)
        if code:
            return code
    return None


def named_services(sr: ServiceRequest) -> list[tuple[str, str]]:
    """(system, value) of each HealthcareService the performer names: what routing matches a service by."""
    named = []
    for performer in sr.performer or []:
        ident = performer.identifier
        if performer.type == "HealthcareService" and ident is not None and ident.system and ident.value:
            named.append((str(ident.system), str(ident.value)))
    return named


def business_identifier(sr: ServiceRequest) -> tuple[str, str] | None:
    """The referral's own identifier (system, value): the key that makes a resend a duplicate."""
    for ident in sr.identifier or []:
        if ident.system and ident.value:
            return str(ident.system), str(ident.value)
    return None


def codes(concepts: Any) -> set[str]:
    """Every code in a CodeableConcept or a list of them, for routing and criteria."""
    items = concepts if isinstance(concepts, list) else [concepts] if concepts else []
    return {str(c.code) for cc in items for c in (cc.coding or []) if c.code}


def source_of_referral(sr: ServiceRequest) -> str | None:
    """The SNOMED CT code in the UK Core SourceOfServiceRequest extension, if any."""
    for ext in sr.extension or []:
        if ext.url == systems.EXT_SOURCE_OF_SERVICE_REQUEST and ext.valueCodeableConcept:
            found = codes(ext.valueCodeableConcept)
            return next(iter(sorted(found)), None)
    return None
