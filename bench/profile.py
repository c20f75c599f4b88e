"""Where one gateway process spends its CPU per referral: `python -m bench.profile [--hl7]`.

Three views. The stages: the FHIR work a `POST /fhir/ServiceRequest` does, timed in this process one
piece at a time (parse and canonicalise, check, route, and the one dump of the model the intake
makes for the stored JSON; an HL7 v2 referral's JSON comes from its mapping, so it is not dumped).
The whole process: py-spy samples the gateway's event-loop thread under a closed-loop load and the
samples are grouped by where they fall (needs py-spy: `.venv/bin/pip install py-spy`; it is
not a dependency of the project; `make bench` installs it). The HL7 v2 split (`hl7_split`, in `make
bench`): py-spy samples every thread of a gateway fed REF^I12 over MLLP, counting only samples that
hold the interpreter lock (`--gil`), and each group's share of them is put on the gateway's measured
CPU per message over the same seconds. Time spent outside the lock (the kernel's socket and disk
work, SQLite's C code with the lock released) is in the total, not in any group's share.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fhir.resources.R4B.servicerequest import ServiceRequest

from adapters.inbound.fhir import rest
from adapters.mllp.connection import MllpConnection
from adapters.mllp.streams import read_frame
from bench import hl7_mllp
from bench.harness import cpu_seconds, gateway
from bench.load import FHIR_JSON, Referrals, closed_loop
from bench.report import Report
from gateway.canonical import ukcore
from gateway.routing import load_router
from gateway.settings import SCHEMAS_DIR
from tests.conftest import free_port

#: Sample groups, first match wins (a frame anywhere in the stack puts the sample in its group), so a
#: group that others call (logging, JSON, validation, the store) comes before its callers.
GROUPS = [
    ("logging", ["logging/__init__"]),
    ("JSON encoding and decoding (json, orjson)", ["json/encoder", "json/decoder", "json/__init__", "orjson"]),
    ("fhir.resources and pydantic validation", ["fhir/resources", "fhir_core", "pydantic"]),
    ("store: SQLAlchemy and the driver", ["sqlalchemy/", "aiosqlite/", "asyncpg/", "sqlite3", "group_commit"]),
    ("outbox relay and aiokafka", ["gateway/bus/relay.py", "aiokafka/"]),
    ("HL7 v2 parse, map and ACK (adapters/hl7v2)", ["adapters/hl7v2/"]),
    ("FHIR parse and canonicalise (adapters/inbound)", ["adapters/"]),
    ("inbound message log", ["gateway/inbound_log/"]),
    ("audit trail", ["gateway/audit/"]),
    ("intake: check, route, canonical", ["gateway/intake.py", "gateway/canonical", "gateway/routing"]),
    ("MLLP listener, framing and handler", ["gateway/mllp/", "adapters/mllp/"]),
    ("HTTP: uvicorn, Starlette, FastAPI, AnyIO", ["starlette/", "fastapi/", "uvicorn/", "anyio/", "gateway/app.py"]),
    ("waiting for I/O (epoll)", ["EpollSelector.select"]),
]


def stages(repeat: int = 300) -> list[tuple[str, float]]:
    """Milliseconds of CPU per call for each piece of FHIR work on one referral."""
    body = Referrals("profile").body(1)
    sr = rest.service_request(body, FHIR_JSON)
    router = load_router(SCHEMAS_DIR)
    pieces: list[tuple[str, Callable[[], object]]] = [
        ("parse, resolve references, infer source (adapter)", lambda: rest.service_request(body, FHIR_JSON)),
        ("  of which ServiceRequest.model_validate_json", lambda: ServiceRequest.model_validate_json(body)),
        ("UK Core checks", lambda: ukcore.validate(sr)),
        ("routing", lambda: router.route(sr)),
        ("ServiceRequest.model_dump (the intake's one dump)", lambda: sr.model_dump(mode="json")),
    ]
    return [(name, _cpu_ms(call, repeat)) for name, call in pieces]


def _cpu_ms(call: Callable[[], object], repeat: int) -> float:
    call()
    started = time.process_time()
    for _ in range(repeat):
        call()
    return (time.process_time() - started) * 1000 / repeat


def sampled(seconds: float, clients: int) -> tuple[Counter[str], int, int] | None:
    """(samples per group, samples, referrals) of the gateway's main thread under load."""
    spy = _py_spy()
    if spy is None:
        return None
    with gateway() as gw, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(closed_loop(gw, Referrals(uuid.uuid4().hex[:8]), 1000, clients))  # warm-up
        out = Path(tmp) / "samples.txt"
        command = [spy, "record", "-p", str(gw.pid), "-o", str(out), "-f", "raw", "-d", str(int(seconds))]
        recorder = subprocess.Popen([*command, "-r", "100", "--threads", "--nonblocking"], stdout=subprocess.DEVNULL)
        count = int(seconds * 150)
        results = asyncio.run(closed_loop(gw, Referrals(uuid.uuid4().hex[:8]), count, clients))
        recorder.wait()
        groups, total = _grouped(out.read_text())
    return groups, total, results.answered


def _grouped(raw: str, threads: str | None = "MainThread") -> tuple[Counter[str], int]:
    """Samples per group; of the thread named `threads` only (None: every thread)."""
    groups: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if threads is not None and threads not in stack.split(";", 1)[0]:
            continue
        total += int(count)
        group = next((name for name, marks in GROUPS if any(m in stack for m in marks)), "event loop, other")
        groups[group] += int(count)
    return groups, total


def _py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


@dataclass(frozen=True)
class Split:
    """How the gateway's CPU per HL7 v2 message splits, over `messages` sent in one sampled window."""

    messages: int
    cpu_per_message_ms: float
    shares: list[tuple[str, float]]  # (group, share of the samples that held the interpreter lock)
    samples: int


def hl7_split(seconds: float = 15.0, connections: int = 20) -> Split | None:
    """A gateway (bench.harness, inbound log on, delivery off) fed REF^I12 over `connections` MLLP
    connections for `seconds`, py-spy sampling it meanwhile; None without py-spy."""
    spy = _py_spy()
    if spy is None:
        return None
    mllp_port = free_port()
    extra = {"MLLP_PORT": str(mllp_port), "DELIVERY_ENABLED": "false", "LOG_LEVEL": "WARNING"}
    with gateway(**extra) as gw, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(hl7_mllp.send_all(mllp_port, hl7_mllp.messages(400), connections))  # warm-up
        texts = hl7_mllp.messages(int(seconds * 1500))  # more than the window takes
        out = Path(tmp) / "samples.txt"
        command = [spy, "record", "-p", str(gw.pid), "-o", str(out), "-f", "raw", "-d", str(int(seconds))]
        recorder = subprocess.Popen(
            [*command, "-r", "100", "--threads", "--gil", "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cpu_before = cpu_seconds(gw.pid)
        sent = asyncio.run(_send_for(mllp_port, texts, connections, seconds))
        cpu = cpu_seconds(gw.pid) - cpu_before
        recorder.wait()
        groups, total = _grouped(out.read_text(), threads=None)
    shares = [(name, count / total) for name, count in groups.most_common()] if total else []
    return Split(sent, cpu * 1000 / max(sent, 1), shares, total)


async def _send_for(port: int, texts: list[str], connections: int, seconds: float) -> int:
    """Messages ACKed over `connections` MLLP connections in `seconds` (each one at a time, as senders do)."""
    deadline = time.perf_counter() + seconds
    shares = [iter(texts[i::connections]) for i in range(connections)]

    async def one(share: Iterator[str]) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        mllp, acked = MllpConnection(1024 * 1024), 0
        for text in share:
            if time.perf_counter() >= deadline:
                break
            writer.write(mllp.send(text.encode()))
            await writer.drain()
            if await read_frame(reader, mllp) is None:
                break
            acked += 1
        writer.close()
        return acked

    return sum(await asyncio.gather(*(one(share) for share in shares)))


def report_split(report: Report, seconds: float = 15.0, connections: int = 20) -> None:
    split = hl7_split(seconds, connections)
    if split is None:
        report.unmeasured("HL7 v2 CPU split", "py-spy is not installed (.venv/bin/pip install py-spy)")
        return
    report.line(
        f"gateway CPU per HL7 v2 message while sampled: {split.cpu_per_message_ms:.3f} ms ({split.messages} "
        f"messages in {seconds:.0f}s, {connections} connections; {split.samples} py-spy samples holding the lock)"
    )
    for name, share in split.shares:
        report.line(f"  {name:58} {100 * share:5.1f} %  {share * split.cpu_per_message_ms:6.3f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--hl7", action="store_true", help="the HL7 v2 split over MLLP instead of the FHIR views")
    args = parser.parse_args(argv)
    if args.hl7:
        report = Report()
        report_split(report, args.seconds)
        report.summary()
        return 0
    print("FHIR work per referral, CPU in this process:")
    for name, ms in stages():
        print(f"  {name:58} {ms:6.2f} ms")
    found = sampled(args.seconds, args.clients)
    if found is None:
        print("process profile: py-spy is not installed (.venv/bin/pip install py-spy)")
        return 0
    groups, total, referrals = found
    print(f"gateway event-loop thread under load ({referrals} referrals, {total} samples, py-spy):")
    for name, samples in groups.most_common():
        print(f"  {name:58} {100 * samples / total:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
