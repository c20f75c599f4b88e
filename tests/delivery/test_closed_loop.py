"""The closed loop through a running gateway: a referral is delivered to its receiver (a demo receiver
on loopback, which the service directory of this test points at), the receiver moves the referral's
Task, and each change comes back to the referrer in the referrer's own format:

    FHIR referrer (A81002, BaRS messaging)   Task moved by FHIR PATCH / PUT   → Task in a response message
    HL7 v2 referrer (A81001, MLLP)          Task moved by RRI^I12 over MLLP  → RRI^I12
    referrer not in the directory           Task moved on status-updates     → only on referrals.status

Real HTTP, MLLP and broker; the store is SQLite (delivery does not depend on the database).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hl7.client import MLLPClient

from adapters.hl7v2 import encode as hl7v2
from adapters.hl7v2 import tables as hl7_tables
from gateway.canonical import systems
from gateway.demo_receiver import DemoReceiver
from gateway.settings import SCHEMAS_DIR, DeliverySettings, Settings, StoreSettings
from tests.api.test_task_status import publish
from tests.conftest import RunningGateway
from tests.delivery.receivers import eventually, schemas_for_receiver
from tests.kafka_reader import read_events
from tests.samples import service_request

FHIR_JSON = {"content-type": "application/fhir+json"}
HL7 = hl7_tables.load(SCHEMAS_DIR)
PATCH = {"content-type": "application/json-patch+json"}


@pytest.fixture
def store_settings() -> StoreSettings:
    return StoreSettings()


@pytest.fixture
async def receiver() -> AsyncIterator[DemoReceiver]:
    demo = DemoReceiver()
    await demo.start()
    yield demo
    await demo.stop()


@pytest.fixture
def gateway_settings(gateway_settings: Settings, receiver: DemoReceiver, tmp_path: Path) -> Settings:
    """The test's gateway, with a service directory whose endpoints are this test's demo receiver."""
    schemas = schemas_for_receiver(tmp_path / "schemas", receiver.http_port, receiver.mllp_port)
    delivery = DeliverySettings(new_group_start="latest", backoff_base_s=0.2, backoff_max_s=1.0, max_attempts=3)
    return gateway_settings.model_copy(update={"schemas_dir": schemas, "delivery": delivery})


@pytest.fixture
async def gateway(running_gateway: RunningGateway) -> RunningGateway:
    await running_gateway.runtime.delivery.joined()
    return running_gateway


def referral_from(ods: str) -> dict[str, Any]:
    ref = {"identifier": {"system": systems.ODS_CODE, "value": ods}}
    return service_request(requester=ref)


async def send_referral(gateway: RunningGateway, sr: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Post the referral; returns it as stored and its Task id, once the receiver has it."""
    async with gateway.client() as client:
        created = await client.post("/fhir/ServiceRequest", content=json.dumps(sr), headers=FHIR_JSON)
        assert created.status_code == 201, created.text
        found = (await client.get("/fhir/Task", params={"focus": f"ServiceRequest/{created.json()['id']}"})).json()
    return created.json(), found["entry"][0]["resource"]["id"]


async def patch(client: httpx.AsyncClient, task_id: str, status: str, *extra: dict[str, Any]) -> httpx.Response:
    ops = [{"op": "replace", "path": "/status", "value": status}, *extra]
    response = await client.patch(f"/fhir/Task/{task_id}", content=json.dumps(ops), headers=PATCH)
    assert response.status_code == 200, response.text
    return response


def heard(receiver: DemoReceiver, ubrn: str) -> list[tuple[str, str, str | None]]:
    return [(s.format, s.status, s.text) for s in receiver.ledger.statuses if ubrn in s.identity]


@pytest.mark.parametrize(
    ("performer", "receiver_format"),
    [("RX1PN", "fhir-rest"), ("NQ1IA", "fhir-messaging"), ("NPH01", "hl7v2-mllp"), ("NPH02", "kafka")],
)
async def test_each_receiver_gets_the_referral_in_its_own_format(
    gateway: RunningGateway, receiver: DemoReceiver, performer: str, receiver_format: str
) -> None:
    sr = service_request(performer=[{"identifier": {"system": systems.ODS_CODE, "value": performer}}])
    stored, _ = await send_referral(gateway, sr)
    ledger = gateway.runtime.delivery.ledger

    async def delivered() -> bool:
        return [r.status for r in await ledger.for_referral(stored["id"])] == ["delivered"]

    await eventually(delivered, what=f"the referral delivered to {performer}")
    ubrn = sr["identifier"][0]["value"]
    got = [r.format for identity, r in receiver.ledger.referrals.items() if ubrn in identity]
    assert got == ([] if receiver_format == "kafka" else [receiver_format])


async def test_a_fhir_referrer_hears_each_move_of_its_task_as_fhir(
    gateway: RunningGateway, receiver: DemoReceiver
) -> None:
    sr, task_id = await send_referral(gateway, referral_from("A81002"))
    ubrn = sr["identifier"][0]["value"]
    await eventually(lambda: any(ubrn in r for r in receiver.ledger.referrals), what="the referral delivered")
    async with gateway.client() as client:
        await patch(client, task_id, "received")
        current = (await client.get(f"/fhir/Task/{task_id}")).json()
        put = await client.put(
            f"/fhir/Task/{task_id}", content=json.dumps({**current, "status": "accepted"}), headers=FHIR_JSON
        )
        assert put.status_code == 200, put.text
        booked = {"op": "add", "path": "/businessStatus", "value": {"text": "Booked onto the course on 2026-12-07"}}
        period = {"op": "add", "path": "/executionPeriod", "value": {"start": "2026-12-07"}}
        await patch(client, task_id, "in-progress", booked, period)
        await patch(client, task_id, "completed")
    await eventually(lambda: len(heard(receiver, ubrn)) == 4, what="four status changes back at the referrer")
    assert heard(receiver, ubrn) == [
        ("fhir-messaging", "received", None),
        ("fhir-messaging", "accepted", None),
        ("fhir-messaging", "in-progress", "Booked onto the course on 2026-12-07"),
        ("fhir-messaging", "completed", "Booked onto the course on 2026-12-07"),
    ]


async def test_an_hl7_referrer_hears_the_rejection_a_receiver_sent_by_rri_i12(
    gateway: RunningGateway, receiver: DemoReceiver
) -> None:
    sr, task_id = await send_referral(gateway, referral_from("A81001"))
    ubrn = sr["identifier"][0]["value"]
    answers = await asyncio.to_thread(
        send_mllp,
        gateway.settings.mllp.port,
        rri(sr, "received"),
        rri(sr, "rejected", statusReason={"text": "Not suitable: needs a spinal surgical opinion first"}),
        rri(sr, "accepted"),
    )
    assert [a[:2] for a in answers] == [("AA", "RR-received"), ("AA", "RR-rejected"), ("AE", "RR-accepted")]
    await eventually(lambda: len(heard(receiver, ubrn)) == 2, what="two status changes back at the referrer")
    assert heard(receiver, ubrn) == [
        ("hl7v2-mllp", "received", None),
        ("hl7v2-mllp", "rejected", "Not suitable: needs a spinal surgical opinion first"),
    ]
    async with gateway.client() as client:
        task = (await client.get(f"/fhir/Task/{task_id}")).json()
    assert task["status"] == "rejected" and task["statusReason"]["text"].startswith("Not suitable")


async def test_an_rri_i12_from_anyone_but_the_tasks_owner_is_refused(gateway: RunningGateway) -> None:
    sr, _ = await send_referral(gateway, referral_from("A81001"))
    text = rri(sr, "accepted").replace("|REFERRAL-GATEWAY|RX1PN|", "|REFERRAL-GATEWAY|NQ1IA|", 1)
    ((code, _, why),) = await asyncio.to_thread(send_mllp, gateway.settings.mllp.port, text)
    assert code == "AR" and "does not own" in why


async def test_a_referrer_outside_the_directory_reads_the_status_topic_only(
    gateway: RunningGateway, receiver: DemoReceiver
) -> None:
    sr, task_id = await send_referral(gateway, referral_from("B82005"))
    servers = gateway.settings.kafka.servers
    nhs = sr["subject"]["identifier"]["value"]
    async with gateway.client() as client:
        task = (await client.get(f"/fhir/Task/{task_id}")).json()
    moves: list[dict[str, Any]] = [
        {"status": "received"},
        {"status": "accepted"},
        {"status": "in-progress", "businessStatus": {"text": "Booked for 2026-12-07"}},
        {"status": "cancelled", "statusReason": {"text": "Patient moved out of area"}},
    ]
    for move in moves:
        await asyncio.to_thread(publish, servers, "referrals.status-updates", nhs, {**task, **move}, {})
    events = await asyncio.to_thread(
        read_events, servers, "referrals.status", 4, 20, lambda e: e.headers["ce_subject"] == f"Task/{task_id}"
    )
    assert [e.value["status"] for e in events] == ["received", "accepted", "in-progress", "cancelled"]
    assert all("routing_service" not in e.headers for e in events), "no referrer's service to deliver to"
    assert heard(receiver, sr["identifier"][0]["value"]) == []


def rri(sr: dict[str, Any], status: str, **task: Any) -> str:
    """The receiver's RRI^I12, as the gateway's own encoder writes one (MSH-4: the performer)."""
    return hl7v2.rri_i12({"status": status, **task}, sr, f"RR-{status}", "2026-11-23T10:00:00+00:00", HL7)


def send_mllp(port: int, *texts: str) -> list[tuple[str, str, str]]:
    """Each message over one connection; MSA-1, MSA-2 and ERR-8 / MSA-3 of each ACK."""
    out = []
    with MLLPClient("127.0.0.1", port) as client:
        for text in texts:
            ack = client.send_message(text).decode().strip("\x0b\x1c\r")
            segments = {line.split("|")[0]: line.split("|") for line in ack.split("\r")}
            msa = segments["MSA"]
            why = "|".join(segments.get("ERR", [])) + "|".join(msa[3:])
            out.append((msa[1], msa[2], why))
    return out
