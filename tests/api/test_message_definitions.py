"""`GET /fhir/MessageDefinition` over real HTTP: what the gateway takes, searched by use case, with the
resources each message must carry; the CapabilityStatement lists the same; a message missing what its
definition requires is refused, naming each."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.conftest import RunningGateway
from tests.samples import bars_bundle

REFERRAL = "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-referral"
RESPONSE = "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-response-referral"


def urls(response: httpx.Response) -> list[str]:
    return [e["resource"]["url"] for e in response.json().get("entry", [])]


async def test_message_definitions_are_searched_by_use_case_and_event(running_gateway: RunningGateway) -> None:
    async with running_gateway.anonymous_client() as client:
        everything = await client.get("/fhir/MessageDefinition")
        iapt = await client.get("/fhir/MessageDefinition", params={"context": "iapt"})
        responses = await client.get(
            "/fhir/MessageDefinition",
            params={
                "context": "https://referral-gateway.nhs.example/CodeSystem/use-case|msk-pain",
                "event": "servicerequest-response",
            },
        )
    assert everything.status_code == 200 and everything.json()["total"] == 3
    assert REFERRAL in urls(iapt) and RESPONSE in urls(iapt)
    assert urls(responses) == [RESPONSE]


async def test_a_message_definition_names_the_resources_its_message_must_carry(running_gateway: RunningGateway) -> None:
    async with running_gateway.anonymous_client() as client:
        read = await client.get("/fhir/MessageDefinition/bars-message-servicerequest-request-referral")
    assert read.status_code == 200
    required = {f["code"]: (f["min"], f["max"]) for f in read.json()["focus"]}
    assert required["MessageHeader"] == (1, "1") and required["ServiceRequest"] == (1, "1")
    assert read.json()["eventCoding"]["code"] == "servicerequest-request"


async def test_a_use_case_with_no_message_is_a_404_and_a_bad_search_a_400(running_gateway: RunningGateway) -> None:
    async with running_gateway.anonymous_client() as client:
        answer = await client.get("/fhir/MessageDefinition", params={"context": "dentistry"})
        typo = await client.get("/fhir/MessageDefinition", params={"contxt": "iapt"})
        not_a_guid = await client.get("/fhir/MessageDefinition", headers={"x-request-id": "req-1"})
    assert answer.status_code == 404
    assert not_a_guid.status_code == 400
    assert not_a_guid.json()["issue"][0]["details"]["coding"][0]["code"] == "REC_BAD_REQUEST"
    issue = answer.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "REC_NOT_FOUND" and "iapt" in issue["diagnostics"]
    assert typo.status_code == 400


async def test_the_capability_statement_lists_every_message_definition(running_gateway: RunningGateway) -> None:
    async with running_gateway.anonymous_client() as client:
        statement = (await client.get("/fhir/metadata")).json()
        listed = (await client.get("/fhir/MessageDefinition")).json()
    supported = [m["definition"] for m in statement["messaging"][0]["supportedMessage"]]
    assert supported == [e["resource"]["url"] for e in listed["entry"]]
    assert "MessageDefinition" in {r["type"] for r in statement["rest"][0]["resource"]}


async def test_a_message_carrying_more_than_its_definition_allows_is_refused_naming_the_count(
    running_gateway: RunningGateway,
) -> None:
    bundle = bars_bundle()
    second = json.loads(json.dumps(bundle["entry"][1]))
    second["fullUrl"] = f"urn:uuid:{uuid.uuid4()}"
    second["resource"]["id"] = second["fullUrl"].removeprefix("urn:uuid:")
    bundle["entry"].append(second)
    headers = {"content-type": "application/fhir+json", "x-request-id": str(uuid.uuid4())}
    async with running_gateway.client() as client:
        answer = await client.post("/fhir/$process-message", content=json.dumps(bundle), headers=headers)
    assert answer.status_code == 422
    issues = answer.json()["issue"]
    assert [(i["expression"], i["details"]["coding"][0]["code"]) for i in issues] == [
        (["Bundle.entry"], "REC_UNPROCESSABLE_ENTITY")
    ]
    assert "1..1 ServiceRequest; this one has 2" in issues[0]["diagnostics"]
