"""Routing decisions through a running gateway: the event lands on the decided topic with the
decision in its headers, triage goes to referrals.triage, and a referral the criteria return gets
an OperationOutcome saying why. Real HTTP, real broker, real store (SQLite)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from gateway.settings import StoreSettings
from tests.conftest import RunningGateway
from tests.kafka_reader import Event, read_events
from tests.routing.referrals import EPIDURAL, LOCAL, concepts, performer
from tests.samples import load, service_request, valid_nhs_number

FHIR_JSON = {"content-type": "application/fhir+json"}


@pytest.fixture
def store_settings() -> StoreSettings:
    """Routing does not depend on the store: SQLite is enough here."""
    return StoreSettings()


def fresh(sample: str, **changes: Any) -> dict[str, Any]:
    """A sample with a new UBRN and NHS number (in the contained resources too)."""
    sr = load(f"fhir/{sample}")
    nhs = valid_nhs_number()
    sr["identifier"][0]["value"] = uuid.uuid4().hex[:12]
    for resource in [sr, *sr.get("contained", [])]:
        resource["subject"]["identifier"]["value"] = nhs
    sr.update(changes)
    return sr


async def post(gateway: RunningGateway, body: dict[str, Any]) -> httpx.Response:
    async with gateway.client() as client:
        return await client.post("/fhir/ServiceRequest", content=json.dumps(body), headers=FHIR_JSON)


async def event_on(gateway: RunningGateway, topic: str, referral_id: str) -> Event:
    def ours(event: Event) -> bool:
        return event.headers.get("ce_subject") == f"ServiceRequest/{referral_id}"

    (event,) = await asyncio.to_thread(read_events, gateway.settings.kafka.servers, topic, 1, 10, ours)
    return event


async def test_an_accepted_epidural_referral_reaches_the_msk_pain_topic(running_gateway: RunningGateway) -> None:
    response = await post(running_gateway, fresh(EPIDURAL))
    assert response.status_code == 201, response.text
    event = await event_on(running_gateway, "referrals.msk-pain", response.json()["id"])
    assert (event.headers["routing_rule"], event.headers["routing_service"]) == (
        "msk-pain-epidural",
        "msk-pain-epidural",
    )
    assert "epidural-not-repeated" in event.headers["routing_reason"]


async def test_a_complex_case_is_published_to_triage_for_the_mdt(running_gateway: RunningGateway) -> None:
    body = fresh(EPIDURAL, category=concepts("complex-case", system=f"{LOCAL}/referral-category"))
    response = await post(running_gateway, body)
    assert response.status_code == 201, response.text
    event = await event_on(running_gateway, "referrals.triage", response.json()["id"])
    assert event.headers["routing_service"] == "msk-pain-mdt"
    assert "msk-complex-case-to-mdt" in event.headers["routing_reason"]


async def test_a_referral_the_criteria_return_gets_the_reason_back(running_gateway: RunningGateway) -> None:
    response = await post(running_gateway, fresh(EPIDURAL, reasonCode=concepts("76107001")))
    assert response.status_code == 422
    (issue,) = response.json()["issue"]
    assert issue["code"] == "business-rule"
    assert "not offered for spinal stenosis or neurogenic claudication" in issue["diagnostics"]
    assert issue["expression"] == ["ServiceRequest.reasonCode"]


async def test_a_risk_flagged_iapt_referral_reaches_iapt_as_urgent(running_gateway: RunningGateway) -> None:
    response = await post(running_gateway, service_request(performer=performer("NQ1IA"), priority="urgent"))
    assert response.status_code == 201, response.text
    event = await event_on(running_gateway, "referrals.iapt", response.json()["id"])
    assert event.headers["routing_service"] == "iapt-duty"
    assert event.value["priority"] == "urgent"
