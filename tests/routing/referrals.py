"""Referrals for routing tests: the schemas' samples with the elements a test is about changed."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest

from tests.samples import load, service_request

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
SNOMED = "http://snomed.info/sct"
LOCAL = "https://referral-gateway.nhs.example/CodeSystem"
EPIDURAL = "routing-epidural-acute-sciatica.json"
RF_DENERVATION = "routing-rf-denervation.json"


def referral(sample: str = "servicerequest-msk-pain.json", **changes: Any) -> ServiceRequest:
    """A sample with fresh identifiers; `changes` replace top-level elements (None removes one)."""
    data = service_request() if sample == "servicerequest-msk-pain.json" else load(f"fhir/{sample}")
    data.update(changes)
    return ServiceRequest.model_validate({k: v for k, v in data.items() if v is not None})


def performer(ods: str) -> list[dict[str, Any]]:
    return [{"identifier": {"system": ODS, "value": ods}}]


def concept(code: str, system: str = SNOMED) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def concepts(*codes: str, system: str = SNOMED) -> list[dict[str, Any]]:
    return [concept(code, system) for code in codes]


def contained(sample: str, resource_id: str) -> dict[str, Any]:
    """A copy of one contained resource of a sample, to change and pass back in `contained`."""
    found: dict[str, Any] = next(r for r in load(f"fhir/{sample}")["contained"] if r["id"] == resource_id)
    return found


def service_performer(ods: str, system: str, value: str) -> list[dict[str, Any]]:
    """The performer as the FHIR adapter writes it for a named service: the organisation, then the
    service typed HealthcareService (routing reads the reference's identifier, not the resource)."""
    return [*performer(ods), {"type": "HealthcareService", "identifier": {"system": system, "value": value}}]
