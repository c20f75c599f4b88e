"""The pad's API over real HTTP (JSON, the web form's POST, FHIR QuestionnaireResponse), each
accepted referral read back from the real broker on referrals.iapt with its source-of-referral codes."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx
from lxml import html

from tests.conftest import RunningGateway
from tests.pad.broker import events_about, events_for, physiotherapist_source, self_referral_source, source_codes
from tests.pad.pads import physio_fields, sample_response, self_fields

FHIR_JSON = {"content-type": "application/fhir+json"}


async def post_json(client: httpx.AsyncClient, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await client.post(path, json=body, headers=headers)


def issues(response: httpx.Response) -> dict[str, str]:
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    return {i["expression"][0]: i["diagnostics"] for i in outcome["issue"] if i.get("expression")}


def form_body(values: dict[str, Any], token: str) -> dict[str, Any]:
    """A browser's form post: ticked boxes send 'yes', unticked ones nothing; the submission token."""
    posted: list[tuple[str, str]] = [("_submission", token)]
    for key, value in values.items():
        for one in value if isinstance(value, list) else [value]:
            if one is False and key.startswith("consent."):
                continue
            posted.append((key, "yes" if one is True else "no" if one is False else str(one)))
    return {"content": urlencode(posted), "headers": {"content-type": "application/x-www-form-urlencoded"}}


async def test_json_pad_is_accepted_and_published_to_iapt_with_its_source(running_gateway: RunningGateway) -> None:
    values = physio_fields()
    async with running_gateway.client() as client:
        response = await post_json(client, "/pad", values, **{"x-correlation-id": "pad-corr-1"})
    assert response.status_code == 201
    body = response.json()
    assert re.fullmatch(r"PAD-[0-9A-Z]{4}-[0-9A-Z]{4}", body["reference"])
    assert (body["topic"], body["rule"], body["priority"]) == ("referrals.iapt", "iapt-back-pain-course", "routine")
    assert body["service"] == {"ods": "NQ1IA", "name": "NHS Talking Therapies"}
    assert "whatToDoNow" not in body
    assert response.headers["location"].endswith(f"/fhir/ServiceRequest/{body['referralId']}/_history/1")
    (event,) = await events_for(running_gateway, body["referralId"])
    assert event.key == values["patient.nhs-number"]
    assert event.headers["routing_rule"] == "iapt-back-pain-course"
    assert event.headers["routing_service"] == "iapt-hwb-back-pain-course"
    assert event.headers["correlation_id"] == "pad-corr-1"
    assert event.headers["ce_source"] == "urn:referral-gateway:pad:NPH01"
    assert source_codes(event) == physiotherapist_source()
    assert event.value["identifier"][0]["value"] == body["reference"]
    assert event.value["priority"] == "routine"
    assert {c["resourceType"] for c in event.value["contained"]} == {"Patient", "Practitioner", "QuestionnaireResponse"}


async def test_positive_risk_screen_is_urgent_for_the_duty_team(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        response = await post_json(client, "/pad", physio_fields({"risk.self-harm-thoughts": True}))
    assert response.status_code == 201
    body = response.json()
    assert (body["priority"], body["rule"]) == ("urgent", "iapt-urgent-risk")
    assert any("999" in step for step in body["whatToDoNow"])
    (event,) = await events_for(running_gateway, body["referralId"])
    assert event.value["priority"] == "urgent"
    assert event.headers["routing_rule"] == "iapt-urgent-risk"
    assert event.headers["routing_service"] == "iapt-duty"
    assert source_codes(event) == physiotherapist_source()


async def test_no_consent_is_422_and_nothing_is_sent(running_gateway: RunningGateway) -> None:
    values = physio_fields({"consent.sharing": False})
    async with running_gateway.client() as client:
        response = await post_json(client, "/pad", values)
        found = await client.get("/fhir/ServiceRequest", params={"patient": values["patient.nhs-number"]})
    assert response.status_code == 422
    assert "not consented" in response.json()["issue"][0]["details"]["text"]
    assert list(issues(response)) == ["consent.sharing"]
    assert found.json()["total"] == 0
    assert await events_about(running_gateway, values["patient.nhs-number"]) == []


async def test_a_bad_field_is_422_with_its_path(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        response = await post_json(
            client, "/pad", physio_fields({"patient.nhs-number": "9434765918", "referrer.hcpc": "123"})
        )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert list(issues(response)) == ["patient.nhs-number", "referrer.hcpc"]


async def test_json_that_is_not_an_object_is_400(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        response = await client.post("/pad", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert response.status_code == 400


async def test_other_media_types_and_unknown_confirmations_are_refused(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        text = await client.post("/pad", content=b"hello", headers={"content-type": "text/plain"})
        unknown = await client.get(f"/pad/sent/{uuid.uuid4()}")
    assert (text.status_code, unknown.status_code) == (415, 404)


async def test_a_resend_with_the_same_request_id_is_one_referral(running_gateway: RunningGateway) -> None:
    values, request_id = physio_fields(), str(uuid.uuid4())
    async with running_gateway.client() as client:
        first = await post_json(client, "/pad", values, **{"x-request-id": request_id})
        second = await post_json(client, "/pad", values, **{"x-request-id": request_id})
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["reference"] == first.json()["reference"]
    events = await events_for(running_gateway, first.json()["referralId"], count=2, timeout=3)
    assert len(events) == 1


async def test_a_request_id_reused_for_another_pad_referral_is_a_409_not_the_earlier_referral(
    running_gateway: RunningGateway,
) -> None:
    request_id = str(uuid.uuid4())
    async with running_gateway.client() as client:
        first = await post_json(client, "/pad", physio_fields(), **{"x-request-id": request_id})
        other = await post_json(client, "/pad", physio_fields(), **{"x-request-id": request_id})
    assert first.status_code == 201, first.text
    assert other.status_code == 409
    assert [i["code"] for i in other.json()["issue"]] == ["duplicate"]


async def test_self_referral_is_b1_and_has_no_physiotherapist(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        response = await post_json(client, "/pad/self-referral", self_fields())
    assert response.status_code == 201, response.text
    (event,) = await events_for(running_gateway, response.json()["referralId"])
    assert source_codes(event) == self_referral_source()
    assert event.headers["ce_source"] == "urn:referral-gateway:pad:self-referral"
    assert {c["resourceType"] for c in event.value["contained"]} == {"Patient", "QuestionnaireResponse"}


async def test_a_self_referral_with_a_referrer_section_is_refused(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        response = await post_json(client, "/pad/self-referral", physio_fields())
    assert response.status_code == 422
    assert "referrer.name" in issues(response)


async def test_fhir_questionnaire_response_becomes_a_referral_on_iapt(running_gateway: RunningGateway) -> None:
    qr = sample_response()
    async with running_gateway.client() as client:
        response = await client.post("/fhir/QuestionnaireResponse", content=json.dumps(qr), headers=FHIR_JSON)
        again = await client.post("/fhir/QuestionnaireResponse", content=json.dumps(qr), headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    sr = response.json()
    assert sr["resourceType"] == "ServiceRequest"
    assert again.status_code == 200  # the sender's identifier for the response makes the resend a duplicate
    assert again.json()["id"] == sr["id"]
    (event,) = await events_for(running_gateway, sr["id"])
    assert source_codes(event) == physiotherapist_source()
    assert event.value["supportingInfo"][0]["reference"] == "#pad-response"


async def test_fhir_questionnaire_response_for_another_questionnaire_is_422(running_gateway: RunningGateway) -> None:
    qr = sample_response()
    qr["questionnaire"] = "https://example.org/Questionnaire/other"
    async with running_gateway.client() as client:
        response = await client.post("/fhir/QuestionnaireResponse", content=json.dumps(qr), headers=FHIR_JSON)
    assert response.status_code == 422
    assert list(issues(response)) == ["QuestionnaireResponse.questionnaire"]


async def test_the_questionnaire_is_published(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        response = await client.get("/fhir/Questionnaire/iapt-prescription-pad")
    assert response.status_code == 200
    assert response.json()["url"] == "https://referral-gateway.nhs.example/Questionnaire/iapt-prescription-pad"


async def test_the_form_is_served_with_a_label_for_every_control(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        page = await client.get("/pad")
        css = await client.get("/pad/static/pad.css")
    assert page.status_code == 200
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    doc = html.fromstring(page.text)
    labelled = set(doc.xpath("//label/@for"))
    controls = doc.xpath("//form//input[not(@type='hidden')] | //form//textarea")
    assert controls
    assert [c.get("id") for c in controls if c.get("id") not in labelled] == []
    groups = doc.xpath("//fieldset")
    assert all(g.xpath("./legend") for g in groups)


async def test_a_rejected_form_comes_back_with_the_typed_values_and_errors(running_gateway: RunningGateway) -> None:
    values = physio_fields({"patient.nhs-number": "9434765918", "patient.given-name": "Robin"})
    async with running_gateway.client() as client:
        response = await client.post("/pad", **form_body(values, "t-1"))
    assert response.status_code == 422
    doc = html.fromstring(response.text)
    assert doc.xpath("//input[@name='patient.given-name']/@value") == ["Robin"]
    assert doc.xpath("//input[@name='_submission']/@value") == ["t-1"]
    assert doc.xpath("//div[@class='error-summary']//a/@href") == ["#patient-nhs-number"]
    assert doc.xpath("//p[@id='patient-nhs-number-error']")
    assert doc.xpath("//input[@id='patient-nhs-number']/@aria-invalid") == ["true"]


async def test_a_sent_form_redirects_to_the_confirmation_once(running_gateway: RunningGateway) -> None:
    posted = form_body(physio_fields(), str(uuid.uuid4()))
    async with running_gateway.client() as client:
        first = await client.post("/pad", **posted)
        second = await client.post("/pad", **posted)
        page = await client.get(first.headers["location"])
    assert (first.status_code, second.status_code) == (303, 303)
    assert second.headers["location"] == first.headers["location"] + "?repeat=true"
    doc = html.fromstring(page.text)
    reference = doc.xpath("string(//strong[@id='reference'])")
    assert re.fullmatch(r"PAD-[0-9A-Z]{4}-[0-9A-Z]{4}", reference)
    assert doc.xpath("string(//dd[@id='topic'])") == "referrals.iapt"
    referral_id = first.headers["location"].rsplit("/", 1)[-1]
    (event,) = await events_for(running_gateway, referral_id)
    assert event.value["identifier"][0]["value"] == reference
    assert source_codes(event) == physiotherapist_source()
