"""The MESH channel's pure parts, no I/O: settings, the directory's MESH endpoints, what a file for a
receiver looks like in each payload, and what MESH's tracking means."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from adapters.hl7v2 import tables as hl7_tables
from adapters.inbound.mesh import messages as inbound
from adapters.outbound import mesh as outbound
from adapters.outbound.hl7v2_mllp import control_id
from adapters.outbound.receipt import Outgoing
from gateway.delivery.retry import RetryPolicy
from gateway.errors import DeliveryFailed, NotYetTaken
from gateway.mesh import demo
from gateway.routing.directory import load_directory
from gateway.settings import SCHEMAS_DIR, DeliverySettings, MeshSettings, Settings
from tests.samples import SAMPLES, service_request

HL7 = hl7_tables.load(SCHEMAS_DIR)


def test_mesh_is_off_unless_a_url_and_a_mailbox_are_set() -> None:
    assert not Settings().mesh.enabled
    assert not MeshSettings(url="http://127.0.0.1:8700").enabled


def test_mesh_mailboxes_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    mailboxes = [{"id": "X26GW001", "password": "secret", "workflows": [{"id": "BARS_REFERRAL", "format": "bars-xml"}]}]
    monkeypatch.setenv("MESH_URL", "https://msg.intspineservices.nhs.uk")
    monkeypatch.setenv("MESH_MAILBOXES", json.dumps(mailboxes))
    monkeypatch.setenv("MESH_POLL_INTERVAL_S", "120")
    mesh = Settings().mesh
    assert mesh.enabled and mesh.poll_interval_s == 120
    assert mesh.sender.id == "X26GW001" and mesh.sender.password.get_secret_value() == "secret"
    assert "secret" not in repr(mesh)
    workflows = [(w.id, w.format, w.ack) for w in mesh.sender.workflows]
    assert workflows == [("BARS_REFERRAL", "bars-xml", "BARS_REFERRAL_ACK")]


def test_mesh_send_from_must_name_one_of_the_mailboxes() -> None:
    with pytest.raises(ValidationError, match="MESH_SEND_FROM"):
        MeshSettings(url="http://x", mailboxes=[{"id": "A", "password": "p"}], send_from="B")  # type: ignore[list-item]


def test_directory_reads_a_mesh_endpoint_mailbox_workflow_and_payload(tmp_path: Path) -> None:
    directory = load_directory(demo.schemas(tmp_path / "schemas"))
    endpoint = directory.endpoint("iapt-core")
    assert (endpoint.format, endpoint.address, endpoint.workflow, endpoint.payload) == (
        "mesh",
        "NQ1IAMB1",
        "BARS_REFERRAL",
        "bars-json",
    )
    assert directory.mesh_owners("NQ1IAMB1") == {"NQ1IA"}
    assert directory.mesh_owners("NPH01MB1") == {"NPH01"}
    assert directory.mesh_lookups() == set()


def test_directory_knows_mesh_endpoints_found_by_ods_lookup(tmp_path: Path) -> None:
    endpoints = {"NQ1IA": demo.mesh_endpoint("NQ1IA", "ods:NQ1IA", "HL7V2_REFERRAL", "x-application/hl7-v2+er7")}
    directory = load_directory(demo.schemas(tmp_path / "schemas", endpoints))
    assert directory.endpoint("iapt-core").mesh_mailbox is None
    assert directory.mesh_lookups() == {("NQ1IA", "NQ1IA", "HL7V2_REFERRAL")}


def test_directory_refuses_a_mesh_endpoint_without_a_workflow(tmp_path: Path) -> None:
    endpoint = demo.mesh_endpoint("NQ1IA", "NQ1IAMB1", "BARS_REFERRAL")
    endpoint["header"] = []
    with pytest.raises(ValueError, match="Endpoint/NQ1IA-mesh needs a 'Mex-WorkflowID"):
        load_directory(demo.schemas(tmp_path / "schemas", {"NQ1IA": endpoint}))


def outgoing() -> Outgoing:
    sr = {**service_request(), "id": "3f8a1a44-7f6a-4c1e-9b4e-2d1f0e6b5a01"}
    return Outgoing(json.dumps(sr), "event-1", "new", "corr-1", "2026-12-03T10:00:00+00:00")


def test_a_bars_file_is_the_same_message_in_json_and_in_xml() -> None:
    event = outgoing()
    as_json = outbound.encode(event, "bars-json", "NQ1IAMB1", HL7)
    as_xml = outbound.encode(event, "bars-xml", "NQ1IAMB1", HL7)
    assert (as_json.content_type, as_xml.content_type) == ("application/fhir+json", "application/fhir+xml")
    from_json = Bundle.model_validate_json(as_json.body)
    from_xml = Bundle.model_validate_xml(as_xml.body)
    assert from_json.model_dump() == from_xml.model_dump()
    assert from_json.id == "event-1" and as_json.filename == "event-1.json"


def test_an_hl7v2_file_carries_a_control_id_derived_from_the_event() -> None:
    file = outbound.encode(outgoing(), "hl7v2", "NQ1IAMB1", HL7)
    msh = file.body.decode().split("\r")[0].split("|")
    assert msh[9] == control_id("event-1") and file.filename == f"{control_id('event-1')}.hl7"


def test_tracking_acknowledged_is_delivered_undeliverable_fails_and_accepted_is_not_yet() -> None:
    receipt = outbound.tracked({"message_id": "M1", "status": "acknowledged"}, "NQ1IAMB1")
    assert receipt is not None and "M1 downloaded by NQ1IAMB1" in receipt.summary
    assert outbound.tracked({"message_id": "M1", "status": "accepted"}, "NQ1IAMB1") is None
    with pytest.raises(DeliveryFailed) as failed:
        outbound.tracked({"message_id": "M1", "status": "undeliverable", "status_description": "expired"}, "X")
    assert failed.value.retriable and "expired" in failed.value.message


def test_an_hl7v2_file_with_lf_line_ends_is_read_as_segments() -> None:
    text = (SAMPLES / "hl7v2" / "ref-i12-iapt-low-mood.hl7").read_bytes().replace(b"\r", b"\r\n")
    message = inbound.hl7_message(text)
    assert [s.name for s in message.segments][:2] == ["MSH", "RF1"]


def test_the_message_key_is_the_sender_mailbox_and_mesh_message_id() -> None:
    assert inbound.message_key("NPH01MB1", "ABC123") == "mesh:NPH01MB1:ABC123"


def status_change() -> Outgoing:
    referral = outgoing()
    sr = json.loads(referral.resource)
    task = {
        "resourceType": "Task",
        "id": "7a1c0f5e-2b8d-4c3e-9f1a-6d5e4c3b2a10",
        "status": "accepted",
        "intent": "order",
        "focus": {"reference": f"ServiceRequest/{sr['id']}"},
        "requester": sr["requester"],
        "owner": sr["performer"][0],
    }
    return Outgoing(json.dumps(task), "event-2", "update", "corr-1", "2026-12-03T10:05:00+00:00", referral.resource)


def test_a_status_change_goes_back_as_a_bars_response_with_the_task_or_as_rri_i12() -> None:
    change = status_change()
    bars = Bundle.model_validate_json(outbound.encode(change, "bars-json", "NPH01MB1", HL7).body)
    header, task = (e.resource for e in bars.entry or [])
    assert header.eventCoding.code == "servicerequest-response" and task.status == "accepted"
    segments = outbound.encode(change, "hl7v2", "NPH01MB1", HL7).body.decode().split("\r")
    assert segments[0].split("|")[8].startswith("RRI^I12")
    assert "NTE|1|P|Referral status: accepted" in segments


def test_a_bars_body_in_the_other_fhir_format_is_read_as_what_it_is(caplog: pytest.LogCaptureFixture) -> None:
    bundle = demo.physio_referral()
    xml = inbound.xml_bytes(Bundle.model_validate(bundle))
    referral = inbound.bars_referral(xml, "bars-json", "mesh:NPH01MB1:M1", "corr-1")
    assert referral.channel == "mesh" and referral.message_id == "mesh:NPH01MB1:M1"
    assert "read as that" in caplog.text


def test_a_delivery_waiting_in_a_mesh_inbox_is_looked_at_again_after_the_longest_back_off() -> None:
    settings = DeliverySettings(backoff_base_s=5, backoff_max_s=900, backoff_jitter=0, max_attempts=8)
    at = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    assert RetryPolicy(settings).waiting(at).due == at + timedelta(seconds=640)  # 5·2⁷, under the cap
    assert not NotYetTaken("in the inbox").counts_as_attempt and DeliveryFailed("down").counts_as_attempt
