"""The outbound adapters against a real demo receiver on loopback (FHIR over HTTP, HL7 v2 over MLLP),
and their pure parts: what leaves, and what each answer means."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from adapters.hl7v2 import tables as hl7_tables
from adapters.inbound.fhir import messaging
from adapters.outbound import fhir_http, hl7v2_mllp
from adapters.outbound.receipt import Outgoing
from gateway.canonical import systems
from gateway.demo_receiver import Behaviour, DemoReceiver
from gateway.errors import DeliveryFailed
from gateway.settings import SCHEMAS_DIR
from tests.delivery.receivers import demo_receiver
from tests.samples import service_request

HL7 = hl7_tables.load(SCHEMAS_DIR)


def outgoing(reason: str = "new", sr: dict[str, object] | None = None) -> Outgoing:
    resource = dict(sr or service_request())
    resource.setdefault("id", str(uuid.uuid4()))
    resource.setdefault("meta", {"versionId": "1", "lastUpdated": "2026-11-23T10:00:00+00:00"})
    return Outgoing(json.dumps(resource), str(uuid.uuid4()), reason, "corr-1", "2026-11-23T10:00:00.000+00:00")  # type: ignore[arg-type]


@pytest.fixture
async def receiver() -> AsyncIterator[DemoReceiver]:
    async with demo_receiver() as running:
        yield running


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- FHIR over HTTP ----------------------------------------------------------------------------


async def test_a_resent_referral_is_recognised_by_its_business_identifier(receiver: DemoReceiver) -> None:
    sent = outgoing()
    async with httpx.AsyncClient(timeout=5) as client:
        first = await fhir_http.send_service_request(client, receiver.fhir_base_url, sent)
        again = await fhir_http.send_service_request(client, receiver.fhir_base_url, sent)
    assert not first.duplicate and first.summary.startswith("201 ")
    assert again.duplicate and again.summary.startswith("200 ")
    assert len(receiver.ledger.referrals) == 1
    assert [h.outcome for h in receiver.ledger.hits] == ["created", "duplicate"]


async def test_an_update_is_a_conditional_put_on_the_same_identifier(receiver: DemoReceiver) -> None:
    sr = service_request()
    async with httpx.AsyncClient(timeout=5) as client:
        await fhir_http.send_service_request(client, receiver.fhir_base_url, outgoing("new", sr))
        await fhir_http.send_service_request(
            client, receiver.fhir_base_url, outgoing("update", {**sr, "priority": "urgent"})
        )
    (kept,) = receiver.ledger.referrals.values()
    assert kept.version == 2 and json.loads(kept.body)["priority"] == "urgent"


@pytest.mark.parametrize(("status", "retriable"), [(503, True), (500, True), (429, True), (400, False), (422, False)])
async def test_an_error_answer_says_whether_to_try_again(receiver: DemoReceiver, status: int, retriable: bool) -> None:
    receiver.ledger.behaviour = Behaviour(http_status=status)
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(DeliveryFailed) as failed:
            await fhir_http.send_service_request(client, receiver.fhir_base_url, outgoing())
    assert failed.value.retriable is retriable and str(status) in failed.value.message
    assert "told to fail" in failed.value.message, "the receiver's OperationOutcome reaches the reason"


async def test_a_slow_receiver_times_out_and_may_be_tried_again(receiver: DemoReceiver) -> None:
    receiver.ledger.behaviour = Behaviour(delay_s=1.0, times=1)
    async with httpx.AsyncClient(timeout=0.3) as client:
        with pytest.raises(DeliveryFailed) as failed:
            await fhir_http.send_service_request(client, receiver.fhir_base_url, outgoing())
    assert failed.value.retriable and "timed out" in failed.value.message


async def test_a_receiver_that_is_down_may_be_tried_again() -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        with pytest.raises(DeliveryFailed) as failed:
            await fhir_http.send_service_request(client, f"http://127.0.0.1:{closed_port()}/fhir", outgoing())
    assert failed.value.retriable and "could not reach" in failed.value.message


async def test_a_destination_that_is_not_a_url_is_not_retried() -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        with pytest.raises(DeliveryFailed) as failed:
            await fhir_http.send_service_request(client, "mllp://127.0.0.1:2575", outgoing())
    assert not failed.value.retriable


async def test_a_message_sent_twice_is_taken_once(receiver: DemoReceiver) -> None:
    sent = outgoing()
    async with httpx.AsyncClient(timeout=5) as client:
        first = await fhir_http.send_message(client, receiver.fhir_base_url, sent)
        again = await fhir_http.send_message(client, receiver.fhir_base_url, sent)
    assert not first.duplicate and again.duplicate, "a BaRS 409 duplicate means the receiver has it"
    assert len(receiver.ledger.referrals) == 1


def test_the_message_bundle_is_one_the_gateway_itself_accepts() -> None:
    sr = service_request()
    sent = outgoing("update", sr)
    bundle = fhir_http.message_bundle(sent, "https://receiver.example/fhir")
    inbound = messaging.from_bundle(json.dumps(bundle).encode(), "application/fhir+json", sent.event_id, "corr-1")
    assert inbound.reason == "update" and bundle["id"] == sent.event_id
    assert inbound.service_request.identifier[0].value == sr["identifier"][0]["value"]
    assert fhir_http.message_bundle(sent, "https://receiver.example/fhir") == bundle, "every copy reads the same"


def test_the_receiver_gets_our_referral_id_as_an_identifier_not_as_its_resource_id() -> None:
    sent = outgoing()
    resource = fhir_http.for_receiver(sent.resource)
    assert "id" not in resource and "meta" not in resource
    ours = json.loads(sent.resource)["id"]
    assert {"system": systems.REFERRAL_ID, "value": ours} in resource["identifier"]
    assert (
        fhir_http.identifier_search(resource)
        == f"{resource['identifier'][0]['system']}|{resource['identifier'][0]['value']}"
    )


# -- HL7 v2 over MLLP --------------------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[hl7v2_mllp.MllpClient]:
    async with hl7v2_mllp.MllpClient(connect_timeout_s=2, read_timeout_s=5) as running:
        yield running


async def test_ref_i12_over_mllp_is_delivered_when_the_ack_says_aa(
    receiver: DemoReceiver, client: hl7v2_mllp.MllpClient
) -> None:
    sent = outgoing()
    first = await hl7v2_mllp.send_ref_i12(client, receiver.mllp_address, sent, HL7)
    again = await hl7v2_mllp.send_ref_i12(client, receiver.mllp_address, sent, HL7)
    msh_10 = hl7v2_mllp.control_id(sent.event_id)
    assert first.summary == again.summary == f"AA MSA-2 {msh_10}"
    assert [h.outcome for h in receiver.ledger.hits] == ["created", "duplicate"]
    assert receiver.ledger.hits[0].request_id == msh_10


@pytest.mark.parametrize(("code", "retriable"), [("AE", True), ("AR", False)])
async def test_an_ae_is_retried_and_an_ar_is_not(
    receiver: DemoReceiver, client: hl7v2_mllp.MllpClient, code: str, retriable: bool
) -> None:
    receiver.ledger.behaviour = Behaviour(ack_code=code)
    with pytest.raises(DeliveryFailed) as failed:
        await hl7v2_mllp.send_ref_i12(client, receiver.mllp_address, outgoing(), HL7)
    assert failed.value.retriable is retriable and f"answered {code}" in failed.value.message


async def test_no_ack_in_time_may_be_tried_again(receiver: DemoReceiver) -> None:
    receiver.ledger.behaviour = Behaviour(delay_s=1.0, times=1)
    async with hl7v2_mllp.MllpClient(connect_timeout_s=2, read_timeout_s=0.3) as client:
        with pytest.raises(DeliveryFailed) as failed:
            await hl7v2_mllp.send_ref_i12(client, receiver.mllp_address, outgoing(), HL7)
    assert failed.value.retriable and "no ACK" in failed.value.message


async def test_an_mllp_receiver_that_is_down_may_be_tried_again(client: hl7v2_mllp.MllpClient) -> None:
    with pytest.raises(DeliveryFailed) as failed:
        await hl7v2_mllp.send_ref_i12(client, f"127.0.0.1:{closed_port()}", outgoing(), HL7)
    assert failed.value.retriable


def ack(code: str, answers: str, err: str = "") -> bytes:
    segments = ["MSH|^~\\&|RCV|RCVF|GW|GWF|20261123100000||ACK^I12^ACK|A1|P|2.5", f"MSA|{code}|{answers}|why"]
    return "\r".join([*segments, err] if err else segments).encode()


@pytest.mark.parametrize(
    ("err", "retriable"),
    [
        ("ERR|||207^Application internal error^HL70357|E", True),
        ("ERR|||101^Required field missing^HL70357|E", False),
        ("", True),
    ],
)
def test_an_ae_about_the_content_itself_is_not_retried(err: str, retriable: bool) -> None:
    with pytest.raises(DeliveryFailed) as failed:
        hl7v2_mllp.receipt(ack("AE", "X1", err), "X1")
    assert failed.value.retriable is retriable


def test_an_ack_to_another_message_is_not_a_delivery() -> None:
    with pytest.raises(DeliveryFailed, match="answers message OTHER"):
        hl7v2_mllp.receipt(ack("AA", "OTHER"), "X1")


def test_the_control_id_is_stable_and_fits_msh_10() -> None:
    event = str(uuid.uuid4())
    assert hl7v2_mllp.control_id(event) == hl7v2_mllp.control_id(event) != hl7v2_mllp.control_id(str(uuid.uuid4()))
    assert len(hl7v2_mllp.control_id(event)) <= 20


def test_before_v2_5_the_error_code_is_read_from_err_1() -> None:
    segments = ["MSH|^~\\&|RCV|RCVF|GW|GWF|20261123100000||ACK^I12|A1|P|2.4", "MSA|AE|X1|why"]
    answer = "\r".join([*segments, "ERR|PID^1^3^101&Required field missing&HL70357"]).encode()
    with pytest.raises(DeliveryFailed, match=r"AE \(101\)") as failed:
        hl7v2_mllp.receipt(answer, "X1")
    assert not failed.value.retriable


@pytest.mark.parametrize("answer", [b"HTTP/1.1 400 Bad Request", b"MSH|^~\\&|RCV|RCVF|GW|GWF|20261123||ACK|A1|P|2.5"])
def test_an_answer_that_is_not_an_ack_may_be_tried_again(answer: bytes) -> None:
    with pytest.raises(DeliveryFailed, match="not an HL7 ACK") as failed:
        hl7v2_mllp.receipt(answer, "X1")
    assert failed.value.retriable
