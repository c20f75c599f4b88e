"""The audit trail of one referral's life: created, read, updated, and refused to a stranger, each a
FHIR AuditEvent (who, what, outcome, from where) searchable at GET /fhir/AuditEvent and published to
the audit topic."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests import samples
from tests.conftest import RunningGateway, add_client, token_for
from tests.kafka_reader import read_events

pytestmark = pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
AUDIT_TOPIC = "gateway.audit"


def summary(event: dict[str, Any]) -> tuple[str, str, str]:
    return event["subtype"][0]["code"], event["outcome"], event["agent"][0]["who"]["identifier"]["value"]


async def test_a_referrals_life_is_in_the_trail_and_on_the_audit_topic(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as admin:
        created = await admin.post("/fhir/ServiceRequest", json=samples.service_request())
        assert created.status_code == 201, created.text
        referral = created.json()
        path = f"/fhir/ServiceRequest/{referral['id']}"
        assert (await admin.get(path)).status_code == 200
        assert (await admin.put(path, json={**referral, "priority": "urgent"})).status_code == 200
        stranger_secret = await add_client(running_gateway, "stranger", "Y99999", "system/ServiceRequest.read")
        stranger = await token_for(running_gateway, "stranger", stranger_secret)
        async with httpx.AsyncClient(base_url=running_gateway.base_url) as other:
            refused = await other.get(path, headers={"Authorization": f"Bearer {stranger}"})
            assert refused.status_code == 403
        found = await admin.get("/fhir/AuditEvent", params={"entity": f"ServiceRequest/{referral['id']}"})
    assert found.status_code == 200, found.text
    events = [e["resource"] for e in found.json()["entry"]]
    seen = {summary(e) for e in events}
    assert {("create", "0", "integration-admin"), ("read", "0", "integration-admin")} <= seen, seen
    assert ("update", "0", "integration-admin") in seen, seen
    assert ("read", "4", "stranger") in seen, seen
    assert all(e["recorded"] and e["source"] for e in events)
    assert any(net.get("address") == "127.0.0.1" for e in events for net in [e["agent"][0].get("network", {})])
    ids = {e["id"] for e in events}
    published = await asyncio.to_thread(
        read_events,
        running_gateway.settings.kafka.servers,
        AUDIT_TOPIC,
        len(ids),
        20,
        lambda event: event.value.get("id") in ids,
    )
    assert {e.value["id"] for e in published} == ids
