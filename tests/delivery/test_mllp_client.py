"""The outbound MLLP client over real loopback sockets: one connection per receiver kept open and
reused in order, opened again when the receiver closed it or it fell out of step, and a limit on the
ACK it reads."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from adapters.hl7v2 import parser
from adapters.hl7v2 import tables as hl7_tables
from adapters.mllp.connection import MllpConnection
from adapters.mllp.streams import read_frame
from adapters.outbound import hl7v2_mllp
from adapters.outbound.receipt import Outgoing
from gateway.demo_receiver import Behaviour, DemoReceiver
from gateway.demo_receiver import mllp as demo_mllp
from gateway.errors import DeliveryFailed
from gateway.settings import SCHEMAS_DIR
from tests.delivery.receivers import demo_receiver
from tests.samples import service_request

HL7 = hl7_tables.load(SCHEMAS_DIR)


def outgoing() -> Outgoing:
    sr = {**service_request(), "id": str(uuid.uuid4())}
    sr["meta"] = {"versionId": "1", "lastUpdated": "2026-11-23T10:00:00+00:00"}
    return Outgoing(json.dumps(sr), str(uuid.uuid4()), "new", "corr-1", "2026-11-23T10:00:00.000+00:00")


@pytest.fixture
async def receiver() -> AsyncIterator[DemoReceiver]:
    async with demo_receiver() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[hl7v2_mllp.MllpClient]:
    async with hl7v2_mllp.MllpClient(connect_timeout_s=2, read_timeout_s=5) as running:
        yield running


async def test_several_messages_to_one_receiver_go_over_one_connection_in_order(
    receiver: DemoReceiver, client: hl7v2_mllp.MllpClient
) -> None:
    sent = [outgoing() for _ in range(6)]
    await hl7v2_mllp.send_ref_i12(client, receiver.mllp_address, sent[0], HL7)
    await asyncio.gather(*(hl7v2_mllp.send_ref_i12(client, receiver.mllp_address, s, HL7) for s in sent[1:]))
    assert receiver.mllp_connections_accepted == 1 and receiver.mllp_connections == 1
    assert [h.request_id for h in receiver.ledger.hits] == [hl7v2_mllp.control_id(s.event_id) for s in sent]


async def test_an_answer_that_refuses_keeps_the_connection(
    receiver: DemoReceiver, client: hl7v2_mllp.MllpClient
) -> None:
    receiver.ledger.behaviour = Behaviour(ack_code="AE", times=1)
    with pytest.raises(DeliveryFailed):
        await hl7v2_mllp.send_ref_i12(client, receiver.mllp_address, outgoing(), HL7)
    await hl7v2_mllp.send_ref_i12(client, receiver.mllp_address, outgoing(), HL7)
    assert receiver.mllp_connections_accepted == 1


async def test_a_receiver_restarted_gets_the_next_message_on_a_new_connection(
    receiver: DemoReceiver, client: hl7v2_mllp.MllpClient
) -> None:
    await hl7v2_mllp.send_ref_i12(client, receiver.mllp_address, outgoing(), HL7)
    await receiver.stop()  # closes every open connection
    await receiver.start()
    after = await hl7v2_mllp.send_ref_i12(client, receiver.mllp_address, outgoing(), HL7)
    assert after.summary.startswith("AA ") and receiver.mllp_connections_accepted == 2


async def test_after_a_timeout_the_late_ack_is_not_taken_for_the_next_message(receiver: DemoReceiver) -> None:
    receiver.ledger.behaviour = Behaviour(delay_s=1.5, times=1)
    async with hl7v2_mllp.MllpClient(connect_timeout_s=2, read_timeout_s=1.0) as client:
        with pytest.raises(DeliveryFailed, match="no ACK"):
            await hl7v2_mllp.send_ref_i12(client, receiver.mllp_address, outgoing(), HL7)
        await asyncio.sleep(0.8)  # the slow answer to the first message is written meanwhile
        second = outgoing()
        delivered = await hl7v2_mllp.send_ref_i12(client, receiver.mllp_address, second, HL7)
    assert delivered.summary == f"AA MSA-2 {hl7v2_mllp.control_id(second.event_id)}"
    assert receiver.mllp_connections_accepted == 2


# -- receivers that misbehave at the socket -----------------------------------------------------

Answer = Callable[[int, str], "bytes | None"]  # (message number on this connection, message) -> reply


@asynccontextmanager
async def raw_receiver(answer: Answer) -> AsyncIterator[tuple[str, list[str]]]:
    """A receiver written on the socket: `answer` says what to write back (None: close the connection
    without answering). Yields its address and the MSH-10 of every message it read, connection by connection."""
    seen: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mllp, number = MllpConnection(1024 * 1024), 0
        seen.append("connect")
        while (frame := await read_frame(reader, mllp)) is not None:
            number += 1
            text = frame.decode()
            seen.append(parser.parse(text).msh.text(10))
            reply = answer(number, text)
            if reply is None:
                break
            writer.write(reply)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}", seen
    finally:
        server.close()


def aa(text: str) -> bytes:
    return MllpConnection(1024).send(demo_mllp.ack(parser.parse(text).msh.text(10), "AA", "").encode())


async def test_a_kept_connection_the_receiver_closed_unanswered_is_opened_again_and_the_message_sent_on_it(
    client: hl7v2_mllp.MllpClient,
) -> None:
    first, second = outgoing(), outgoing()
    async with raw_receiver(lambda n, text: aa(text) if n == 1 else None) as (address, seen):
        await hl7v2_mllp.send_ref_i12(client, address, first, HL7)
        delivered = await hl7v2_mllp.send_ref_i12(client, address, second, HL7)
    ids = [hl7v2_mllp.control_id(o.event_id) for o in (first, second)]
    assert delivered.summary == f"AA MSA-2 {ids[1]}"
    assert seen == ["connect", ids[0], ids[1], "connect", ids[1]]


async def test_a_new_connection_closed_unanswered_fails_once_and_may_be_tried_again(
    client: hl7v2_mllp.MllpClient,
) -> None:
    async with raw_receiver(lambda n, text: None) as (address, seen):
        with pytest.raises(DeliveryFailed) as failed:
            await hl7v2_mllp.send_ref_i12(client, address, outgoing(), HL7)
    assert failed.value.retriable and "closed the connection" in failed.value.message
    assert seen.count("connect") == 1


async def test_an_ack_longer_than_the_limit_fails_and_the_next_message_gets_a_new_connection() -> None:
    answered: list[str] = []

    def huge_then_aa(n: int, text: str) -> bytes:
        ack = demo_mllp.ack(parser.parse(text).msh.text(10), "AA", "" if answered else "x" * 5000)
        answered.append(text)
        return MllpConnection(10_000).send(ack.encode())

    async with (
        raw_receiver(huge_then_aa) as (address, seen),
        hl7v2_mllp.MllpClient(connect_timeout_s=2, read_timeout_s=5, max_ack_bytes=1024) as client,
    ):
        with pytest.raises(DeliveryFailed, match="longer than 1024 bytes") as failed:
            await hl7v2_mllp.send_ref_i12(client, address, outgoing(), HL7)
        assert failed.value.retriable
        await hl7v2_mllp.send_ref_i12(client, address, outgoing(), HL7)
    assert seen.count("connect") == 2


async def test_an_enhanced_mode_receivers_second_ack_is_not_taken_for_the_next_message(
    client: hl7v2_mllp.MllpClient,
) -> None:
    def ca_then_aa(n: int, text: str) -> bytes:
        msh_10, framing = parser.parse(text).msh.text(10), MllpConnection(1024)
        return b"".join(framing.send(demo_mllp.ack(msh_10, code, "").encode()) for code in ("CA", "AA"))

    sent = [outgoing() for _ in range(3)]
    async with raw_receiver(ca_then_aa) as (address, seen):
        receipts = [await hl7v2_mllp.send_ref_i12(client, address, o, HL7) for o in sent]
    assert [r.summary for r in receipts] == [f"CA MSA-2 {hl7v2_mllp.control_id(o.event_id)}" for o in sent]
    assert seen.count("connect") == 1


async def test_a_receiver_answering_only_another_message_times_out_saying_so() -> None:
    def wrong(n: int, text: str) -> bytes:
        return MllpConnection(1024).send(demo_mllp.ack("SOMETHING-ELSE", "AA", "").encode())

    async with (
        raw_receiver(wrong) as (address, _),
        hl7v2_mllp.MllpClient(connect_timeout_s=2, read_timeout_s=0.3) as client,
    ):
        with pytest.raises(DeliveryFailed) as failed:
            await hl7v2_mllp.send_ref_i12(client, address, outgoing(), HL7)
    assert failed.value.retriable
    assert "no ACK within 0.3s (answers came to SOMETHING-ELSE instead)" in failed.value.message
