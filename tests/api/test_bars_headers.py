"""The BaRS request-header rules of `$process-message` over real HTTP: GUID transaction ids, retries
told from reused ids (on a REST create too), 405 with Allow, and the NHSD-* access headers checked
against the token."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx

from gateway.canonical import systems
from tests.api.test_process_message import guid, send
from tests.conftest import RunningGateway, add_client, token_for
from tests.samples import bars_bundle, service_request

REQUESTER = "A81002"  # the requester of the BaRS sample


def outcome_codes(response: httpx.Response) -> list[tuple[str, str, list[str] | None]]:
    """(issue code, BaRS code, expression) of each issue."""
    return [(i["code"], i["details"]["coding"][0]["code"], i.get("expression")) for i in response.json()["issue"]]


def encoded(resource: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(resource).encode()).decode()


def organisation(ods: str) -> dict[str, Any]:
    return {"resourceType": "Organization", "identifier": [{"system": systems.ODS_CODE, "value": ods}]}


def practitioner_role(ods: str) -> dict[str, Any]:
    return {
        "resourceType": "PractitionerRole",
        "practitioner": {"identifier": {"system": systems.SDS_USER_ID, "value": "555021935107"}},
        "organization": {"identifier": {"system": systems.ODS_CODE, "value": ods}},
    }


async def partner(gateway: RunningGateway, ods: str) -> httpx.AsyncClient:
    client_id = f"gp-{uuid.uuid4().hex[:6]}"
    secret = await add_client(gateway, client_id, ods, "system/ServiceRequest.write system/*.read")
    token = await token_for(gateway, client_id, secret)
    return httpx.AsyncClient(base_url=gateway.base_url, timeout=30, headers={"Authorization": f"Bearer {token}"})


async def test_transaction_ids_that_are_not_guids_are_a_400_rec_bad_request_naming_each(
    running_gateway: RunningGateway,
) -> None:
    async with running_gateway.client() as client:
        response = await send(client, bars_bundle(), "req-1", "conversation-7")
    assert response.status_code == 400
    assert outcome_codes(response) == [
        ("value", "REC_BAD_REQUEST", ["X-Request-Id"]),
        ("value", "REC_BAD_REQUEST", ["X-Correlation-Id"]),
    ]


async def test_a_missing_request_id_is_a_400_saying_it_is_required(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        response = await send(client, bars_bundle(), request_id=False)  # type: ignore[arg-type]
    assert response.status_code == 400
    assert outcome_codes(response) == [("required", "REC_BAD_REQUEST", ["X-Request-Id"])]


async def test_a_retry_with_both_ids_and_the_same_body_is_answered_as_the_first_time(
    running_gateway: RunningGateway,
) -> None:
    bundle, request_id, correlation_id = bars_bundle(), guid(), guid()
    async with running_gateway.client() as client:
        first = await send(client, bundle, request_id, correlation_id)
        retry = await send(client, bundle, request_id, correlation_id)
        found = await client.get(
            "/fhir/ServiceRequest", params={"identifier": bundle["entry"][1]["resource"]["identifier"][0]["value"]}
        )
    assert (first.status_code, retry.status_code) == (200, 200)
    referral = first.json()["entry"][1]["resource"]
    assert retry.json()["entry"][1]["resource"] == referral
    assert retry.json()["entry"][0]["resource"]["response"] == {"identifier": request_id, "code": "ok"}
    assert found.json()["total"] == 1
    steps = [h.step for h in await running_gateway.runtime.store.history(referral["id"])]
    assert steps.count("received") == 1, "no second referral, no second intake"


async def test_a_reused_request_id_with_another_correlation_id_is_a_409_rec_conflict(
    running_gateway: RunningGateway,
) -> None:
    bundle, request_id = bars_bundle(), guid()
    async with running_gateway.client() as client:
        first = await send(client, bundle, request_id, guid())
        other = await send(client, bundle, request_id, guid())
    assert first.status_code == 200
    assert other.status_code == 409
    assert outcome_codes(other) == [("duplicate", "REC_CONFLICT", ["X-Request-Id"])]


async def test_a_wrong_method_on_process_message_is_405_allowing_post(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        answers = [await client.request(m, "/fhir/$process-message") for m in ("GET", "PUT", "DELETE")]
    for answer in answers:
        assert (answer.status_code, answer.headers["allow"]) == (405, "POST")
        assert outcome_codes(answer) == [("not-supported", "SEND_METHOD_NOT_ALLOWED", None)]


async def test_nhsd_headers_naming_the_tokens_organisation_are_taken(running_gateway: RunningGateway) -> None:
    claims = {
        "NHSD-End-User-Organisation": encoded(organisation(REQUESTER)),
        "NHSD-Requesting-Practitioner": encoded(practitioner_role(REQUESTER)),
    }
    async with await partner(running_gateway, REQUESTER) as gp:
        response = await send(gp, bars_bundle(), **claims)
    assert response.status_code == 200, response.text
    referral = response.json()["entry"][1]["resource"]
    history = await running_gateway.runtime.store.history(referral["id"])
    (received,) = [h.detail for h in history if h.step == "received"]
    assert received["claims"] == {
        "NHSD-End-User-Organisation": REQUESTER,
        "NHSD-Requesting-Practitioner": f"555021935107 at {REQUESTER}",
    }, "what the sender claimed is kept with the referral"


async def test_nhsd_headers_naming_another_organisation_are_refused_with_each_claim(
    running_gateway: RunningGateway,
) -> None:
    claims = {
        "NHSD-End-User-Organisation": encoded(organisation("Y01234")),
        "NHSD-Requesting-Practitioner": encoded(practitioner_role("Y05678")),
    }
    async with await partner(running_gateway, REQUESTER) as gp:
        response = await send(gp, bars_bundle(), **claims)
    assert response.status_code == 403
    assert outcome_codes(response) == [
        ("forbidden", "REC_FORBIDDEN", ["NHSD-End-User-Organisation"]),
        ("forbidden", "REC_FORBIDDEN", ["NHSD-Requesting-Practitioner"]),
    ]
    assert "Y01234" in response.json()["issue"][0]["diagnostics"]


async def test_an_nhsd_header_that_is_not_base64_json_of_its_resource_is_a_400(running_gateway: RunningGateway) -> None:
    claims = {
        "NHSD-End-User-Organisation": "not base64 at all!",
        "NHSD-Requesting-Practitioner": encoded(organisation(REQUESTER)),  # an Organization where a role belongs
    }
    async with await partner(running_gateway, REQUESTER) as gp:
        response = await send(gp, bars_bundle(), **claims)
    assert response.status_code == 400
    assert [(c, e) for c, _, e in outcome_codes(response)] == [
        ("structure", ["NHSD-End-User-Organisation"]),
        ("structure", ["NHSD-Requesting-Practitioner"]),
    ]


async def test_a_rest_create_retried_under_its_request_id_is_answered_again_and_a_reused_id_is_a_409(
    running_gateway: RunningGateway,
) -> None:
    """The same rule on `POST /fhir/ServiceRequest`: a sender reusing an id for another referral must
    not be told the earlier referral was its new one."""
    first_body, other_body = service_request(), service_request()
    headers = {"X-Request-Id": "gp-batch-17", "Content-Type": "application/fhir+json"}
    async with running_gateway.client() as client:
        first = await client.post("/fhir/ServiceRequest", json=first_body, headers=headers)
        retry = await client.post("/fhir/ServiceRequest", json=first_body, headers=headers)
        reused = await client.post("/fhir/ServiceRequest", json=other_body, headers=headers)
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json()["id"] == first.json()["id"]
    assert reused.status_code == 409
    assert outcome_codes(reused) == [("duplicate", "REC_CONFLICT", ["X-Request-Id"])]
