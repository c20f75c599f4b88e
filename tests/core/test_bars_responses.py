"""BaRS `servicerequest-response` messages read as the Task outcome they report and the referral they
name (pure: no store, no HTTP), and the claims of the NHSD-* access headers."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from adapters.inbound.fhir import claims, messaging, response
from adapters.outbound import fhir_http
from adapters.outbound.receipt import Outgoing
from gateway.canonical import systems
from gateway.canonical.task import initial_task
from gateway.errors import InvalidHeader, InvalidReferral
from tests.samples import entry, load, service_request

JSON = "application/fhir+json"


def read(bundle: dict[str, Any]) -> response.InboundResponse:
    return response.from_message(messaging.read(json.dumps(bundle).encode(), JSON), "req-1")


def rejected() -> dict[str, Any]:
    return load("fhir/bars-response-iapt-rejected.json")


def test_a_bars_rejection_names_the_referral_by_its_ubrn_and_rejects_with_the_reason() -> None:
    answer = read(rejected())
    assert answer.identifiers == (("https://fhir.nhs.uk/Id/UBRN", "000000000002"),)
    assert answer.outcome.status == "rejected" and answer.outcome.reason is not None
    assert answer.outcome.reason.text == "Needs a spinal surgical opinion before talking therapy"
    assert answer.sender == "NQ1IA"


def test_the_gateways_own_id_and_based_on_name_the_referral_too() -> None:
    bundle = rejected()
    sr = entry(bundle, "ServiceRequest")
    sr["identifier"].append({"system": systems.REFERRAL_ID, "value": "ref-1"})
    sr["basedOn"] = [{"reference": "https://gw.example/fhir/ServiceRequest/ref-2/_history/3"}]
    assert read(bundle).referral_ids == ("ref-2", "ref-1")


def test_a_task_in_the_response_is_taken_as_it_is() -> None:
    bundle = rejected()
    task = {
        "resourceType": "Task",
        "id": "t1",
        "status": "in-progress",
        "intent": "order",
        "businessStatus": {"text": "Booked onto the course on 2026-12-07"},
        "basedOn": [{"reference": "ServiceRequest/ref-9"}],
    }
    bundle["entry"].append({"fullUrl": "urn:uuid:0b8f3f53-5d1c-4a8e-9a0e-4f4d6f2b1c01", "resource": task})
    outcome = read(bundle).outcome
    assert (outcome.status, outcome.business_status and outcome.business_status.text) == (
        "in-progress",
        "Booked onto the course on 2026-12-07",
    )


@pytest.mark.parametrize(
    ("status", "task"), [("completed", "completed"), ("active", "accepted"), ("revoked", "cancelled")]
)
def test_without_other_signs_the_service_requests_status_says_the_outcome(status: str, task: str) -> None:
    bundle = rejected()
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Encounter"]
    entry(bundle, "ServiceRequest").pop("encounter")
    entry(bundle, "ServiceRequest")["status"] = status
    assert read(bundle).outcome.status == task


def test_a_response_saying_nothing_a_task_can_show_is_refused_at_the_status() -> None:
    bundle = rejected()
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Encounter"]
    entry(bundle, "ServiceRequest").pop("encounter")
    entry(bundle, "ServiceRequest")["status"] = "draft"
    with pytest.raises(InvalidReferral) as caught:
        read(bundle)
    assert caught.value.issues[0].expression == "ServiceRequest.status"


def test_a_response_naming_no_referral_is_refused() -> None:
    bundle = rejected()
    entry(bundle, "ServiceRequest").pop("identifier")
    with pytest.raises(InvalidReferral, match="names no referral"):
        read(bundle)


def encoded(resource: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(resource).encode()).decode().rstrip("=")


def test_the_access_headers_read_as_the_organisations_they_claim() -> None:
    role = {
        "resourceType": "PractitionerRole",
        "practitioner": {"identifier": {"system": systems.SDS_USER_ID, "value": "555021935107"}},
        "organization": {"identifier": {"system": systems.ODS_CODE, "value": "A81002"}},
    }
    organisation = {"resourceType": "Organization", "identifier": [{"system": systems.ODS_CODE, "value": "A81002"}]}
    read_claims = claims.read(
        {claims.END_USER_ORGANISATION: encoded(organisation), claims.REQUESTING_PRACTITIONER: encoded(role)}
    )
    assert read_claims.organisations == {
        claims.END_USER_ORGANISATION: "A81002",
        claims.REQUESTING_PRACTITIONER: "A81002",
    }
    assert read_claims.practitioner == "555021935107"


def test_an_organisation_without_an_ods_code_is_refused_at_the_header() -> None:
    with pytest.raises(InvalidHeader) as caught:
        claims.read({claims.END_USER_ORGANISATION: encoded({"resourceType": "Organization", "name": "Somewhere"})})
    assert [i.expression for i in caught.value.issues] == ["NHSD-End-User-Organisation.identifier"]


def test_the_gateways_own_response_message_reads_back_as_the_same_task_change() -> None:
    """Hub to hub: what this gateway sends a BaRS referrer is what it takes from another gateway."""
    sr = {**service_request(), "id": "ref-7"}
    task = {**initial_task(sr, "rejected"), "statusReason": {"text": "Not suitable: see the letter"}}
    outgoing = Outgoing(json.dumps(task), str(uuid.uuid4()), "update", "corr-1", "2026-11-23T10:00:00+00:00")
    answer = read(fhir_http.task_message(outgoing, "https://gp.example/fhir"))
    assert "ref-7" in answer.referral_ids and answer.identifiers[0] == tuple(sr["identifier"][0].values())
    assert answer.outcome.status == "rejected"
    assert answer.outcome.reason is not None and answer.outcome.reason.text == "Not suitable: see the letter"
