from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.canonical import ukcore
from gateway.errors import InvalidReferral
from tests.samples import service_request


def problems(**changes: Any) -> dict[str, str]:
    with pytest.raises(InvalidReferral) as caught:
        ukcore.validate(ServiceRequest.model_validate(service_request(**changes)))
    return {issue.expression or "": issue.diagnostics for issue in caught.value.issues}


def test_the_sample_referral_meets_the_rules() -> None:
    ukcore.validate(ServiceRequest.model_validate(service_request()))


def test_subject_must_be_an_nhs_number() -> None:
    found = problems(subject={"identifier": {"system": "https://example.org/mrn", "value": "123"}})
    assert "NHS number" in found["ServiceRequest.subject.identifier"]


def test_nhs_number_check_digit_is_checked() -> None:
    found = problems(subject={"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765918"}})
    assert "modulus-11" in found["ServiceRequest.subject.identifier.value"]


def test_requester_and_performer_need_ods_codes() -> None:
    found = problems(
        requester={"display": "Dr Who"},
        performer=[
            {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "not an ods code"}}
        ],
    )
    assert "ODS code" in found["ServiceRequest.requester.identifier"]
    assert "is not an ODS code" in found["ServiceRequest.performer[0].identifier.value"]


def test_missing_performer_is_reported() -> None:
    assert "ServiceRequest.performer.identifier" in problems(performer=None)


def test_status_intent_and_priority_codes_are_checked_together() -> None:
    found = problems(status="sent", intent="wish", priority="whenever")
    assert set(found) >= {"ServiceRequest.status", "ServiceRequest.intent", "ServiceRequest.priority"}


def test_a_referral_identifier_is_required() -> None:
    assert "ServiceRequest.identifier" in problems(identifier=[{"value": "no system"}])
