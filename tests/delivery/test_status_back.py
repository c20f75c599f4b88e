"""Status back to the referrer, piece by piece: the outbound adapters sending a Task change in each
format to a real demo receiver, the inbound RRI^I12 read as a proposed Task status (pure), and the
delivery spine leaving a status event with no referrer's service on the topic."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.hl7v2 import encode as hl7v2
from adapters.hl7v2 import parser
from adapters.hl7v2 import tables as hl7_tables
from adapters.hl7v2.header import read
from adapters.hl7v2.rri_i12 import to_status
from adapters.outbound import fhir_http, hl7v2_mllp
from adapters.outbound.receipt import Outgoing
from gateway.bus import events
from gateway.canonical.task import initial_task
from gateway.delivery.outbound import Destination, Outbound
from gateway.demo_receiver import DemoReceiver
from gateway.errors import InvalidReferral
from gateway.settings import SCHEMAS_DIR, DeliverySettings
from tests.delivery.bench import bench
from tests.delivery.receivers import demo_receiver, eventually
from tests.samples import service_request

SENT_AT = "2026-11-23T10:00:00.000+00:00"
HL7 = hl7_tables.load(SCHEMAS_DIR)


def referral() -> dict[str, Any]:
    return {**service_request(), "id": str(uuid.uuid4())}


def status_event(sr: dict[str, Any], status: str, **task: Any) -> Outgoing:
    value = {**initial_task(sr, status), **task}
    return Outgoing(json.dumps(value), str(uuid.uuid4()), "update", "corr-1", SENT_AT, referral=json.dumps(sr))


@pytest.fixture
async def receiver() -> AsyncIterator[DemoReceiver]:
    async with demo_receiver() as running:
        yield running


@pytest.mark.parametrize("fmt", [fhir_http.REST, fhir_http.MESSAGING, hl7v2_mllp.FORMAT, "kafka"])
async def test_a_task_change_reaches_the_referrer_in_its_format(receiver: DemoReceiver, fmt: str) -> None:
    sr = referral()
    address = receiver.mllp_address if fmt == hl7v2_mllp.FORMAT else receiver.fhir_base_url
    outbound = Outbound(DeliverySettings(http_timeout_s=5, mllp_timeout_s=5), HL7)
    await outbound.start()
    try:
        sent = status_event(sr, "rejected", statusReason={"text": "Not suitable: see the letter"})
        receipt = await outbound.send(Destination("gp", fmt, address), sent)
    finally:
        await outbound.stop()
    heard = [(s.format, s.status, s.text) for s in receiver.ledger.statuses]
    if fmt == "kafka":
        assert heard == [] and "nothing to send" in receipt.summary
    else:
        assert heard == [(fmt, "rejected", "Not suitable: see the letter")]
        assert receiver.ledger.referrals == {}, "a status is not taken as a referral"


async def test_a_task_goes_back_by_the_referrals_business_identifier(receiver: DemoReceiver) -> None:
    sr = referral()
    async with httpx.AsyncClient() as client:
        await fhir_http.send_task(client, receiver.fhir_base_url, status_event(sr, "accepted"))
    ident = sr["identifier"][0]
    assert receiver.ledger.statuses[0].identity == f"{ident['system']}|{ident['value']}"


def test_the_gateways_own_rri_i12_reads_back_as_the_same_status() -> None:
    sr = referral()
    booked = {"status": "in-progress", "businessStatus": {"text": "Booked onto the course on 2026-12-07"}}
    message = parser.parse(hl7v2.rri_i12(booked, sr, "RR1", SENT_AT, HL7))
    report = to_status(message, read(message), HL7)
    assert (report.referral_id, report.status) == (sr["id"], "in-progress")
    assert (report.business_status, report.reason) == ("Booked onto the course on 2026-12-07", None)


def test_a_status_that_needs_a_reason_takes_the_notes_as_the_reason() -> None:
    sr = referral()
    text = hl7v2.rri_i12({"status": "cancelled", "statusReason": {"text": "Moved away"}}, sr, "RR2", SENT_AT, HL7)
    message = parser.parse(text)
    report = to_status(message, read(message), HL7)
    assert (report.status, report.reason, report.business_status) == ("cancelled", "Moved away", None)


def test_without_a_status_note_rf1_1_says_the_status_and_rf1_6_the_referral() -> None:
    text = hl7v2.rri_i12({"status": "accepted"}, referral(), "RR3", SENT_AT, HL7)
    segments = [s for s in text.split("\r") if s and not s.startswith("NTE")]
    rf1 = segments[1].split("|")
    rf1[11] = ""  # not the gateway's id: the business identifier must do
    segments[1] = "|".join(rf1)
    message = parser.parse("\r".join(segments))
    report = to_status(message, read(message), HL7)
    assert (report.status, report.referral_id, report.identifier is not None) == ("accepted", None, True)


def test_an_rri_i12_saying_no_status_is_refused() -> None:
    text = hl7v2.rri_i12({"status": "accepted"}, referral(), "RR4", SENT_AT, HL7)
    segments = [s for s in text.split("\r") if s and not s.startswith("NTE")]
    rf1 = segments[1].split("|")
    rf1[1] = ""
    segments[1] = "|".join(rf1)
    message = parser.parse("\r".join(segments))
    with pytest.raises(InvalidReferral, match="must say the referral's status"):
        to_status(message, read(message), HL7)


async def test_a_status_event_naming_no_referrer_stays_on_the_topic(broker_servers: str, tmp_path: Path) -> None:
    async with demo_receiver() as receiver, bench(broker_servers, tmp_path) as b:
        b.destinations.known["svc"] = Destination("svc", "fhir-rest", receiver.fhir_base_url)
        _, sr = await b.publish("svc")
        await eventually(lambda: len(receiver.ledger.hits) == 1, what="the referral delivered")
        task = initial_task(sr, "accepted")
        event = events.new_event(
            topic=b.topic,
            key=sr["subject"]["identifier"]["value"],
            event_type=events.TASK_UPDATED,
            source="urn:referral-gateway:fhir-rest:RX1PN",
            subject=f"Task/{task['id']}",
            value=json.dumps(task),
            correlation_id="corr-1",
            extra={"referral": f"ServiceRequest/{sr['id']}"},
        )
        await b.store.enqueue([event], sr["id"])
        b.relay.wake()
        handled = b.services[0].consumers[0]
        await eventually(lambda: handled.handled == 2, what="the status event read")
        steps = await b.steps(sr["id"])
    assert "dead-lettered" not in steps and receiver.ledger.statuses == []
    assert len(receiver.ledger.hits) == 1, "not sent to the referral's receiver either"
