"""BaRS responses through a running gateway acting as the hub: a referral is sent by BaRS messaging
(or HL7 v2), delivered to its receiver (a demo receiver on loopback), and the receiver answers with a
`servicerequest-response` message posted to the gateway's `$process-message`, roles reversed. The
answer moves the referral's Task and reaches the referrer in the referrer's own format.

Real HTTP, MLLP and broker; the store is SQLite.
"""

# The closed loop's fixtures are imported by name, and pytest passes them in under those names.
# ruff: noqa: F811

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from gateway.canonical import systems
from gateway.demo_receiver import DemoReceiver
from tests.conftest import RunningGateway, add_client, token_for
from tests.delivery.receivers import eventually
from tests.delivery.test_closed_loop import (  # noqa: F401  (fixtures: a gateway whose directory is the demo receiver)
    gateway,
    gateway_settings,
    receiver,
    referral_from,
    store_settings,
)
from tests.samples import bars_bundle, entry, load

FHIR_JSON = {"content-type": "application/fhir+json"}
PERFORMER = "NQ1IA"  # the IAPT service of the BaRS sample, a fhir-messaging receiver in the test directory


def headers() -> dict[str, str]:
    return {**FHIR_JSON, "x-request-id": str(uuid.uuid4()), "x-correlation-id": str(uuid.uuid4())}


async def performer_client(gateway: RunningGateway, ods: str = PERFORMER) -> httpx.AsyncClient:
    """The receiving service's own system: a partner client acting for that organisation only."""
    client_id = f"receiver-{uuid.uuid4().hex[:6]}"
    secret = await add_client(gateway, client_id, ods, "system/ServiceRequest.write system/*.read")
    token = await token_for(gateway, client_id, secret)
    return httpx.AsyncClient(base_url=gateway.base_url, timeout=30, headers={"Authorization": f"Bearer {token}"})


async def refer_by_bars(gateway: RunningGateway, receiver: DemoReceiver) -> dict[str, Any]:
    """A81002 refers to NQ1IA by BaRS messaging; returns the stored referral once NQ1IA has it."""
    async with gateway.client() as client:
        sent = await client.post("/fhir/$process-message", content=json.dumps(bars_bundle()), headers=headers())
    assert sent.status_code == 200, sent.text
    sr: dict[str, Any] = sent.json()["entry"][1]["resource"]
    ubrn = sr["identifier"][0]["value"]
    await eventually(lambda: any(ubrn in r for r in receiver.ledger.referrals), what="the referral at its receiver")
    return sr


def rejection(sr: dict[str, Any]) -> dict[str, Any]:
    """The sample rejection, about this referral (its UBRN) and patient."""
    bundle = load("fhir/bars-response-iapt-rejected.json")
    entry(bundle, "ServiceRequest")["identifier"] = [sr["identifier"][0]]
    entry(bundle, "Patient")["identifier"] = [sr["subject"]["identifier"]]
    return bundle


def did_not_attend(sr: dict[str, Any]) -> dict[str, Any]:
    """A BaRS did-not-attend response: the ServiceRequest revoked, its Appointment `noshow`; the
    referral named by basedOn (the gateway's id) rather than by identifier."""
    bundle = rejection(sr)
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Encounter"]
    focus = entry(bundle, "ServiceRequest")
    focus.pop("encounter")
    focus.update(status="revoked", identifier=[{"system": "https://iapt.example.nhs.uk/Id/case", "value": "C-1"}])
    focus["basedOn"] = [{"reference": f"ServiceRequest/{sr['id']}"}]
    appointment = {
        "resourceType": "Appointment",
        "id": str(uuid.uuid4()),
        "status": "noshow",
        "start": "2026-12-07T10:00:00+00:00",
        "end": "2026-12-07T10:50:00+00:00",
        "participant": [
            {"actor": {"reference": entry(bundle, "MessageHeader")["focus"][0]["reference"]}, "status": "accepted"}
        ],
    }
    bundle["entry"].append({"fullUrl": f"urn:uuid:{appointment['id']}", "resource": appointment})
    return bundle


def heard(receiver: DemoReceiver, ubrn: str) -> list[tuple[str, str, str | None]]:
    return [(s.format, s.status, s.text) for s in receiver.ledger.statuses if ubrn in s.identity]


async def task_of(gateway: RunningGateway, referral_id: str) -> dict[str, Any]:
    async with gateway.client() as client:
        found = (await client.get("/fhir/Task", params={"focus": f"ServiceRequest/{referral_id}"})).json()
    task: dict[str, Any] = found["entry"][0]["resource"]
    return task


async def test_a_bars_rejection_moves_the_task_and_reaches_the_bars_referrer(
    gateway: RunningGateway, receiver: DemoReceiver
) -> None:
    sr = await refer_by_bars(gateway, receiver)
    async with await performer_client(gateway) as iapt:
        answer = await iapt.post("/fhir/$process-message", content=json.dumps(rejection(sr)), headers=headers())
    assert answer.status_code == 200, answer.text
    header, task = (e["resource"] for e in answer.json()["entry"])
    assert header["eventCoding"]["code"] == "servicerequest-response" and header["response"]["code"] == "ok"
    assert task["status"] == "rejected"
    assert task["statusReason"]["coding"][0] == {
        "system": "https://fhir.nhs.uk/CodeSystem/rejected-reasons-bars",
        "code": "OTH",
        "display": "Other",
    }
    assert (await task_of(gateway, sr["id"]))["status"] == "rejected"
    ubrn = sr["identifier"][0]["value"]
    reason = "Needs a spinal surgical opinion before talking therapy"
    await eventually(lambda: heard(receiver, ubrn) != [], what="the rejection back at A81002")
    assert heard(receiver, ubrn) == [("fhir-messaging", "rejected", reason)]


async def test_a_did_not_attend_named_by_based_on_reaches_an_hl7_referrer_as_rri_i12(
    gateway: RunningGateway, receiver: DemoReceiver
) -> None:
    sr, _ = await refer_by_hl7(gateway, receiver)
    async with await performer_client(gateway, "RX1PN") as iapt:
        answer = await iapt.post("/fhir/$process-message", content=json.dumps(did_not_attend(sr)), headers=headers())
    assert answer.status_code == 200, answer.text
    task = await task_of(gateway, sr["id"])
    assert (task["status"], task["statusReason"]["coding"][0]["code"]) == ("cancelled", "noshow")
    ubrn = sr["identifier"][0]["value"]
    await eventually(lambda: heard(receiver, ubrn) != [], what="the did-not-attend back at A81001")
    assert heard(receiver, ubrn) == [("hl7v2-mllp", "cancelled", "Did not attend")]


async def test_a_response_about_no_known_referral_is_a_404_saying_how_it_was_named(
    gateway: RunningGateway,
) -> None:
    unknown = {"identifier": [{"system": "https://fhir.nhs.uk/Id/UBRN", "value": "nobody-knows"}], "id": "x"}
    bundle = rejection({**unknown, "subject": {"identifier": {"system": systems.NHS_NUMBER, "value": "9434765870"}}})
    async with gateway.client() as client:
        answer = await client.post("/fhir/$process-message", content=json.dumps(bundle), headers=headers())
    assert answer.status_code == 404
    issue = answer.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "REC_NOT_FOUND"
    assert "https://fhir.nhs.uk/Id/UBRN|nobody-knows" in issue["diagnostics"]
    assert issue["expression"] == ["MessageHeader.focus[0].reference"]


async def test_a_response_from_an_organisation_not_party_to_the_referral_is_refused(
    gateway: RunningGateway, receiver: DemoReceiver
) -> None:
    sr = await refer_by_bars(gateway, receiver)
    client_id = f"other-{uuid.uuid4().hex[:6]}"
    secret = await add_client(gateway, client_id, "NPH01", "system/ServiceRequest.write")
    token = await token_for(gateway, client_id, secret)
    async with httpx.AsyncClient(base_url=gateway.base_url, headers={"Authorization": f"Bearer {token}"}) as other:
        answer = await other.post("/fhir/$process-message", content=json.dumps(rejection(sr)), headers=headers())
    assert answer.status_code == 403
    assert (await task_of(gateway, sr["id"]))["status"] == "requested"


async def refer_by_hl7(gateway: RunningGateway, receiver: DemoReceiver) -> tuple[dict[str, Any], str]:
    """A81001 (an HL7 v2 referrer in the test directory) refers to the MSK service RX1PN; the status
    comes back to it as RRI^I12 over MLLP."""
    sr = referral_from("A81001")
    async with gateway.client() as client:
        created = await client.post("/fhir/ServiceRequest", content=json.dumps(sr), headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    ubrn = sr["identifier"][0]["value"]
    await eventually(lambda: any(ubrn in r for r in receiver.ledger.referrals), what="the referral at its receiver")
    return created.json(), ubrn


async def test_a_retried_response_is_answered_again_and_a_reused_request_id_is_a_409(
    gateway: RunningGateway, receiver: DemoReceiver
) -> None:
    sr = await refer_by_bars(gateway, receiver)
    sent = headers()
    async with await performer_client(gateway) as iapt:
        first = await iapt.post("/fhir/$process-message", content=json.dumps(rejection(sr)), headers=sent)
        retry = await iapt.post("/fhir/$process-message", content=json.dumps(rejection(sr)), headers=sent)
        other = did_not_attend(sr)
        reused = await iapt.post("/fhir/$process-message", content=json.dumps(other), headers=sent)
    assert (first.status_code, retry.status_code, reused.status_code) == (200, 200, 409)
    assert retry.json()["entry"][1]["resource"] == first.json()["entry"][1]["resource"]
    assert reused.json()["issue"][0]["details"]["coding"][0]["code"] == "REC_CONFLICT"
    ubrn = sr["identifier"][0]["value"]
    await eventually(lambda: heard(receiver, ubrn) != [], what="the rejection back at A81002")
    assert [s for _, s, _ in heard(receiver, ubrn)] == ["rejected"], "one change, sent back once"
