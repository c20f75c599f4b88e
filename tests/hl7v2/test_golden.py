"""Golden files: every REF^I12 sample in schemas/samples/hl7v2 maps to the ServiceRequest stored next to
it, validates in fhir.resources R4B (the mapping is valid by construction, and the intake does not
validate it again by default), passes UK Core and reaches the service its ODS codes name. The one
serialisation (orjson) parses back to the same resource. Pure: no I/O beyond reading the files."""

from __future__ import annotations

import json

import orjson
import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.canonical import ukcore
from gateway.routing import load_router
from gateway.settings import SCHEMAS_DIR
from tests.hl7v2.messages import (
    CUSTOM,
    ESCAPES,
    IAPT,
    LF,
    MSK,
    ZSEG,
    expected_path,
    referral,
    sample,
    sample_names,
    with_field,
)

ROUTES = {
    MSK: ("referrals.msk-pain", "msk-pain-by-performer"),
    ESCAPES: ("referrals.msk-pain", "msk-pain-by-performer"),
    ZSEG: ("referrals.msk-pain", "msk-pain-by-performer"),
    IAPT: ("referrals.iapt", "iapt-by-performer"),
    LF: ("referrals.iapt", "iapt-by-performer"),
    CUSTOM: ("referrals.physiotherapy", "physiotherapy-by-performer"),
}


def test_the_samples_are_the_ones_described() -> None:
    assert sample_names() == sorted(ROUTES)


@pytest.mark.parametrize("name", sample_names())
def test_sample_maps_to_its_golden_service_request(name: str) -> None:
    expected = json.loads(expected_path(name).read_text(encoding="utf-8"))
    assert json.loads(referral(sample(name)).service_request.model_dump_json()) == expected


@pytest.mark.parametrize("name", sample_names())
def test_sample_maps_to_json_fhir_resources_validates(name: str) -> None:
    inbound = referral(sample(name))
    assert inbound.resource is not None
    validated = ServiceRequest.model_validate(inbound.resource)
    assert inbound.service_request == validated  # built without validation, yet the same model
    assert json.loads(validated.model_dump_json()) == json.loads(expected_path(name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sample_names())
def test_the_orjson_bytes_parse_to_the_same_resource(name: str) -> None:
    # the stored row and the event's value are these bytes: a reader must get the mapped resource back
    inbound = referral(sample(name))
    assert ServiceRequest.model_validate_json(orjson.dumps(inbound.resource)) == inbound.service_request


@pytest.mark.parametrize("name", sample_names())
def test_the_mapped_json_is_what_the_model_dumps(name: str) -> None:
    # the intake stores and publishes the mapped JSON instead of dumping the model again
    inbound = referral(sample(name))
    assert inbound.resource == json.loads(inbound.service_request.model_dump_json())


@pytest.mark.parametrize(
    "rf1_9", ["20261120093000.5+0000", "20261120093000.1234-0000", "202611200930+0130", "20261120"]
)
def test_date_times_are_mapped_as_the_model_dumps_them(rf1_9: str) -> None:
    inbound = referral(with_field(sample(MSK), "RF1", 9, rf1_9))
    assert inbound.resource == json.loads(inbound.service_request.model_dump_json())
    assert ServiceRequest.model_validate(inbound.resource) == inbound.service_request


@pytest.mark.parametrize("name", sample_names())
def test_sample_is_valid_and_routes_by_its_ods_codes(name: str) -> None:
    sr = referral(sample(name)).service_request
    ukcore.validate(sr)
    decision = load_router(SCHEMAS_DIR).route(sr)
    assert (decision.topic, decision.rule) == ROUTES[name]
