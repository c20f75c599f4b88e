"""MESH in, against a running mesh-sandbox: what a partner's mailbox sends the gateway's mailbox is
taken by the same intake as the other channels, acknowledged to MESH only once committed, and a
refusal goes back to the sender on the workflow's `_ACK` with every error. Each test checks what the
sandbox holds afterwards (the message's status, the answers in the sender's inbox)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from gateway.mesh import demo
from gateway.settings import Settings
from tests.conftest import RunningGateway
from tests.delivery.receivers import eventually
from tests.mesh.sandbox import GATEWAY, GP, PHYSIO, Sandbox
from tests.samples import SAMPLES, valid_nhs_number

FHIR_JSON = "application/fhir+json"


@pytest.fixture
def gateway_settings(gateway_settings: Settings) -> Settings:
    """Only the inbound side: nothing is delivered onwards (tests/mesh/test_mesh_outbound.py does that)."""
    delivery = gateway_settings.delivery.model_copy(update={"enabled": False})
    return gateway_settings.model_copy(update={"delivery": delivery})


def physio_referral() -> dict[str, Any]:
    return demo.physio_referral()


def ubrn_of(bundle: dict[str, Any]) -> str:
    return str(bundle["entry"][1]["resource"]["identifier"][0]["value"])


def send(mesh: Sandbox, mailbox: str, body: bytes, workflow: str, content_type: str = FHIR_JSON) -> str:
    with mesh.mailbox(mailbox) as client:
        return str(client.send_message(GATEWAY, body, workflow_id=workflow, content_type=content_type))


def status_at_mesh(mesh: Sandbox, mailbox: str, message_id: str) -> str:
    with mesh.mailbox(mailbox) as client:
        return str(client.track_message(message_id)["status"])


async def acknowledged(mesh: Sandbox, mailbox: str, message_id: str) -> None:
    await eventually(
        lambda: status_at_mesh(mesh, mailbox, message_id) == "acknowledged",
        timeout=20,
        what=f"MESH message {message_id} acknowledged",
    )


async def stored(gateway: RunningGateway, ubrn: str) -> list[Any]:
    return await gateway.runtime.store.search({"identifier_value": ubrn})


async def test_bars_message_from_a_partner_mailbox_is_accepted_then_acknowledged(
    running_gateway: RunningGateway, mesh: Sandbox
) -> None:
    bundle = physio_referral()
    message_id = send(mesh, PHYSIO, json.dumps(bundle).encode(), "BARS_REFERRAL")
    await acknowledged(mesh, PHYSIO, message_id)
    [referral] = await stored(running_gateway, ubrn_of(bundle))
    assert referral.channel == "mesh"
    assert referral.topic == "referrals.iapt"
    history = await running_gateway.runtime.store.history(referral.id)
    received = next(h for h in history if h.step == "received")
    assert received.detail["message_id"] == f"mesh:{PHYSIO}:{message_id}"
    assert mesh.inbox(PHYSIO) == []  # accepted: no refusal comes back
    assert mesh.inbox(GATEWAY) == []


async def test_hl7v2_ref_i12_file_from_the_gp_mailbox_is_accepted_answered_aa_then_acknowledged(
    running_gateway: RunningGateway, mesh: Sandbox
) -> None:
    nhs = valid_nhs_number()
    text = (SAMPLES / "hl7v2" / "ref-i12-iapt-low-mood.hl7").read_text().replace("9434765870", nhs)
    ubrn = f"S1{nhs}"
    text = text.replace("S1REF88120042", ubrn)
    message_id = send(mesh, GP, text.encode(), "HL7V2_REFERRAL", "x-application/hl7-v2+er7")
    await acknowledged(mesh, GP, message_id)
    found = await running_gateway.runtime.store.search({"nhs_number": nhs})
    assert [r.channel for r in found] == ["mesh"]
    assert ubrn in found[0].resource
    [answer] = mesh.inbox(GP)  # the AA, sent after the commit, as over MLLP
    assert answer["workflow_id"] == "HL7V2_REFERRAL_ACK" and answer["local_id"] == message_id
    msa = next(s for s in answer["body"].decode().split("\r") if s.startswith("MSA"))
    assert msa.split("|")[1:3] == ["AA", "S1-8812-0042"]


async def test_refused_bars_message_is_answered_on_the_ack_workflow_with_every_error_then_acknowledged(
    running_gateway: RunningGateway, mesh: Sandbox
) -> None:
    bundle = physio_referral()
    header = bundle["entry"][0]["resource"]
    header["reason"]["coding"][0]["code"] = "not-a-reason"
    header["focus"][0]["reference"] = "urn:uuid:nowhere"
    message_id = send(mesh, PHYSIO, json.dumps(bundle).encode(), "BARS_REFERRAL")
    await acknowledged(mesh, PHYSIO, message_id)
    [answer] = mesh.inbox(PHYSIO)
    assert answer["workflow_id"] == "BARS_REFERRAL_ACK"
    assert answer["local_id"] == message_id
    response = Bundle.model_validate_json(answer["body"])
    head, outcome = (e.resource for e in response.entry or [])
    assert head.response.code == "fatal-error" and head.response.identifier == message_id
    assert outcome.issue[0].expression == ["MessageHeader.reason"]
    assert await stored(running_gateway, ubrn_of(bundle)) == []


async def test_refused_hl7v2_file_is_answered_with_an_ack_carrying_err_segments(
    running_gateway: RunningGateway, mesh: Sandbox
) -> None:
    text = (SAMPLES / "hl7v2" / "ref-i12-iapt-low-mood.hl7").read_text()
    without_referral = "\n".join(s for s in text.splitlines() if not s.startswith(("RF1", "PRD")))
    message_id = send(mesh, GP, without_referral.encode(), "HL7V2_REFERRAL", "x-application/hl7-v2+er7")
    await acknowledged(mesh, GP, message_id)
    [answer] = mesh.inbox(GP)
    assert answer["workflow_id"] == "HL7V2_REFERRAL_ACK"
    segments = answer["body"].decode().split("\r")
    msa = next(s for s in segments if s.startswith("MSA"))
    assert msa.split("|")[1] in ("AE", "AR") and msa.split("|")[2] == "S1-8812-0042"
    assert any(s.startswith("ERR") for s in segments)


async def test_message_on_a_workflow_the_mailbox_does_not_take_is_refused(
    running_gateway: RunningGateway, mesh: Sandbox
) -> None:
    message_id = send(mesh, PHYSIO, json.dumps(physio_referral()).encode(), "SOME_OTHER_FLOW")
    await acknowledged(mesh, PHYSIO, message_id)
    [answer] = mesh.inbox(PHYSIO)
    assert answer["workflow_id"] == "SOME_OTHER_FLOW_ACK"
    assert b"takes no workflow" in answer["body"]


async def test_chunked_message_is_reassembled_before_the_intake(
    running_gateway: RunningGateway, mesh: Sandbox, tmp_path: Path
) -> None:
    bundle = physio_referral()
    bundle["entry"][1]["resource"]["note"] = [{"text": "Background. " * 400}]  # ~5 kB: five 1 kB chunks
    body = json.dumps(bundle).encode()
    with mesh.mailbox(PHYSIO) as client:
        message_id = client.send_message(GATEWAY, body, workflow_id="BARS_REFERRAL", max_chunk_size=1024)
    assert mesh.message(message_id)["chunk_count"] == len(body) // 1024 + 1
    await acknowledged(mesh, PHYSIO, message_id)
    [referral] = await stored(running_gateway, ubrn_of(bundle))
    assert json.loads(referral.resource)["note"][0]["text"] == "Background. " * 400


async def test_a_message_fetched_again_makes_no_second_referral(running_gateway: RunningGateway, mesh: Sandbox) -> None:
    """The poller's two steps by hand: taken (committed) twice, as after a stop before the acknowledgement."""
    mesh_channel = running_gateway.runtime.mesh
    assert mesh_channel is not None
    await mesh_channel.poller.stop()
    bundle = physio_referral()
    message_id = send(mesh, PHYSIO, json.dumps(bundle).encode(), "BARS_REFERRAL")
    client = mesh_channel.clients[GATEWAY]
    mailbox = mesh_channel.settings.mailboxes[0]
    inbound = mesh_channel.poller._inbound
    first = await inbound.take(mailbox, await client.retrieve(message_id))
    again = await inbound.take(mailbox, await client.retrieve(message_id))
    assert (first.outcome, again.outcome) == ("accepted", "duplicate")
    assert first.referral_id == again.referral_id
    assert len(await stored(running_gateway, ubrn_of(bundle))) == 1
    assert status_at_mesh(mesh, PHYSIO, message_id) == "accepted"  # not acknowledged by `take`


async def test_dashboard_shows_each_mailbox_last_poll_waiting_errors_and_oldest_unacknowledged(
    running_gateway: RunningGateway, mesh: Sandbox
) -> None:
    good = send(mesh, PHYSIO, json.dumps(physio_referral()).encode(), "BARS_REFERRAL")
    bad = send(mesh, PHYSIO, b"{not json", "BARS_REFERRAL")
    await acknowledged(mesh, PHYSIO, good)
    await acknowledged(mesh, PHYSIO, bad)
    async with running_gateway.client() as client:
        overview = (await client.get("/monitor/api/overview")).json()
        page = (await client.get("/monitor")).text
    [row] = overview["mesh"]
    assert row["mailbox"] == GATEWAY and row["workflows"] == ["BARS_REFERRAL", "HL7V2_REFERRAL"]
    assert (row["taken"], row["refused"], row["waiting"], row["oldest_unacknowledged"]) == (2, 1, 0, None)
    assert row["last_poll"] is not None
    cells = overview["cells"]
    assert cells[f"mesh {GATEWAY} taken"] == "2" and cells[f"mesh {GATEWAY} errors"] == "0"
    assert "MESH mailboxes" in page and f'data-k="mesh {GATEWAY} waiting"' in page
    adapters = {(a["direction"], a["adapter"]): a for a in overview["adapters"]}
    assert adapters[("in", "mesh")]["accepted"] >= 1  # this process's counters, every test so far


async def test_a_message_left_unacknowledged_shows_as_waiting_with_its_age(
    running_gateway: RunningGateway, mesh: Sandbox
) -> None:
    """MESH holds the acknowledgement, then drops it: meanwhile the message is waiting and the oldest
    not acknowledged; the failure is counted, and the next poll takes it again and acknowledges it."""
    mesh.stall_file.touch()
    bundle = physio_referral()
    message_id = send(mesh, PHYSIO, json.dumps(bundle).encode(), "BARS_REFERRAL")
    channel = running_gateway.runtime.mesh
    assert channel is not None
    state = channel.poller.states[GATEWAY]
    await eventually(lambda: _committed(running_gateway, ubrn_of(bundle)), timeout=10, what="the commit")
    await eventually(lambda: mesh.holding_an_acknowledgement, timeout=10, what="the acknowledgement held")
    async with running_gateway.client() as client:
        row = (await client.get("/monitor/api/overview")).json()["mesh"][0]
    assert row["waiting"] == 1 and row["oldest_unacknowledged"] is not None
    mesh.stall_file.unlink()
    await eventually(lambda: state.errors >= 1, timeout=35, what="the dropped acknowledgement counted")
    await acknowledged(mesh, PHYSIO, message_id)  # the next poll takes it again and acknowledges it
    assert state.first_seen == {} and state.last_error and "acknowledge" in state.last_error


async def _committed(gateway: RunningGateway, ubrn: str) -> bool:
    return bool(await stored(gateway, ubrn))


async def test_a_cancellation_is_taken_from_the_referrers_mailbox_only(
    running_gateway: RunningGateway, mesh: Sandbox
) -> None:
    bundle = physio_referral()
    await acknowledged(mesh, PHYSIO, send(mesh, PHYSIO, json.dumps(bundle).encode(), "BARS_REFERRAL"))
    cancel = json.loads(json.dumps(bundle))
    cancel["entry"][0]["resource"]["reason"]["coding"][0]["code"] = "delete"
    forged = send(mesh, GP, json.dumps(cancel).encode(), "BARS_REFERRAL")
    await acknowledged(mesh, GP, forged)
    [answer] = mesh.inbox(GP)
    assert answer["workflow_id"] == "BARS_REFERRAL_ACK" and b"does not belong" in answer["body"]
    [referral] = await stored(running_gateway, ubrn_of(bundle))
    assert referral.status == "active"
    await acknowledged(mesh, PHYSIO, send(mesh, PHYSIO, json.dumps(cancel).encode(), "BARS_REFERRAL"))
    [referral] = await stored(running_gateway, ubrn_of(bundle))
    assert referral.status == "entered-in-error" and mesh.inbox(PHYSIO) == []  # BaRS delete
