"""The monitor's JSON API through a running gateway: the overview the dashboard polls, a referral's
trace, the dead letters and the masked message browser, each behind the monitor scopes."""

from __future__ import annotations

import json

from tests.conftest import RunningGateway
from tests.samples import service_request

FHIR_JSON = {"content-type": "application/fhir+json"}


async def test_the_overview_names_every_topic(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        response = await client.get("/monitor/api/overview")
    assert response.status_code == 200, response.text
    text = response.text
    for topic in ("referrals.msk-pain", "referrals.iapt", "referrals.status"):
        assert topic in text


async def test_a_referral_is_traced_by_its_id_and_by_its_nhs_number(running_gateway: RunningGateway) -> None:
    sr = service_request()
    async with running_gateway.client() as client:
        created = await client.post("/fhir/ServiceRequest", content=json.dumps(sr), headers=FHIR_JSON)
        assert created.status_code == 201, created.text
        referral_id = created.json()["id"]
        by_id = await client.get(f"/monitor/api/trace/{referral_id}")
        by_nhs_number = await client.get(f"/monitor/api/trace/{sr['subject']['identifier']['value']}")
    assert by_id.status_code == 200, by_id.text
    assert referral_id in by_id.text and referral_id in by_nhs_number.text
    assert sr["subject"]["identifier"]["value"] not in by_id.text  # masked unless asked and allowed


async def test_the_monitor_refuses_callers_without_its_scopes(running_gateway: RunningGateway) -> None:
    async with running_gateway.anonymous_client() as client:
        anonymous = await client.get("/monitor/api/overview")
        dead_letters = await client.get("/monitor/api/dead-letters")
    assert anonymous.status_code == 401 and dead_letters.status_code == 401
    assert anonymous.json()["resourceType"] == "OperationOutcome"
