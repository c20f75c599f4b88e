"""HL7 v2 ingest figures: how many REF^I12 messages a second each stage and the whole path take.

    pure       frame -> parse -> map -> fhir.resources validation (once) -> ACK, in this process
    naive      hl7apy parse_message + fhir.resources validation + an hl7apy-built ACK, the same messages
    end to end a gateway process (bench.harness: Tansu broker, SQLite store, relay, MLLP listener) fed
               over several MLLP connections: ACK rate, and the rate until the last event arrived
               on the broker (read back meanwhile with aiokafka)

Run: `.venv/bin/python -m bench.hl7_mllp [--messages N] [--connections C] [--no-end-to-end]`.
A script that prints figures, not a test: the numbers depend on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest
from hl7apy.core import Message as Hl7apyMessage
from hl7apy.parser import parse_message

from adapters.hl7v2 import ack, header, parser, ref_i12, tables
from adapters.mllp.connection import NEED_DATA, MllpConnection
from adapters.mllp.streams import read_frame
from bench.harness import Gateway, cpu_seconds, gateway
from bench.readback import TopicWatcher
from bench.report import Report
from gateway.canonical import nhs_number, trusted
from gateway.settings import SCHEMAS_DIR
from tests.conftest import free_port

SAMPLES = SCHEMAS_DIR / "samples" / "hl7v2"
KINDS = ["ref-i12-msk-back-pain.hl7", "ref-i12-iapt-low-mood.hl7", "ref-i12-escapes.hl7", "ref-i12-z-segments.hl7"]
TOPICS = ["referrals.msk-pain", "referrals.iapt", "referrals.physiotherapy", "referrals.triage"]
HL7 = tables.load(SCHEMAS_DIR)
CONNECTIONS = 20  # the end-to-end target's load (issue 18: 1,000 messages a second over 20 connections)


# -- messages ---------------------------------------------------------------------------------


def messages(count: int) -> list[str]:
    """`count` distinct referrals (own MSH-10, RF1-6, NHS number), cycling through the samples."""
    return list(streamed(count, 0, 1))


def streamed(count: int, share: int, shares: int) -> Iterator[str]:
    """Share `share` of `shares` of `count` distinct referrals, each made as it is asked for: a long
    run's messages are never all held at once."""
    bases = [(SAMPLES / name).read_bytes().decode().replace("\n", "\r") for name in KINDS]
    for i in range(share, count, shares):
        yield _distinct(bases[i % len(bases)], i)


def _distinct(text: str, i: int) -> str:
    token = f"{uuid.uuid4().hex[:8].upper()}{i}"
    lines = []
    for line in text.split("\r"):
        fields = line.split("|")
        if line.startswith("MSH|"):
            fields[9] = f"B{token}"[:20]
        elif line.startswith("RF1|"):
            fields[6] = f"BENCH-{token}^A81001"
        elif line.startswith("PID|"):
            fields[3] = f"{_nhs_number(i)}^^^NHS^NH"
        lines.append("|".join(fields))
    return "\r".join(lines)


def _nhs_number(seed: int) -> str:
    rng = random.Random(f"{seed}-{uuid.uuid4()}")
    while True:
        first = str(rng.randint(100_000_000, 999_999_999))
        digit = nhs_number.check_digit(first)
        if digit is not None:
            return f"{first}{digit}"


# -- pure pipeline ----------------------------------------------------------------------------


def pure_rate(texts: list[str]) -> dict[str, float]:
    framer = MllpConnection(1024 * 1024)
    stream = b"".join(framer.send(t.encode()) for t in texts)
    stages = {"frame": 0.0, "parse": 0.0, "map": 0.0, "model": 0.0, "ack": 0.0}
    started = time.perf_counter()
    for at in range(0, len(stream), 65536):
        framer.receive_data(stream[at : at + 65536])
        while True:
            t0 = time.perf_counter()
            frame = framer.next_frame()
            if frame is NEED_DATA:
                break
            assert isinstance(frame, bytes)
            text = frame.decode()
            t1 = time.perf_counter()
            message = parser.parse(text)
            head = header.read(message)
            header.check(head, HL7.profile)
            t2 = time.perf_counter()
            data = ref_i12.service_request(message, head, HL7)
            t3 = time.perf_counter()
            trusted.model(ServiceRequest, data)  # valid by construction: built, not validated again
            t4 = time.perf_counter()
            ack.accepted(head, HL7)
            t5 = time.perf_counter()
            for stage, spent in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                stages[stage] += spent
    total = time.perf_counter() - started
    return {"rate": len(texts) / total, **{k: v / len(texts) * 1e6 for k, v in stages.items()}}


def naive_rate(texts: list[str]) -> float:
    started = time.perf_counter()
    for text in texts:
        parsed = parse_message(text)
        data = ref_i12.service_request(parser.parse(text), header.read(parser.parse(text)), HL7)
        ServiceRequest.model_validate(data)
        _hl7apy_ack(str(parsed.msh.msh_10.value))
    return len(texts) / (time.perf_counter() - started)


def _hl7apy_ack(control_id: str) -> str:
    answer = Hl7apyMessage("ACK", version="2.5")
    answer.msh.msh_3 = "REFERRAL-GATEWAY"
    answer.msh.msh_9 = "ACK^I12^ACK"
    answer.msh.msh_10 = uuid.uuid4().hex[:20].upper()
    answer.msa.msa_1 = "AA"
    answer.msa.msa_2 = control_id
    return str(answer.to_er7())


# -- end to end -------------------------------------------------------------------------------


async def send_all(port: int, texts: list[str], connections: int) -> list[str]:
    """Each connection sends its share one message at a time, as MLLP senders do; the MSA-1 of each."""
    shares = [texts[i::connections] for i in range(connections)]
    results = await asyncio.gather(*(_one_connection(port, share) for share in shares))
    return [code for share in results for code in share]


async def _one_connection(port: int, texts: list[str]) -> list[str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    mllp, codes = MllpConnection(1024 * 1024), []
    for text in texts:
        writer.write(mllp.send(text.encode()))
        await writer.drain()
        frame = await read_frame(reader, mllp)
        if frame is None:
            raise ConnectionError("the gateway closed the connection before answering")
        codes.append(frame.decode().split("\rMSA|")[1][:2])
    writer.close()
    await writer.wait_closed()
    return codes


def end_to_end(count: int, connections: int) -> dict[str, Any]:
    """A gateway process (bench.harness: its own Tansu broker and SQLite store) fed over MLLP, its
    events read back meanwhile (bench.readback), so the last arrival marks the end of the run."""
    mllp_port = free_port()
    extra = {"MLLP_PORT": str(mllp_port), "DELIVERY_ENABLED": "false", "LOG_LEVEL": "WARNING"}
    with gateway(**extra) as running:  # the inbound message log on, as in production
        return asyncio.run(_measure(running, mllp_port, count, connections))


async def _measure(running: Gateway, mllp_port: int, count: int, connections: int) -> dict[str, Any]:
    watcher = TopicWatcher(running.servers, *TOPICS)
    await watcher.start()
    try:
        await send_all(mllp_port, messages(50), 5)  # warm up: connections, topics, caches
        await watcher.wait_for(50, 30)
        texts, before = messages(count), watcher.arrivals.count
        cpu_before, started = cpu_seconds(running.pid), time.perf_counter()
        codes = await send_all(mllp_port, texts, connections)
        acked = time.perf_counter() - started
        complete = await watcher.wait_for(before + count, 120)
        cpu = cpu_seconds(running.pid) - cpu_before
    finally:
        await watcher.stop()
    return {
        "messages": count,
        "connections": connections,
        "aa": codes.count("AA"),
        "ack_rate": count / acked,
        "events_rate": count / (watcher.arrivals.last_at - started) if complete else None,
        "cpu_per_message_us": cpu / count * 1e6,
    }


# -- report -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None, report: Report | None = None) -> int:
    args, own = _arguments(argv), report is None
    report = report or Report()
    texts = messages(args.messages)
    pure_rate(texts[:200])  # warm up
    pure = pure_rate(texts)
    naive = naive_rate(texts[: args.naive])
    report.line(f"pure pipeline  {pure['rate']:8.0f} msg/s   (frame+parse+map+model+ACK, {args.messages} messages)")
    report.line(
        "  per message: " + ", ".join(f"{k} {pure[k]:.0f} us" for k in ("frame", "parse", "map", "model", "ack"))
    )
    report.line(
        f"naive pipeline {naive:8.0f} msg/s   (hl7apy parse_message + fhir.resources + hl7apy ACK, {args.naive})"
    )
    report.figure("pure pipeline against the naive one (hl7apy + fhir.resources), times", pure["rate"] / naive, " x")
    if args.end_to_end:
        for connections in args.connections:
            result = end_to_end(args.e2e_messages, connections)
            report.line(_e2e_line(result))
            report.line(_budget_line(result, pure))
            name = f"HL7 v2 messages end to end (ACK, event on the broker), {connections} connections"
            if result["events_rate"]:
                report.figure(name, result["events_rate"], "/s", (">=", 1000))
            else:
                report.unmeasured(name, "not every event was read back")
            cpu_name = f"gateway CPU per HL7 v2 message (all threads), {connections} connections"
            report.figure(cpu_name, result["cpu_per_message_us"] / 1000, " ms", ("<=", 0.7))
    if own:
        report.summary()
    return 0


def _e2e_line(result: dict[str, Any]) -> str:
    events = f"{result['events_rate']:.0f} msg/s" if result["events_rate"] else "not all events read back"
    return (
        f"end to end     {result['ack_rate']:8.0f} msg/s ACKed, {events} until every event was read back "
        f"({result['messages']} messages, {result['connections']} connections, {result['aa']} AA; "
        f"gateway CPU {result['cpu_per_message_us']:.0f} us per message)"
    )


def _budget_line(result: dict[str, Any], pure: dict[str, float]) -> str:
    """Where one process's time per message goes: the ingest stage (its pure-pipeline cost, timed in
    this process) and the rest of the path (intake, store, relay, Kafka, MLLP), out of the 1 ms that
    1,000 messages a second leave on one interpreter lock."""
    ingest = 1e6 / pure["rate"]
    rest = result["cpu_per_message_us"] - ingest
    return f"  of the gateway CPU per message: ingest stage about {ingest:.0f} us, the rest of the path {rest:.0f} us"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    cli.add_argument("--messages", type=int, default=2000, help="messages for the pure pipeline")
    cli.add_argument("--naive", type=int, default=200, help="messages for the naive pipeline (it is slow)")
    cli.add_argument("--e2e-messages", type=int, default=4000)
    cli.add_argument("--connections", type=int, nargs="+", default=[CONNECTIONS])
    cli.add_argument("--no-end-to-end", dest="end_to_end", action="store_false")
    return cli.parse_args(argv)


def run(report: Report) -> None:
    """For `python -m bench hl7-mllp`: every figure, with the defaults."""
    main([], report)


if __name__ == "__main__":
    sys.exit(main())
