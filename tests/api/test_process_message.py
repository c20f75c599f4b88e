"""BaRS-style FHIR messaging: $process-message with message Bundles, over real HTTP and Kafka."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx

from tests.conftest import RunningGateway
from tests.kafka_reader import read_events
from tests.samples import bars_bundle, entry

FHIR_JSON = {"content-type": "application/fhir+json"}


def guid() -> str:
    return str(uuid.uuid4())


async def send(
    client: httpx.AsyncClient,
    bundle: dict[str, Any],
    request_id: str | None = None,
    correlation_id: str | None = None,
    **headers: str,
) -> httpx.Response:
    """POST the message as a BaRS sender does: a new X-Request-Id and X-Correlation-Id unless given."""
    sent = {**FHIR_JSON, "x-correlation-id": correlation_id or guid(), **headers}
    if request_id is not False:
        sent["x-request-id"] = request_id or guid()
    return await client.post("/fhir/$process-message", content=json.dumps(bundle), headers=sent)


def referral_in(response: httpx.Response) -> dict[str, Any]:
    resource: dict[str, Any] = response.json()["entry"][1]["resource"]
    return resource


async def test_new_referral_message_is_accepted_and_published(running_gateway: RunningGateway) -> None:
    bundle = bars_bundle()
    request_id, correlation_id = guid(), guid()
    async with running_gateway.client() as client:
        response = await send(client, bundle, request_id, correlation_id)
    assert response.status_code == 200
    assert (response.headers["x-request-id"], response.headers["x-correlation-id"]) == (request_id, correlation_id)
    header = response.json()["entry"][0]["resource"]
    assert header["response"] == {"identifier": request_id, "code": "ok"}
    sr = referral_in(response)
    nhs = entry(bundle, "Patient")["identifier"][0]["value"]
    assert sr["subject"]["identifier"]["value"] == nhs
    events = await asyncio.to_thread(
        read_events, running_gateway.settings.kafka.servers, "referrals.iapt", 1, 10, lambda e: e.key == nhs
    )
    assert events and events[0].headers["correlation_id"] == correlation_id


async def test_a_request_id_reused_for_another_message_is_a_409_duplicate(running_gateway: RunningGateway) -> None:
    request_id = guid()
    async with running_gateway.client() as client:
        first = await send(client, bars_bundle(), request_id)
        second = await send(client, bars_bundle(), request_id)
    assert first.status_code == 200
    assert second.status_code == 409
    assert second.json()["issue"][0]["code"] == "duplicate"
    assert second.json()["issue"][0]["details"]["coding"][0]["code"] == "REC_CONFLICT"


async def test_x_request_id_is_required(running_gateway: RunningGateway) -> None:
    async with running_gateway.client() as client:
        response = await send(client, bars_bundle(), request_id=False)  # type: ignore[arg-type]
    assert response.status_code == 400


def with_reason(bundle: dict[str, Any], reason: str, **service_request: Any) -> dict[str, Any]:
    changed = json.loads(json.dumps(bundle))
    changed["entry"][0]["resource"]["reason"]["coding"][0]["code"] = reason
    entry(changed, "ServiceRequest").update(service_request)
    return changed


async def test_update_then_cancel_then_cancel_again(running_gateway: RunningGateway) -> None:
    new = bars_bundle("new")
    async with running_gateway.client() as client:
        created = await send(client, new)
        updated = await send(client, with_reason(new, "update", priority="urgent"))
        cancelled = await send(client, with_reason(new, "update", status="revoked"))
        again = await send(client, with_reason(new, "update", status="revoked"))
    assert referral_in(created)["meta"]["versionId"] == "1"
    assert referral_in(updated)["priority"] == "urgent" and referral_in(updated)["meta"]["versionId"] == "2"
    assert referral_in(cancelled)["status"] == "revoked"
    assert again.status_code == 409


async def test_update_of_an_unknown_referral_is_a_404(running_gateway: RunningGateway) -> None:
    update = bars_bundle("update")
    async with running_gateway.client() as client:
        response = await send(client, update)
    assert response.status_code == 404


async def test_unresolvable_subject_is_rejected_with_the_reason(running_gateway: RunningGateway) -> None:
    bundle = bars_bundle()
    entry(bundle, "ServiceRequest")["subject"] = {"reference": "Patient/elsewhere"}
    async with running_gateway.client() as client:
        response = await send(client, bundle)
    assert response.status_code == 422
    assert "cannot be resolved to an NHS number" in response.json()["issue"][0]["details"]["text"]


async def task_for(client: httpx.AsyncClient, referral_id: str) -> dict[str, Any]:
    found = (await client.get("/fhir/Task", params={"focus": f"ServiceRequest/{referral_id}"})).json()
    task: dict[str, Any] = found["entry"][0]["resource"]
    return task


async def test_a_delete_marks_the_referral_entered_in_error_unlike_a_cancellation(
    running_gateway: RunningGateway,
) -> None:
    deleted, cancelled = bars_bundle("new"), bars_bundle("new")
    async with running_gateway.client() as client:
        await send(client, deleted)
        await send(client, cancelled)
        gone = referral_in(await send(client, with_reason(deleted, "delete")))
        withdrawn = referral_in(await send(client, with_reason(cancelled, "update", status="revoked")))
        tasks = [await task_for(client, sr["id"]) for sr in (gone, withdrawn)]
        again = await send(client, with_reason(deleted, "update", priority="urgent"))
    assert (gone["status"], withdrawn["status"]) == ("entered-in-error", "revoked")
    assert [t["status"] for t in tasks] == ["entered-in-error", "cancelled"]
    assert "entered in error" in tasks[0]["statusReason"]["text"]
    assert again.status_code == 409 and again.json()["issue"][0]["details"]["coding"][0]["code"] == "REC_CONFLICT"
    nhs = gone["subject"]["identifier"]["value"]
    events = await asyncio.to_thread(
        read_events, running_gateway.settings.kafka.servers, "referrals.iapt", 2, 10, lambda e: e.key == nhs
    )
    assert [e.headers["ce_type"] for e in events] == [
        "uk.nhs.referral.servicerequest.created",
        "uk.nhs.referral.servicerequest.entered-in-error",
    ]
    assert events[1].value["status"] == "entered-in-error"


async def test_a_cancelled_referral_may_still_be_deleted_as_entered_in_error(running_gateway: RunningGateway) -> None:
    bundle = bars_bundle("new")
    async with running_gateway.client() as client:
        await send(client, bundle)
        await send(client, with_reason(bundle, "update", status="revoked"))
        deleted = await send(client, with_reason(bundle, "delete"))
        task = await task_for(client, referral_in(deleted)["id"])
    assert referral_in(deleted)["status"] == "entered-in-error"
    assert task["status"] == "entered-in-error"
