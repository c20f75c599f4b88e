"""FHIR inbound adapters: parsing JSON and XML, errors naming elements, BaRS Bundles resolved."""

import json

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from adapters.inbound.fhir import messaging, rest
from adapters.inbound.fhir.parse import parse
from gateway.canonical import referral, systems
from gateway.errors import InvalidReferral, MalformedInput, UnsupportedInput
from tests.samples import bars_bundle, entry, service_request

JSON = "application/fhir+json"


def test_json_and_xml_parse_to_the_same_service_request() -> None:
    sr = ServiceRequest.model_validate(service_request())
    from_xml = parse(sr.model_dump_xml(), "application/fhir+xml", ServiceRequest)
    assert from_xml.model_dump() == parse(sr.model_dump_json().encode(), JSON, ServiceRequest).model_dump()


def test_unknown_element_is_reported_with_its_path() -> None:
    with pytest.raises(InvalidReferral) as caught:
        parse(json.dumps(service_request(colour="blue")).encode(), JSON, ServiceRequest)
    assert caught.value.issues[0].expression == "ServiceRequest.colour"


def test_wrong_datatype_is_reported_with_its_path() -> None:
    body = service_request()
    body["identifier"][0]["value"] = 12
    with pytest.raises(InvalidReferral) as caught:
        parse(json.dumps(body).encode(), JSON, ServiceRequest)
    assert caught.value.issues[0].expression == "ServiceRequest.identifier[0].value"


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"no": "resourceType"}'])
def test_malformed_json_is_a_400(body: bytes) -> None:
    with pytest.raises(MalformedInput):
        parse(body, JSON, ServiceRequest)


def test_other_resource_types_are_refused() -> None:
    with pytest.raises(MalformedInput, match="expected a ServiceRequest"):
        parse(b'{"resourceType": "Patient"}', JSON, ServiceRequest)


def test_xml_outside_the_fhir_namespace_is_refused() -> None:
    with pytest.raises(MalformedInput, match="namespace"):
        parse(b"<ServiceRequest/>", "application/fhir+xml", ServiceRequest)


def test_non_fhir_media_type_is_unsupported() -> None:
    with pytest.raises(UnsupportedInput):
        parse(b"hello", "text/plain", ServiceRequest)


def test_rest_adapter_records_a_gp_source_for_a_practice_requester() -> None:
    sr = rest.service_request(json.dumps(service_request()).encode(), JSON)
    assert referral.source_of_referral(sr) == systems.SOURCE_GP[0]


def test_contained_patient_reference_resolves_to_the_nhs_number() -> None:
    body = service_request(
        subject={"reference": "#p1"},
        contained=[
            {
                "resourceType": "Patient",
                "id": "p1",
                "identifier": [{"system": systems.NHS_NUMBER, "value": "9434765919"}],
            }
        ],
    )
    sr = rest.service_request(json.dumps(body).encode(), JSON)
    assert referral.nhs_number(sr) == "9434765919"


def test_bars_bundle_resolves_patient_practitioner_role_and_organization() -> None:
    bundle = bars_bundle()
    inbound = messaging.from_bundle(json.dumps(bundle).encode(), JSON, "req-1", "corr-1")
    sr = inbound.service_request
    assert referral.nhs_number(sr) == entry(bundle, "Patient")["identifier"][0]["value"]
    assert referral.requester_ods(sr) == "A81002"  # through PractitionerRole.organization
    assert referral.performer_ods(sr) == "NQ1IA"
    assert (inbound.sender, inbound.reason, inbound.message_id) == ("A81002", "new", "req-1")


def test_bars_subject_that_does_not_resolve_is_rejected_with_the_reason() -> None:
    bundle = bars_bundle()
    entry(bundle, "ServiceRequest")["subject"] = {"reference": "urn:uuid:missing"}
    with pytest.raises(InvalidReferral, match="cannot be resolved to an NHS number"):
        messaging.from_bundle(json.dumps(bundle).encode(), JSON, "r", "c")


def test_bars_patient_without_nhs_number_is_rejected() -> None:
    bundle = bars_bundle()
    entry(bundle, "Patient")["identifier"] = [{"system": "https://example.org/mrn", "value": "1"}]
    with pytest.raises(InvalidReferral, match="NHS number"):
        messaging.from_bundle(json.dumps(bundle).encode(), JSON, "r", "c")


def test_bars_message_header_must_come_first() -> None:
    bundle = bars_bundle()
    bundle["entry"].reverse()
    with pytest.raises(MalformedInput, match="first entry"):
        messaging.from_bundle(json.dumps(bundle).encode(), JSON, "r", "c")


def test_bars_other_events_are_not_supported() -> None:
    bundle = bars_bundle()
    bundle["entry"][0]["resource"]["eventCoding"]["code"] = "booking-request"
    with pytest.raises(UnsupportedInput):
        messaging.from_bundle(json.dumps(bundle).encode(), JSON, "r", "c")


def test_bars_delete_marks_the_referral_entered_in_error() -> None:
    inbound = messaging.from_bundle(json.dumps(bars_bundle("delete")).encode(), JSON, "r", "c")
    assert (inbound.reason, inbound.service_request.status) == ("delete", "entered-in-error")


def test_bars_bundle_must_be_a_message() -> None:
    bundle = bars_bundle()
    bundle["type"] = "collection"
    with pytest.raises(MalformedInput, match="type 'message'"):
        messaging.from_bundle(json.dumps(bundle).encode(), JSON, "r", "c")
