"""A whole running gateway (embedded broker, store, relay, MLLP listener) fed by HL7 clients that are
not ours: python-hl7's MLLPClient and its `mllp_send` command. The ACK says AA only once the referral
is committed; the event then reaches its topic, read back with kafka-python."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import hl7
from hl7.client import MLLPClient

from tests.conftest import RunningGateway
from tests.hl7v2.messages import CUSTOM, IAPT, LF, MSK, ZSEG, fresh, sample, with_field
from tests.kafka_reader import Event, read_events

TOPICS = {MSK: "referrals.msk-pain", IAPT: "referrals.iapt", LF: "referrals.iapt", ZSEG: "referrals.msk-pain"}


def send(port: int, *texts: str) -> list[hl7.Message]:
    """Each message over one python-hl7 connection; the ACKs it got back, parsed by python-hl7."""
    with MLLPClient("127.0.0.1", port) as client:
        answers = [client.send_message(text) for text in texts]
    return [hl7.parse(a.decode().strip("\x0b\x1c\r")) for a in answers]


def msa(ack: hl7.Message) -> tuple[str, str]:
    segment = ack.segment("MSA")
    return str(segment[1]), str(segment[2])


def nhs_number_of(text: str) -> str:
    return text.split("PID|1||")[1].split("^")[0]


def control_id(text: str) -> str:
    return text.split("\r")[0].split("|")[9]


def events_for(gateway: RunningGateway, topic: str, nhs: str, count: int = 1, timeout: float = 15) -> list[Event]:
    servers = gateway.settings.kafka.servers
    return read_events(servers, topic, count, timeout, match=lambda e: e.key == nhs)


async def test_python_hl7_client_gets_aa_and_each_referral_reaches_its_topic(running_gateway: RunningGateway) -> None:
    texts = {name: fresh(sample(name).replace("\n", "\r")) for name in TOPICS}
    acks = await asyncio.to_thread(send, running_gateway.runtime.mllp.port, *texts.values())
    assert [msa(a) for a in acks] == [("AA", control_id(t)) for t in texts.values()]
    for name, text in texts.items():
        (event,) = await asyncio.to_thread(events_for, running_gateway, TOPICS[name], nhs_number_of(text))
        assert event.value["resourceType"] == "ServiceRequest"
        assert event.value["subject"]["identifier"]["value"] == nhs_number_of(text)
        assert event.headers["correlation_id"] == control_id(text)
        assert event.headers["ce_source"].startswith("urn:referral-gateway:hl7v2-mllp:")


async def test_a_redelivered_message_is_acknowledged_again_and_published_once(running_gateway: RunningGateway) -> None:
    text = fresh(sample(MSK))
    acks = await asyncio.to_thread(send, running_gateway.runtime.mllp.port, text, text)
    again = await asyncio.to_thread(send, running_gateway.runtime.mllp.port, text)
    assert [msa(a) for a in [*acks, *again]] == [("AA", control_id(text))] * 3
    found = await asyncio.to_thread(events_for, running_gateway, "referrals.msk-pain", nhs_number_of(text), 2, 5)
    assert len(found) == 1


async def test_the_custom_encoding_sample_is_taken(running_gateway: RunningGateway) -> None:
    (ack,) = await asyncio.to_thread(send, running_gateway.runtime.mllp.port, sample(CUSTOM))
    assert str(ack).startswith("MSH*$!@%*")
    assert "MSA*AA*VIS-0000771" in str(ack)


async def test_a_bad_nhs_number_gets_ae_naming_pid_3(running_gateway: RunningGateway) -> None:
    text = with_field(fresh(sample(MSK)), "PID", 3, "9434765918^^^NHS^NH")
    (ack,) = await asyncio.to_thread(send, running_gateway.runtime.mllp.port, text)
    assert msa(ack) == ("AE", control_id(text))
    err = ack.segment("ERR")
    assert str(err[2]) == "PID^1^3" and str(err[3][0][0]) == "102"


async def test_nothing_nakked_reaches_kafka(running_gateway: RunningGateway) -> None:
    bad = with_field(fresh(sample(MSK)), "PID", 3, "9434765918^^^NHS^NH")
    good = fresh(sample(MSK))
    acks = await asyncio.to_thread(send, running_gateway.runtime.mllp.port, bad, good)
    assert [msa(a)[0] for a in acks] == ["AE", "AA"]
    # The good referral, committed after the bad one was refused, has reached the topic: the relay
    # has passed the point where the refused one would be, so a short look for it is enough.
    (event,) = await asyncio.to_thread(events_for, running_gateway, "referrals.msk-pain", nhs_number_of(good))
    servers, bad_id = running_gateway.settings.kafka.servers, control_id(bad)
    refused = await asyncio.to_thread(
        read_events, servers, "referrals.msk-pain", 1, 1.0, lambda e: e.headers.get("correlation_id") == bad_id
    )
    assert event.headers["correlation_id"] == control_id(good) and refused == []


async def test_mllp_send_command_gets_the_right_acks(running_gateway: RunningGateway, tmp_path: Path) -> None:
    good, bad = fresh(sample(IAPT)), with_field(fresh(sample(IAPT)), "MSH", 9, "ADT^A01^ADT_A01")
    messages = tmp_path / "messages.hl7"
    messages.write_text("\n".join([good.replace("\r", "\n"), bad.replace("\r", "\n")]))
    command = [str(Path(sys.executable).parent / "mllp_send"), "--loose", "--file", str(messages)]
    command += ["--port", str(running_gateway.runtime.mllp.port), "127.0.0.1"]
    result = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=30, check=True)
    acks = [
        hl7.parse(block.strip("\x0b\x1c\r\n").replace("\n", "\r"))
        for block in result.stdout.split("\x1c")
        if "MSA" in block
    ]
    assert [msa(a) for a in acks] == [("AA", control_id(good)), ("AR", control_id(bad))]
