"""The pad without an NHS number: "I don't know it" on the self-referral form and in the API, the
referral published with the patient to be traced, and a given NHS number still checked."""

from __future__ import annotations

import uuid

from lxml import html

from gateway.canonical import patient, systems
from tests.conftest import RunningGateway
from tests.pad.broker import events_for
from tests.pad.pads import self_fields
from tests.pad.test_pad_api import form_body, issues, post_json

UNKNOWN = {"patient.nhs-number": None, "patient.nhs-number-unknown": True}


async def test_a_self_referral_without_an_nhs_number_is_sent_to_be_traced(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        response = await post_json(client, "/pad/self-referral", self_fields(UNKNOWN))
        assert response.status_code == 201, response.text
        referral_id = response.json()["referralId"]
        flagged = await client.get("/fhir/ServiceRequest", params={"_tag": "nhs-number-to-be-traced"})
    (event,) = await events_for(running_gateway, referral_id)
    assert event.key == patient.untraced_key(referral_id)
    assert event.value["subject"] == {"reference": "#patient", "type": "Patient"}
    assert event.value["meta"]["tag"][0]["code"] == "nhs-number-to-be-traced"
    (person,) = [c for c in event.value["contained"] if c["resourceType"] == "Patient"]
    (nhs,) = [i for i in person["identifier"] if i["system"] == systems.NHS_NUMBER]
    assert "value" not in nhs
    assert nhs["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == systems.TRACE_REQUIRED[0]
    assert person["address"][0]["postalCode"] == "LS1 4AP" and person["birthDate"] == "1971-03-14"
    assert referral_id in [e["resource"]["id"] for e in flagged.json()["entry"]]
    steps = {h.step: h.detail for h in await running_gateway.runtime.store.history(referral_id)}
    assert "to be traced" in steps["received"]["resolved"]["subject"]


async def test_the_self_referral_form_offers_i_dont_know_it_and_sends_without_the_number(
    running_gateway: RunningGateway,
) -> None:
    posted = form_body(self_fields(UNKNOWN), str(uuid.uuid4()))
    async with running_gateway.client() as client:
        page = await client.get("/pad/self-referral")
        sent = await client.post("/pad/self-referral", **posted)
    doc = html.fromstring(page.text)
    (box,) = doc.xpath("//input[@name='patient.nhs-number-unknown']")
    assert doc.xpath(f"string(//label[@for='{box.get('id')}'])").strip().startswith("I don't know my NHS number")
    assert sent.status_code == 303, sent.text
    referral_id = sent.headers["location"].rsplit("/", 1)[-1]
    (event,) = await events_for(running_gateway, referral_id)
    assert event.key == patient.untraced_key(referral_id)


async def test_without_a_number_or_i_dont_know_it_the_nhs_number_is_asked_for(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        response = await post_json(client, "/pad/self-referral", self_fields({"patient.nhs-number": None}))
    assert response.status_code == 422
    assert "tick that it is not known" in issues(response)["patient.nhs-number"]


async def test_a_given_nhs_number_is_still_checked_and_every_problem_is_told_at_once(
    running_gateway: RunningGateway,
) -> None:
    values = self_fields({"patient.nhs-number": "9434765918", "patient.postcode": "nowhere", "patient.phone": "1"})
    async with running_gateway.client() as client:
        response = await post_json(client, "/pad/self-referral", {**values, "patient.nhs-number-unknown": True})
    assert response.status_code == 422
    assert list(issues(response)) == ["patient.nhs-number", "patient.postcode", "patient.phone"]
