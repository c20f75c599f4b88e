"""Real senders' shapes end to end, over real HTTP, the store on disk and the embedded broker: a GP's
Practitioner to a service named by DoS id, the NHSD-Target-Identifier route, warnings answered with
the referral, a patient without an NHS number published and then traced in place."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx

from adapters.inbound.fhir import targets
from gateway.auth.principal import SCOPES
from gateway.canonical import patient, systems
from tests.conftest import RunningGateway, add_client, token_for
from tests.kafka_reader import Event, read_events
from tests.samples import SAMPLES, bars_bundle, entry, practitioner_bundle, service_request, valid_nhs_number

FHIR_JSON = {"content-type": "application/fhir+json"}
IAPT = "referrals.iapt"
DOS = systems.DOS_SERVICE_ID


async def send(client: httpx.AsyncClient, bundle: dict[str, Any], **headers: str) -> httpx.Response:
    sent = {**FHIR_JSON, "x-request-id": str(uuid.uuid4()), **headers}
    return await client.post("/fhir/$process-message", content=json.dumps(bundle), headers=sent)


def referral_in(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    resource: dict[str, Any] = response.json()["entry"][1]["resource"]
    return resource


async def events_for(gateway: RunningGateway, referral_id: str, count: int = 1) -> list[Event]:
    def ours(event: Event) -> bool:
        return event.headers.get("ce_subject") == f"ServiceRequest/{referral_id}"

    return await asyncio.to_thread(read_events, gateway.settings.kafka.servers, IAPT, count, 10, ours)


async def history(gateway: RunningGateway, referral_id: str) -> dict[str, dict[str, Any]]:
    return {h.step: h.detail for h in await gateway.runtime.store.history(referral_id)}


async def test_a_gp_practitioner_to_a_dos_service_is_routed_by_the_dos_id(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        response = await send(client, practitioner_bundle())
    sr = referral_in(response)
    assert sr["requester"]["identifier"]["value"] == "A81002"
    assert [p.get("type") for p in sr["performer"]] == [None, "HealthcareService"]
    (event,) = await events_for(running_gateway, sr["id"])
    assert event.headers["routing_rule"] == "iapt-chronic-pain-by-dos"
    assert event.headers["routing_service"] == "iapt-hwb-chronic-pain"
    assert "dos 2000070002" in event.headers["routing_reason"]
    contained = {c["id"]: c for c in event.value["contained"]}  # the event stands on its own
    assert contained["requester-practitioner"]["identifier"][0]["system"] == systems.SDS_USER_ID
    assert contained["performer-service"]["identifier"][0] == {"system": DOS, "value": "2000070002"}
    steps = await history(running_gateway, sr["id"])
    assert steps["received"]["resolved"]["requester"].startswith("A81002: a PractitionerRole in the Bundle")
    assert steps["routed"]["rule"] == "iapt-chronic-pain-by-dos"


async def test_the_readme_sample_with_its_target_header_is_taken(running_gateway: RunningGateway) -> None:
    """As the README's curl sends it: the sample as it is, the header naming the sample's service."""
    body = (SAMPLES / "fhir" / "bars-message-practitioner-to-dos-service.json").read_bytes()
    headers = {**FHIR_JSON, "x-request-id": str(uuid.uuid4()), targets.HEADER: targets.encode(DOS, "2000070002")}
    async with running_gateway.client() as client:
        response = await client.post("/fhir/$process-message", content=body, headers=headers)
    sr = referral_in(response)
    assert response.json()["entry"][0]["resource"]["response"]["code"] == "ok"
    events = await events_for(running_gateway, sr["id"])  # the session's broker: earlier runs' too
    assert events and all(e.headers["routing_rule"] == "iapt-chronic-pain-by-dos" for e in events)


async def test_the_target_identifier_header_routes_to_the_service_it_names(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        response = await send(client, bars_bundle(), **{targets.HEADER: targets.encode(DOS, "2000070002")})
    sr = referral_in(response)
    (event,) = await events_for(running_gateway, sr["id"])
    assert (event.headers["routing_rule"], event.headers["routing_service"]) == (
        "iapt-chronic-pain-by-dos",
        "iapt-hwb-chronic-pain",
    )
    steps = await history(running_gateway, sr["id"])
    assert steps["received"]["resolved"]["performer-service"].startswith("dos-service-id 2000070002: NHSD-Target")


async def test_an_unknown_target_is_refused_with_the_reason_and_nothing_is_published(
    running_gateway: RunningGateway,
) -> None:
    bundle = bars_bundle()
    async with running_gateway.client() as client:
        response = await send(client, bundle, **{targets.HEADER: targets.encode(DOS, "123456789")})
        found = await client.get(
            "/fhir/ServiceRequest", params={"identifier": entry(bundle, "ServiceRequest")["identifier"][0]["value"]}
        )
    assert response.status_code == 422
    (issue,) = response.json()["issue"]
    assert "does not list" in issue["diagnostics"] and "123456789" in issue["diagnostics"]
    assert found.json()["total"] == 0


async def test_a_system_variant_is_answered_as_a_warning_with_the_referral(running_gateway: RunningGateway) -> None:
    bundle = practitioner_bundle()
    entry(bundle, "Organization")["identifier"][0]["system"] = "https://fhir.nhs.uk/id/ods-organization-code"
    async with running_gateway.client() as client:
        response = await send(client, bundle)
    sr = referral_in(response)
    header, *_, last = [e["resource"] for e in response.json()["entry"]]
    assert last["resourceType"] == "OperationOutcome"
    assert header["response"]["details"]["reference"] == response.json()["entry"][-1]["fullUrl"]
    (warning,) = [i for i in last["issue"] if i["severity"] == "warning"]
    assert warning["expression"] == ["Bundle.entry[5].resource.identifier[0].system"]
    steps = await history(running_gateway, sr["id"])
    assert steps["received"]["warnings"][0]["expression"] == "Bundle.entry[5].resource.identifier[0].system"


async def test_a_rest_create_answers_warnings_in_an_operation_outcome_when_asked(
    running_gateway: RunningGateway,
) -> None:
    body = service_request()
    body["subject"]["identifier"]["system"] = "http://fhir.nhs.uk/Id/nhs-number"
    async with running_gateway.client() as client:
        response = await client.post("/fhir/ServiceRequest", json=body, headers={"prefer": "return=OperationOutcome"})
    assert response.status_code == 201, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    severities = [i["severity"] for i in response.json()["issue"]]
    assert severities == ["information", "warning"]
    assert response.headers["etag"] == 'W/"1"'


async def test_many_problems_come_back_in_one_operation_outcome(running_gateway: RunningGateway) -> None:
    bundle = practitioner_bundle()
    del bundle["entry"][0]["resource"]["reason"]
    sr = entry(bundle, "ServiceRequest")
    sr["status"], sr["intent"] = "finished", "wish"
    entry(bundle, "Patient")["identifier"][0]["value"] = "9434765918"
    async with running_gateway.client() as client:
        response = await send(client, bundle)
    assert response.status_code == 422
    assert [i["expression"][0] for i in response.json()["issue"]] == [
        "MessageHeader.reason",
        "ServiceRequest.status",
        "ServiceRequest.intent",
        "ServiceRequest.subject.identifier.value",
    ]


async def test_a_sender_other_than_the_tokens_organisation_is_refused(running_gateway: RunningGateway) -> None:
    secret = await add_client(running_gateway, "gp-a81002", "A81002", " ".join(SCOPES))
    token = await token_for(running_gateway, "gp-a81002", secret)
    bundle = practitioner_bundle()
    bundle["entry"][0]["resource"]["sender"] = {"identifier": {"system": systems.ODS_CODE, "value": "A81001"}}
    remove_role = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "PractitionerRole"]
    bundle["entry"] = remove_role
    async with httpx.AsyncClient(base_url=running_gateway.base_url, timeout=30) as client:
        response = await send(client, bundle, authorization=f"Bearer {token}")
    assert response.status_code == 403
    (issue,) = response.json()["issue"]
    assert issue["expression"] == ["MessageHeader.sender"]
    assert "A81001" in issue["diagnostics"] and "A81002" in issue["diagnostics"]


async def test_a_patient_without_an_nhs_number_is_published_and_then_traced_in_place(
    running_gateway: RunningGateway,
) -> None:
    ubrn = uuid.uuid4().hex[:12]
    first = practitioner_bundle("new", ubrn)
    entry(first, "Patient")["identifier"] = [{"system": "https://example.org/111-case", "value": ubrn}]
    traced = practitioner_bundle("update", ubrn)
    nhs = valid_nhs_number()
    entry(traced, "Patient")["identifier"][0]["value"] = nhs
    async with running_gateway.client() as client:
        sr = referral_in(await send(client, first))
        key = patient.untraced_key(sr["id"])
        to_trace = await client.get("/fhir/ServiceRequest", params={"_tag": "nhs-number-to-be-traced"})
        updated = referral_in(await send(client, traced))
        by_nhs = await client.get("/fhir/ServiceRequest", params={"patient": nhs})
        task_by_nhs = await client.get("/fhir/Task", params={"patient": nhs})
        still_to_trace = await client.get("/fhir/ServiceRequest", params={"_tag": "nhs-number-to-be-traced"})
    assert sr["meta"]["tag"][0]["code"] == "nhs-number-to-be-traced"
    assert sr["id"] in [e["resource"]["id"] for e in to_trace.json()["entry"]]
    created, update = await events_for(running_gateway, sr["id"], 2)
    assert created.key == update.key == key  # one key for the referral's life: its versions stay in order
    assert created.value["subject"] == {"reference": "#patient", "type": "Patient"}
    assert update.value["subject"]["identifier"] == {"system": systems.NHS_NUMBER, "value": nhs}
    assert "tag" not in updated["meta"] and updated["meta"]["versionId"] == "2"
    assert [e["resource"]["id"] for e in by_nhs.json()["entry"]] == [sr["id"]]
    assert [e["resource"]["focus"]["reference"] for e in task_by_nhs.json()["entry"]] == [f"ServiceRequest/{sr['id']}"]
    assert sr["id"] not in [e["resource"]["id"] for e in still_to_trace.json().get("entry", [])]
    assert (await history(running_gateway, sr["id"]))["nhs-number-traced"] == {"patient_key": key}


async def test_a_rest_referral_without_an_nhs_number_is_traced_by_a_put(running_gateway: RunningGateway) -> None:
    person = {
        "resourceType": "Patient",
        "id": "caller",
        "name": [{"family": "Example", "given": ["Kim"]}],
        "birthDate": "1990-05-01",
        "address": [{"postalCode": "LS1 4AP"}],
    }
    body = service_request(subject={"reference": "#caller"}, contained=[person])
    nhs = valid_nhs_number()
    async with running_gateway.client() as client:
        created = await client.post("/fhir/ServiceRequest", json=body)
        assert created.status_code == 201, created.text
        referral_id = created.json()["id"]
        traced = {**body, "id": referral_id, "subject": {"identifier": {"system": systems.NHS_NUMBER, "value": nhs}}}
        del traced["contained"]
        updated = await client.put(f"/fhir/ServiceRequest/{referral_id}", json=traced, headers={"if-match": 'W/"1"'})
        found = await client.get("/fhir/ServiceRequest", params={"patient": nhs})
    assert created.json()["subject"] == {"reference": "#patient", "type": "Patient"}
    assert updated.status_code == 200, updated.text
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [referral_id]
    stored = await running_gateway.runtime.store.get(referral_id)
    assert stored is not None and stored.nhs_number == nhs
