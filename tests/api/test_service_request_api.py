"""The FHIR ServiceRequest API over real HTTP, with the event read back from the real broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from fhir.resources.R4B.servicerequest import ServiceRequest

from tests.conftest import RunningGateway
from tests.kafka_reader import Event, read_events
from tests.samples import service_request

FHIR_JSON = {"content-type": "application/fhir+json"}
ENVELOPE = json.loads((Path(__file__).parents[2] / "schemas" / "event-envelope.schema.json").read_text())


async def post(client: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await client.post("/fhir/ServiceRequest", content=json.dumps(body), headers={**FHIR_JSON, **headers})


async def events_for(
    gateway: RunningGateway, topic: str, referral_id: str, count: int = 1, timeout: float = 10
) -> list[Event]:
    def ours(event: Event) -> bool:
        return event.headers.get("ce_subject") == f"ServiceRequest/{referral_id}"

    return await asyncio.to_thread(read_events, gateway.settings.kafka.servers, topic, count, timeout, ours)


async def test_create_returns_201_and_publishes_the_event(running_gateway: RunningGateway) -> None:
    body = service_request()
    async with running_gateway.client() as client:
        response = await post(client, body, **{"x-correlation-id": "corr-42", "x-request-id": "req-42"})
    assert response.status_code == 201
    created = response.json()
    assert response.headers["location"].endswith(f"/fhir/ServiceRequest/{created['id']}/_history/1")
    assert response.headers["etag"] == 'W/"1"'
    assert (response.headers["x-correlation-id"], response.headers["x-request-id"]) == ("corr-42", "req-42")
    (event,) = await events_for(running_gateway, "referrals.msk-pain", created["id"])
    assert event.key == body["subject"]["identifier"]["value"]
    assert event.headers["ce_type"] == "uk.nhs.referral.servicerequest.created"
    assert event.headers["correlation_id"] == "corr-42"
    assert event.headers["routing_rule"]
    assert event.value == created
    jsonschema.validate({"key": event.key, "headers": event.headers, "value": event.value}, ENVELOPE)


async def test_the_same_referral_twice_is_accepted_once(running_gateway: RunningGateway) -> None:
    body = service_request()
    async with running_gateway.client() as client:
        first = await post(client, body)
        second = await post(client, body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == first.json()
    events = await events_for(running_gateway, "referrals.msk-pain", first.json()["id"], count=2, timeout=3)
    assert len(events) == 1


async def test_xml_in_and_xml_out(running_gateway: RunningGateway) -> None:
    xml = ServiceRequest.model_validate(service_request()).model_dump_xml()
    async with running_gateway.client() as client:
        response = await client.post(
            "/fhir/ServiceRequest",
            content=xml,
            headers={"content-type": "application/fhir+xml", "accept": "application/fhir+xml"},
        )
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/fhir+xml")
    parsed = ServiceRequest.model_validate_xml(response.content)
    assert parsed.meta.versionId == "1"


async def test_read_and_search(running_gateway: RunningGateway) -> None:
    body = service_request()
    nhs = body["subject"]["identifier"]["value"]
    async with running_gateway.client() as client:
        created = (await post(client, body)).json()
        read = await client.get(f"/fhir/ServiceRequest/{created['id']}")
        searches = {
            name: (await client.get("/fhir/ServiceRequest", params={name: value})).json()
            for name, value in {
                "identifier": f"https://fhir.nhs.uk/Id/UBRN|{body['identifier'][0]['value']}",
                "patient": nhs,
                "requester": "A81001",
                "performer": "RX1PN",
                "status": "active",
            }.items()
        }
    assert read.status_code == 200 and read.json() == created and read.headers["etag"] == 'W/"1"'
    for name, bundle in searches.items():
        assert bundle["type"] == "searchset", name
        assert created["id"] in {e["resource"]["id"] for e in bundle.get("entry", [])}, name
    assert searches["identifier"]["total"] == 1


async def test_unknown_search_parameter_is_a_400(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        response = await client.get("/fhir/ServiceRequest", params={"colour": "blue"})
    assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome"


async def test_each_error_class_is_an_operation_outcome_with_its_status(running_gateway: RunningGateway) -> None:
    bad_nhs = service_request(
        subject={"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765918"}}
    )
    async with running_gateway.client() as client:
        cases = {
            400: await client.post("/fhir/ServiceRequest", content=b"{oops", headers=FHIR_JSON),
            415: await client.post("/fhir/ServiceRequest", content=b"x", headers={"content-type": "text/plain"}),
            422: await post(client, bad_nhs),
            404: await client.get(f"/fhir/ServiceRequest/{uuid.uuid4()}"),
        }
    for status, response in cases.items():
        assert response.status_code == status
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome", status
        assert "Traceback" not in response.text
    assert cases[422].json()["issue"][0]["expression"] == ["ServiceRequest.subject.identifier.value"]


async def test_unroutable_referral_is_rejected_with_the_reason(running_gateway: RunningGateway) -> None:
    body = service_request(
        performer=[{"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "X99999"}}],
        code=None,
    )
    async with running_gateway.client() as client:
        response = await post(client, body)
    assert response.status_code == 422
    issue = response.json()["issue"][0]
    assert issue["code"] == "business-rule" and issue["diagnostics"]


async def test_update_needs_the_current_version(running_gateway: RunningGateway) -> None:
    body = service_request()
    async with running_gateway.client() as client:
        created = (await post(client, body)).json()
        url = f"/fhir/ServiceRequest/{created['id']}"
        changed = {**body, "id": created["id"], "priority": "urgent"}
        stale = await client.put(url, content=json.dumps(changed), headers={**FHIR_JSON, "if-match": 'W/"7"'})
        fresh = await client.put(url, content=json.dumps(changed), headers={**FHIR_JSON, "if-match": 'W/"1"'})
    assert stale.status_code == 412
    assert fresh.status_code == 200 and fresh.json()["priority"] == "urgent" and fresh.headers["etag"] == 'W/"2"'
    events = await events_for(running_gateway, "referrals.msk-pain", created["id"], count=2)
    assert [e.headers["ce_type"] for e in events][-1] == "uk.nhs.referral.servicerequest.updated"


async def test_a_cancelled_referral_cannot_be_cancelled_again(running_gateway: RunningGateway) -> None:
    body = service_request()
    async with running_gateway.client() as client:
        created = (await post(client, body)).json()
        url = f"/fhir/ServiceRequest/{created['id']}"
        revoked = {**body, "status": "revoked"}
        first = await client.put(url, content=json.dumps(revoked), headers=FHIR_JSON)
        again = await client.put(url, content=json.dumps(revoked), headers=FHIR_JSON)
    assert first.status_code == 200 and first.json()["status"] == "revoked"
    assert again.status_code == 409 and again.json()["issue"][0]["code"] == "conflict"


async def test_capability_statement(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        response = await client.get("/fhir/metadata")
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement" and statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    resources = {r["type"]: r for r in rest["resource"]}
    assert set(resources) == {
        "ServiceRequest",
        "Task",
        "AuditEvent",
        "QuestionnaireResponse",
        "Questionnaire",
        "MessageDefinition",
    }
    referrals = resources["ServiceRequest"]
    searches = {p["name"] for p in referrals["searchParam"]}
    assert searches >= {"identifier", "patient", "requester", "performer", "status", "_tag"}
    assert {i["code"] for i in resources["Task"]["interaction"]} >= {"read", "update", "patch", "search-type"}
    assert rest["security"]["service"][0]["coding"][0]["code"] == "OAuth"
    token_uri = rest["security"]["extension"][0]["extension"][0]["valueUri"]
    assert token_uri.endswith("/oauth2/token")
