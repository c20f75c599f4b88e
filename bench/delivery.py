"""Delivery throughput: events already on the broker, delivered by the outbound consumers to a demo
receiver (a separate `referral-gateway demo-receiver` process), over FHIR REST and over HL7 v2 MLLP
(REF^I12, each delivered on its ACK).

The delivery component runs in this process on the delivery tests' own bench (store, relay and
consumers over a real broker, on topics of its own), so the figure is delivery's alone, without intake.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import NamedTuple

import httpx

from bench.harness import broker, poll
from bench.report import Report
from gateway.delivery.outbound import Destination
from tests.conftest import free_port
from tests.delivery.bench import bench

RECEIVER = "msk-pain"
FORMATS = {"fhir-rest": "a FHIR REST receiver", "hl7v2-mllp": "an HL7 v2 MLLP receiver"}


def run(report: Report, count: int = 2000) -> None:
    for fmt, what in FORMATS.items():
        with TemporaryDirectory(prefix="bench-delivery-") as tmp, broker() as servers, demo_receiver(Path(tmp)) as rx:
            destination = Destination(RECEIVER, fmt, rx.fhir_base_url if fmt == "fhir-rest" else rx.mllp_address)
            seconds = asyncio.run(_measure(servers, Path(tmp), destination, rx.record, count))
        report.figure(f"delivery to {what}, events per second", count / seconds, "/s")
    report.line(f"  ({count} events on 3 partitions, one consumer group member, receiver in its own process)")


async def _measure(servers: str, data_dir: Path, destination: Destination, record: Path, count: int) -> float:
    async with bench(servers, data_dir, start=False) as b:
        b.destinations.known[RECEIVER] = destination
        for _ in range(count):
            await b.publish(RECEIVER)

        async def published() -> bool:
            return await b.store.outbox_backlog() == 0

        await poll(published, 0.1, 300)  # every event is on the broker before delivery starts
        started = time.perf_counter()
        await b.add_delivery()
        if not await poll(lambda: _lines(record) >= count, 0.05, 600):
            raise RuntimeError(f"only {_lines(record)} of {count} referrals were delivered")
        return time.perf_counter() - started


def _lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(1 for _ in f)


class Receiver(NamedTuple):
    """A demo receiver process: where it takes FHIR and MLLP, and the file it records referrals in."""

    fhir_base_url: str
    mllp_address: str
    record: Path


@contextmanager
def demo_receiver(data_dir: Path) -> Iterator[Receiver]:
    http, mllp, record = free_port(), free_port(), data_dir / "received.jsonl"
    command = [sys.executable, "-m", "gateway", "demo-receiver", "--record", str(record)]
    proc = subprocess.Popen(
        [*command, "--http-port", str(http), "--mllp-port", str(mllp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(f"http://127.0.0.1:{http}/_demo/requests")
        yield Receiver(f"http://127.0.0.1:{http}/fhir", f"127.0.0.1:{mllp}", record)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_listening(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the demo receiver did not start")
