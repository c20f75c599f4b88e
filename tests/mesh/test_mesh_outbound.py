"""MESH out, against a running mesh-sandbox: a receiver whose directory endpoint is a MESH mailbox
gets the referral in its workflow's format with `Mex-LocalID` = the event id; the delivery is
recorded only when MESH's tracking says the receiver downloaded it; undeliverable messages are
retried and then dead-lettered; and the closed loop: a physio partner's IAPT referral in by MESH,
out to the IAPT service's mailbox, its Task changes back to the partner's mailbox. Each test reads
what the sandbox holds (inboxes as their owners read them, the gateway's outbox with MESH's status)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.inbound.mesh import messages
from gateway.canonical import systems
from gateway.errors import InvalidReferral, Issue
from gateway.mesh import demo
from gateway.settings import Settings
from gateway.store.mesh_sent import MeshSentLog
from tests.conftest import RunningGateway, serve, shutdown
from tests.delivery.receivers import eventually
from tests.mesh.conftest import schemas_with_mesh
from tests.mesh.sandbox import CLOSED, GATEWAY, IAPT, PHYSIO, Sandbox
from tests.mesh.test_mesh_inbound import acknowledged, physio_referral, send, stored, ubrn_of


async def referral_in(gateway: RunningGateway, mesh: Sandbox) -> tuple[str, dict[str, Any]]:
    """The physio partner's IAPT referral, taken in by MESH; returns its referral id and the Bundle."""
    bundle = physio_referral()
    message_id = send(mesh, PHYSIO, json.dumps(bundle).encode(), "BARS_REFERRAL")
    await acknowledged(mesh, PHYSIO, message_id)
    [referral] = await stored(gateway, ubrn_of(bundle))
    return referral.id, bundle


async def arrived(mesh: Sandbox, mailbox: str, workflow: str, count: int = 1) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def check() -> bool:
        found[:] = [m for m in mesh.inbox(mailbox) if m["workflow_id"] == workflow]
        return len(found) >= count

    await eventually(check, timeout=30, what=f"{count} {workflow} message(s) in {mailbox}")
    return found


def take(mesh: Sandbox, mailbox: str, message_id: str) -> None:
    """The receiver downloads and acknowledges a message, as its MESH client would."""
    with mesh.mailbox(mailbox) as client:
        client.acknowledge_message(message_id)


async def delivery_status(gateway: RunningGateway, event_id: str, receiver: str) -> str | None:
    row = await gateway.runtime.delivery.ledger.get(event_id, receiver)
    return row.status if row else None


async def test_referral_to_a_mesh_receiver_is_delivered_once_mesh_tracks_it_downloaded(
    running_gateway: RunningGateway, mesh: Sandbox
) -> None:
    await running_gateway.runtime.delivery.joined()
    referral_id, _ = await referral_in(running_gateway, mesh)
    [message] = await arrived(mesh, IAPT, "BARS_REFERRAL")
    assert message["sender"] == GATEWAY
    event_id = message["local_id"]
    sent = json.loads(message["body"])
    assert sent["id"] == event_id and sent["type"] == "message"
    sr = sent["entry"][1]["resource"]
    assert {"system": systems.REFERRAL_ID, "value": referral_id} in sr["identifier"]
    assert mesh.message(message["message_id"])["chunk_count"] == len(message["body"]) // 1024 + 1  # sent in chunks
    assert await delivery_status(running_gateway, event_id, "iapt-core") != "delivered"  # not downloaded yet
    take(mesh, IAPT, message["message_id"])
    await eventually(
        lambda: _is(delivery_status(running_gateway, event_id, "iapt-core"), "delivered"),
        timeout=30,
        what="the delivery recorded",
    )
    row = await running_gateway.runtime.delivery.ledger.get(event_id, "iapt-core")
    assert row is not None and row.format == "mesh" and "downloaded by NQ1IAMB1" in (row.receipt or "")
    [out] = [m for m in mesh.outbox(GATEWAY) if m["local_id"] == event_id]
    assert out["status"].lower() == "acknowledged" and out["recipient"] == IAPT


async def test_a_delivery_tried_again_follows_the_message_mesh_holds_instead_of_sending_another(
    running_gateway: RunningGateway, mesh: Sandbox
) -> None:
    """Tracking times out (the receiver has not downloaded yet) and is tried again, not counted as a
    failed attempt: the receiver's inbox still holds one message for the event, and its download
    settles the delivery."""
    await running_gateway.runtime.delivery.joined()
    referral_id, _ = await referral_in(running_gateway, mesh)
    [message] = await arrived(mesh, IAPT, "BARS_REFERRAL")
    event_id = message["local_id"]
    await eventually(
        lambda: _retried(running_gateway, referral_id), timeout=40, what="two tracking time-outs, each tried again"
    )
    row = await running_gateway.runtime.delivery.ledger.get(event_id, "iapt-core")
    assert row is not None and row.status == "retrying" and row.attempts == 0  # waiting is not failing
    assert [m["local_id"] for m in mesh.inbox(IAPT)] == [event_id]
    assert [m["local_id"] for m in mesh.outbox(GATEWAY)].count(event_id) == 1
    take(mesh, IAPT, message["message_id"])
    await eventually(lambda: _is(delivery_status(running_gateway, event_id, "iapt-core"), "delivered"), timeout=30)
    sent = await MeshSentLog(running_gateway.runtime.store).find(event_id, IAPT)
    assert sent is not None and sent.message_id == message["message_id"] and sent.status == "acknowledged"
    async with running_gateway.client() as client:
        [trace] = (await client.get(f"/monitor/api/trace/{referral_id}")).json()["referrals"]
    titles = [(h["title"], h["outcome"]) for h in trace["hops"]]
    assert titles[0] == ("Received by the mesh adapter from NPH01", "ok")
    assert ("Waiting for iapt-core to download it (mesh)", "warn") in titles
    assert titles[-1] == ("Delivered to iapt-core (mesh)", "ok")
    receipt = dict(trace["hops"][-1]["facts"])["receipt"]
    assert receipt.startswith(f"MESH {message['message_id']} downloaded by {IAPT}")


@pytest.fixture
def closed_receiver(gateway_settings: Settings, tmp_path: Path) -> Settings:
    """The IAPT service's directory endpoint is a mailbox nobody reads: MESH reports it undeliverable."""
    schemas = schemas_with_mesh(tmp_path / "schemas-closed", iapt_mailbox=CLOSED)
    return gateway_settings.model_copy(update={"schemas_dir": schemas})


async def test_undeliverable_message_is_sent_again_then_dead_lettered(mesh: Sandbox, closed_receiver: Settings) -> None:
    gateway = await serve(closed_receiver)
    try:
        await gateway.runtime.delivery.joined()
        referral_id, _ = await referral_in(gateway, mesh)
        await eventually(lambda: _dead_lettered(gateway, referral_id), timeout=40, what="the delivery dead-lettered")
        attempts = [m for m in mesh.outbox(GATEWAY) if m["recipient"] == CLOSED]
        assert len(attempts) == closed_receiver.delivery.max_attempts  # one MESH message per attempt
        assert {m["status"].lower() for m in attempts} == {"undeliverable"}
        assert len({m["local_id"] for m in attempts}) == 1  # each one the same event
    finally:
        await shutdown(gateway)


async def test_closed_loop_physio_referral_to_iapt_and_its_task_back_to_the_partner_mailbox(
    running_gateway: RunningGateway, mesh: Sandbox
) -> None:
    await running_gateway.runtime.delivery.joined()
    referral_id, _ = await referral_in(running_gateway, mesh)
    [message] = await arrived(mesh, IAPT, "BARS_REFERRAL")
    take(mesh, IAPT, message["message_id"])
    for status in ("accepted", "in-progress"):
        answer = business_answer(referral_id, status)
        with mesh.mailbox(IAPT) as client:
            client.send_message(GATEWAY, json.dumps(answer).encode(), workflow_id="BARS_REFERRAL_ACK")
        changes = await arrived(mesh, PHYSIO, "BARS_REFERRAL_ACK", count=1)
        entries = json.loads(changes[0]["body"])["entry"]
        [task] = [e["resource"] for e in entries if e["resource"]["resourceType"] == "Task"]
        assert task["status"] == status
        assert task["focus"]["reference"] == f"ServiceRequest/{referral_id}"
        take(mesh, PHYSIO, changes[0]["message_id"])
    stored_task = await running_gateway.runtime.status.tasks.for_referral(referral_id)
    assert stored_task is not None and stored_task.status == "in-progress"
    assert mesh.inbox(IAPT) == [] and mesh.inbox(GATEWAY) == []


def business_answer(referral_id: str, status: str) -> dict[str, Any]:
    """The IAPT service's BaRS servicerequest-response: its Task, naming our referral id."""
    return demo.task_answer(referral_id, status)


async def _is(value: Any, expected: str) -> bool:
    return bool(await value == expected)


async def _retried(gateway: RunningGateway, referral_id: str) -> bool:
    history = await gateway.runtime.store.history(referral_id)
    waits = [h for h in history if h.step == "delivery-failed" and "not yet downloaded" in str(h.detail["error"])]
    return len(waits) >= 2


async def _dead_lettered(gateway: RunningGateway, referral_id: str) -> bool:
    history = await gateway.runtime.store.history(referral_id)
    return any(h.step == "dead-lettered" for h in history)


async def test_a_receivers_refusal_of_the_referral_rejects_its_task_and_the_referrer_hears_why(
    running_gateway: RunningGateway, mesh: Sandbox
) -> None:
    """The IAPT service answers the referral with a BaRS response whose code is fatal-error (as the
    gateway itself refuses): the referral's Task is rejected with its reasons, back to the partner."""
    await running_gateway.runtime.delivery.joined()
    referral_id, _ = await referral_in(running_gateway, mesh)
    [message] = await arrived(mesh, IAPT, "BARS_REFERRAL")
    take(mesh, IAPT, message["message_id"])
    bundle_id = json.loads(message["body"])["id"]
    refusal = InvalidReferral("no consent recorded", Issue("consent missing", "ServiceRequest.supportingInfo"))
    with mesh.mailbox(IAPT) as client:
        answer = messages.bars_refusal("bars-json", bundle_id, refusal)
        client.send_message(GATEWAY, answer, workflow_id="BARS_REFERRAL_ACK")
    [change] = await arrived(mesh, PHYSIO, "BARS_REFERRAL_ACK")
    entries = json.loads(change["body"])["entry"]
    task = next(e["resource"] for e in entries if e["resource"]["resourceType"] == "Task")
    assert task["status"] == "rejected"
    assert "refused by NQ1IAMB1: consent missing" in task["statusReason"]["text"]
    stored_task = await running_gateway.runtime.status.tasks.for_referral(referral_id)
    assert stored_task is not None and stored_task.status == "rejected"
