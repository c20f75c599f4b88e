"""`intake.validate_mapped`: off by default (the mappings are valid by construction); on, the intake
validates a mapping's JSON with fhir.resources before anything else, and refuses what fails."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.canonical import trusted
from gateway.canonical.referral import InboundReferral
from gateway.errors import InvalidReferral
from gateway.intake import Intake
from gateway.settings import Settings
from tests.hl7v2.messages import MSK, referral, sample


def test_mapped_json_is_not_validated_again_by_default() -> None:
    assert Settings().intake.validate_mapped is False


def test_intake_validate_mapped_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_VALIDATE_MAPPED", "true")
    assert Settings().intake.validate_mapped is True


def broken(inbound: InboundReferral) -> InboundReferral:
    """The mapping's output with an authoredOn no FHIR dateTime can be: what a faulty builder might write."""
    assert inbound.resource is not None
    resource = {**inbound.resource, "authoredOn": "20 November"}
    return InboundReferral(
        service_request=inbound.service_request,
        channel=inbound.channel,
        sender=inbound.sender,
        correlation_id=inbound.correlation_id,
        resource=resource,
    )


async def test_with_validate_mapped_a_mapping_that_is_not_valid_fhir_is_refused() -> None:
    intake = Intake(None, None, lambda: None, validate_mapped=True)  # type: ignore[arg-type]  # refused before the store
    with pytest.raises(InvalidReferral) as refused:
        await intake.accept(broken(referral(sample(MSK))))
    assert any(issue.expression == "ServiceRequest.authoredOn" for issue in refused.value.issues)


def test_a_mapping_the_models_cannot_be_built_from_is_refused_not_crashed() -> None:
    with pytest.raises(InvalidReferral, match="does not make a valid FHIR ServiceRequest"):
        trusted.model(ServiceRequest, {"resourceType": "ServiceRequest", "authoredOn": "20 November"})
    with pytest.raises(InvalidReferral):
        trusted.model(ServiceRequest, {"resourceType": "ServiceRequest", "no-such-element": 1})
