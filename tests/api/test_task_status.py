"""The closed loop over FHIR: each referral gets a Task; the receiver moves it; the referrer reads it;
each change is an event on referrals.status."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.conftest import RunningGateway
from tests.kafka_reader import read_events
from tests.samples import service_request

FHIR_JSON = {"content-type": "application/fhir+json"}
PATCH = {"content-type": "application/json-patch+json"}


async def referral_and_task(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    created = (
        await client.post("/fhir/ServiceRequest", content=json.dumps(service_request()), headers=FHIR_JSON)
    ).json()
    found = (await client.get("/fhir/Task", params={"focus": f"ServiceRequest/{created['id']}"})).json()
    assert found["total"] == 1
    return created, found["entry"][0]["resource"]


async def patch_status(client: httpx.AsyncClient, task_id: str, status: str, *extra: dict[str, Any]) -> httpx.Response:
    ops = [{"op": "replace", "path": "/status", "value": status}, *extra]
    return await client.patch(f"/fhir/Task/{task_id}", content=json.dumps(ops), headers=PATCH)


async def test_a_new_referral_has_a_requested_task_about_it(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        sr, task = await referral_and_task(client)
    assert task["status"] == "requested" and task["intent"] == "order"
    assert task["focus"] == {"reference": f"ServiceRequest/{sr['id']}"}
    assert task["for"] == sr["subject"] and task["owner"] == sr["performer"][0] and task["requester"] == sr["requester"]


async def test_full_life_cycle_over_fhir(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        sr, task = await referral_and_task(client)
        url = f"/fhir/Task/{task['id']}"
        received = await patch_status(client, task["id"], "received")
        accepted = {**received.json(), "status": "accepted"}
        accepted_r = await client.put(url, content=json.dumps(accepted), headers={**FHIR_JSON, "if-match": 'W/"2"'})
        booked = await patch_status(
            client,
            task["id"],
            "in-progress",
            {"op": "add", "path": "/businessStatus", "value": {"text": "Booked onto course"}},
            {"op": "add", "path": "/executionPeriod", "value": {"start": "2026-12-07"}},
        )
        completed = await patch_status(client, task["id"], "completed")
        history = (await client.get(f"{url}/_history")).json()
    assert [r.status_code for r in (received, accepted_r, booked, completed)] == [200] * 4
    assert completed.headers["etag"] == 'W/"5"'
    assert [e["resource"]["status"] for e in history["entry"]] == [
        "completed",
        "in-progress",
        "accepted",
        "received",
        "requested",
    ]
    assert history["entry"][1]["resource"]["businessStatus"]["text"] == "Booked onto course"
    events = await asyncio.to_thread(
        read_events,
        running_gateway.settings.kafka.servers,
        "referrals.status",
        4,
        10,
        lambda e: e.headers["ce_subject"] == f"Task/{task['id']}",
    )
    assert [e.value["status"] for e in events] == ["received", "accepted", "in-progress", "completed"]
    assert {e.headers["referral"] for e in events} == {f"ServiceRequest/{sr['id']}"}
    assert all(e.key == sr["subject"]["identifier"]["value"] for e in events)


async def test_a_move_the_life_cycle_does_not_allow_is_a_409(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        _, task = await referral_and_task(client)
        response = await patch_status(client, task["id"], "completed")
    assert response.status_code == 409
    assert "allowed next" in response.json()["issue"][0]["diagnostics"]


async def test_rejection_needs_a_reason(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        _, task = await referral_and_task(client)
        without = await patch_status(client, task["id"], "rejected")
        reason = {"op": "add", "path": "/statusReason", "value": {"text": "Outside our catchment area"}}
        with_reason = await patch_status(client, task["id"], "rejected", reason)
    assert without.status_code == 422
    assert with_reason.status_code == 200 and with_reason.json()["statusReason"]["text"] == "Outside our catchment area"


async def test_what_the_task_is_about_cannot_change(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        _, task = await referral_and_task(client)
        response = await client.patch(
            f"/fhir/Task/{task['id']}",
            headers=PATCH,
            content=json.dumps([{"op": "replace", "path": "/focus", "value": {"reference": "ServiceRequest/other"}}]),
        )
    assert response.status_code == 409 and response.json()["issue"][0]["expression"] == ["Task.focus"]


async def test_repeating_a_change_adds_no_version(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        _, task = await referral_and_task(client)
        first = await patch_status(client, task["id"], "received")
        again = await patch_status(client, task["id"], "received")
    assert first.headers["etag"] == again.headers["etag"] == 'W/"2"'


async def test_stale_if_match_is_a_412(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        _, task = await referral_and_task(client)
        response = await client.put(
            f"/fhir/Task/{task['id']}",
            content=json.dumps({**task, "status": "received"}),
            headers={**FHIR_JSON, "if-match": 'W/"9"'},
        )
    assert response.status_code == 412


def publish(servers: str, topic: str, key: str, value: dict[str, Any], headers: dict[str, str]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=servers, acks="all")
    producer.send(
        topic, json.dumps(value).encode(), key=key.encode(), headers=[(k, v.encode()) for k, v in headers.items()]
    )
    producer.flush()
    producer.close()


async def test_a_receiver_can_publish_its_task_update_on_the_status_updates_topic(
    running_gateway: RunningGateway,
) -> None:
    servers = running_gateway.settings.kafka.servers
    async with running_gateway.client() as client:
        sr, task = await referral_and_task(client)
        nhs = sr["subject"]["identifier"]["value"]
        await asyncio.to_thread(
            publish,
            servers,
            "referrals.status-updates",
            nhs,
            {**task, "status": "accepted"},
            {"ce_source": "urn:receiver:NQ1IA"},
        )
        await asyncio.to_thread(
            publish,
            servers,
            "referrals.status-updates",
            nhs,
            {**task, "status": "teleported"},
            {"ce_source": "urn:receiver:NQ1IA", "ce_subject": f"Task/{task['id']}"},
        )
        for _ in range(100):
            if (await client.get(f"/fhir/Task/{task['id']}")).json()["status"] == "accepted":
                break
            await asyncio.sleep(0.1)
        current = (await client.get(f"/fhir/Task/{task['id']}")).json()
    assert current["status"] == "accepted"
    (refused,) = await asyncio.to_thread(
        read_events,
        servers,
        "referrals.deadletter",
        1,
        15,
        lambda e: e.headers.get("ce_subject") == f"Task/{task['id']}",
    )
    assert refused.headers["dlq_original_topic"] == "referrals.status-updates"
    assert "teleported" in refused.headers["dlq_reason"] + refused.headers["dlq_details"]


async def test_withdrawing_the_referral_cancels_its_task(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        sr, task = await referral_and_task(client)
        body = {k: v for k, v in sr.items() if k != "meta"}
        withdrawn = await client.put(
            f"/fhir/ServiceRequest/{sr['id']}", content=json.dumps({**body, "status": "revoked"}), headers=FHIR_JSON
        )
        current = (await client.get(f"/fhir/Task/{task['id']}")).json()
    assert withdrawn.status_code == 200
    assert current["status"] == "cancelled" and current["statusReason"]["text"] == "Referral withdrawn by the referrer"
