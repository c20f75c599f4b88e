"""The other MESH formats, against a running mesh-sandbox: a BaRS Bundle in FHIR XML taken in, the
referral sent on as an HL7 v2 REF^I12 file to a mailbox found by MESH's endpoint look-up (ODS code and
workflow), the receiver's RRI^I12 on the workflow's `_ACK` moving the Task, and an XML refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from adapters.hl7v2 import encode as hl7v2
from adapters.hl7v2 import tables as hl7_tables
from adapters.inbound.mesh.messages import xml_bytes
from adapters.outbound.hl7v2_mllp import control_id
from gateway.mesh import demo
from gateway.settings import SCHEMAS_DIR, MeshWorkflow, Settings
from tests.conftest import RunningGateway, serve, shutdown
from tests.mesh.sandbox import GATEWAY, GP, IAPT, PHYSIO, Sandbox
from tests.mesh.test_mesh_inbound import acknowledged, send, stored, ubrn_of
from tests.mesh.test_mesh_outbound import arrived, take
from tests.samples import SAMPLES, valid_nhs_number

HL7 = hl7_tables.load(SCHEMAS_DIR)
FHIR_XML = "application/fhir+xml"


@pytest.fixture
def gateway_settings(gateway_settings: Settings, tmp_path: Path) -> Settings:
    """IAPT takes HL7 v2 over MESH, its mailbox found by look-up; the gateway also takes BaRS XML."""
    endpoints = {
        "NQ1IA": demo.mesh_endpoint("NQ1IA", "ods:NQ1IA", "HL7V2_REFERRAL", "x-application/hl7-v2+er7"),
        "NPH01": demo.mesh_endpoint("NPH01", PHYSIO, "BARS_REFERRAL_ACK"),
    }
    mailbox = gateway_settings.mesh.mailboxes[0]
    xml = mailbox.model_copy(
        update={"workflows": [*mailbox.workflows, MeshWorkflow(id="BARS_REFERRAL_XML", format="bars-xml")]}
    )
    mesh = gateway_settings.mesh.model_copy(update={"mailboxes": [xml]})
    schemas = demo.schemas(tmp_path / "schemas-hl7", endpoints)
    return gateway_settings.model_copy(update={"schemas_dir": schemas, "mesh": mesh})


def as_xml(bundle: dict[str, Any]) -> bytes:
    return xml_bytes(Bundle.model_validate(bundle))


async def test_bars_xml_in_hl7v2_out_by_endpoint_lookup_and_an_rri_i12_answer_moves_the_task(
    running_gateway: RunningGateway, mesh: Sandbox
) -> None:
    await running_gateway.runtime.delivery.joined()
    bundle = demo.physio_referral()
    message_id = send(mesh, PHYSIO, as_xml(bundle), "BARS_REFERRAL_XML", FHIR_XML)
    await acknowledged(mesh, PHYSIO, message_id)
    [referral] = await stored(running_gateway, ubrn_of(bundle))

    [file] = await arrived(mesh, IAPT, "HL7V2_REFERRAL")  # NQ1IA's mailbox, as MESH's look-up gave it
    event_id = file["local_id"]
    segments = file["body"].decode().split("\r")
    msh = segments[0].split("|")
    assert msh[8] == "REF^I12^REF_I12" and msh[9] == control_id(event_id)
    assert any(s.startswith("RF1") and referral.id in s for s in segments)
    take(mesh, IAPT, file["message_id"])

    sr = json.loads(referral.resource)
    answer = hl7v2.rri_i12({"status": "accepted"}, sr, "IAPT-1", "2026-12-03T10:00:00+00:00", HL7)
    with mesh.mailbox(IAPT) as client:
        answered = client.send_message(GATEWAY, answer.encode(), workflow_id="HL7V2_REFERRAL_ACK")
    await acknowledged(mesh, IAPT, answered)
    [change] = await arrived(mesh, PHYSIO, "BARS_REFERRAL_ACK")
    task = json.loads(change["body"])["entry"][1]["resource"]
    assert task["status"] == "accepted"
    assert mesh.inbox(IAPT) == []  # the RRI^I12 was taken: no refusal went back


async def test_refused_bars_xml_message_is_answered_in_xml(running_gateway: RunningGateway, mesh: Sandbox) -> None:
    bundle = demo.physio_referral()
    bundle["entry"][0]["resource"]["reason"]["coding"][0]["code"] = "not-a-reason"
    message_id = send(mesh, PHYSIO, as_xml(bundle), "BARS_REFERRAL_XML", FHIR_XML)
    await acknowledged(mesh, PHYSIO, message_id)
    [answer] = await arrived(mesh, PHYSIO, "BARS_REFERRAL_XML_ACK")
    assert answer["content_type"] == FHIR_XML
    response = Bundle.model_validate_xml(answer["body"])
    outcome = response.entry[1].resource
    assert outcome.issue[0].expression == ["MessageHeader.reason"]


async def test_an_answer_from_a_mailbox_that_does_not_own_the_task_is_refused_and_shown_not_answered(
    running_gateway: RunningGateway, mesh: Sandbox
) -> None:
    bundle = demo.physio_referral()
    message_id = send(mesh, PHYSIO, json.dumps(bundle).encode(), "BARS_REFERRAL")
    await acknowledged(mesh, PHYSIO, message_id)
    [referral] = await stored(running_gateway, ubrn_of(bundle))
    forged = demo.task_answer(referral.id, "completed")
    message_id = send(mesh, PHYSIO, json.dumps(forged).encode(), "BARS_REFERRAL_ACK")
    await acknowledged(mesh, PHYSIO, message_id)
    task = await running_gateway.runtime.status.tasks.for_referral(referral.id)
    assert task is not None and task.status == "requested"
    # an answer is not answered (two systems would answer each other's refusals for ever): the
    # dashboard says what was not taken
    assert [m for m in mesh.inbox(PHYSIO) if m["workflow_id"] == "BARS_REFERRAL_ACK"] == []
    async with running_gateway.client() as client:
        [row] = (await client.get("/monitor/api/overview")).json()["mesh"]
    assert row["refused"] == 1 and "does not belong" in row["last_error"] and message_id in row["last_error"]


@pytest.fixture
def gp_by_mesh(gateway_settings: Settings, tmp_path: Path) -> Settings:
    """The GP practice A81001 hears its referrals' status over MESH, as HL7 v2 RRI^I12 files."""
    endpoints = {
        "NQ1IA": demo.mesh_endpoint("NQ1IA", IAPT, "BARS_REFERRAL"),
        "A81001": demo.mesh_endpoint("A81001", GP, "HL7V2_REFERRAL_ACK", "x-application/hl7-v2+er7"),
    }
    return gateway_settings.model_copy(update={"schemas_dir": demo.schemas(tmp_path / "schemas-gp", endpoints)})


async def test_an_hl7v2_referrer_hears_its_task_change_over_mesh_as_an_rri_i12_file(
    gp_by_mesh: Settings, mesh: Sandbox
) -> None:
    gateway = await serve(gp_by_mesh)
    try:
        await gateway.runtime.delivery.joined()
        nhs = valid_nhs_number()
        text = (SAMPLES / "hl7v2" / "ref-i12-iapt-low-mood.hl7").read_text().replace("B82005", "A81001")
        sent = send(mesh, GP, text.replace("9434765870", nhs).encode(), "HL7V2_REFERRAL", "x-application/hl7-v2+er7")
        await acknowledged(mesh, GP, sent)
        [referral] = await gateway.runtime.store.search({"nhs_number": nhs})
        assert referral.requester == "A81001"
        [delivered] = await arrived(mesh, IAPT, "BARS_REFERRAL")
        take(mesh, IAPT, delivered["message_id"])
        with mesh.mailbox(IAPT) as client:
            answer = json.dumps(demo.task_answer(referral.id, "accepted")).encode()
            client.send_message(GATEWAY, answer, workflow_id="BARS_REFERRAL_ACK")
        files = await arrived(mesh, GP, "HL7V2_REFERRAL_ACK", count=2)  # the AA, then the RRI^I12
        rri = next(f for f in files if b"RRI^I12" in f["body"])
        segments = rri["body"].decode().split("\r")
        assert segments[0].split("|")[8].startswith("RRI^I12")
        assert "NTE|1|P|Referral status: accepted" in segments
    finally:
        await shutdown(gateway)
