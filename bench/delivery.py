"""Delivery throughput beside intake's: events already on the broker, delivered by the outbound
consumers to a demo receiver (a separate `referral-gateway demo-receiver` process), over FHIR REST and
over HL7 v2 MLLP (REF^I12, each delivered on its ACK); and, in the same run, the HL7 v2 intake rate
(MLLP in, AA, event on the broker: bench/hl7_mllp.py), which delivery must keep up with.

The delivery component runs in this process on the delivery tests' own bench (store, relay and
consumers over a real broker, on topics of its own), so the figure is delivery's alone, without intake.
The receiver's patients differ, as they would: one patient's events go one at a time, in order.

`python -m bench.delivery [--count N] [--in-flight N] [--mllp-connections N] [--no-intake]`
"""

from __future__ import annotations

import argparse
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

from bench import hl7_mllp
from bench.harness import broker, poll
from bench.report import Report
from gateway.delivery.outbound import Destination
from tests.conftest import free_port
from tests.delivery.bench import bench

RECEIVER = "msk-pain"
FORMATS = {"fhir-rest": "a FHIR REST receiver", "hl7v2-mllp": "an HL7 v2 MLLP receiver"}


INTAKE_CONNECTIONS = 16
INTAKE = ("HL7 v2 messages end to end", "HL7 v2 end to end", "FHIR/HTTP end to end")  # intake figures' names


def run(report: Report, count: int = 2000, intake: bool | None = None, **settings: int) -> None:
    """Delivery's figures, after the HL7 v2 intake rate (`intake`; None: unless this run measured an
    intake rate already). `python -m bench` sets delivery's target from the run's intake figures.
    `settings`: delivery settings to measure with (in_flight_per_receiver, mllp_connections_per_receiver)."""
    if intake or (intake is None and not any(report.value(name) for name in INTAKE)):
        _intake_rate(report, count)
    for fmt, what in FORMATS.items():
        with TemporaryDirectory(prefix="bench-delivery-") as tmp, broker() as servers, demo_receiver(Path(tmp)) as rx:
            destination = Destination(RECEIVER, fmt, rx.fhir_base_url if fmt == "fhir-rest" else rx.mllp_address)
            seconds, cpu = asyncio.run(_measure(servers, Path(tmp), destination, rx.record, count, settings))
        report.figure(f"delivery to {what}, events per second", count / seconds, "/s")
        report.figure(f"  CPU per event delivered to {what} (this process)", cpu * 1000 / count, "ms")
    shown = ", ".join(f"{k} {v}" for k, v in settings.items()) or "the default settings"
    report.line(f"  ({count} events on 3 partitions, one consumer group member, {shown}, receiver in its own process)")


def _intake_rate(report: Report, count: int) -> None:
    """The HL7 v2 intake rate on this machine now (MLLP in, AA, event on the broker): what delivery is
    measured against."""
    result = hl7_mllp.end_to_end(count, INTAKE_CONNECTIONS)
    name = f"HL7 v2 end to end (intake, beside delivery), {INTAKE_CONNECTIONS} connections"
    if result["events_rate"]:
        report.figure(name, result["events_rate"], "/s")
    else:
        report.line(f"{name}: not every event was read back")


def against_intake(report: Report) -> None:
    """Each delivery figure against the highest intake rate of the run (target: delivery >= intake)."""
    intake = {name: rate for prefix in INTAKE for name, rate in report.value(prefix).items()}
    if not intake:
        report.line("  (no intake rate measured in this run)")
        return
    best = max(intake.values())
    for name, rate in report.value("delivery to ").items():
        report.figure(f"{name.removesuffix(', events per second')}, against intake", rate, "/s", (">=", best))


async def _measure(
    servers: str, data_dir: Path, destination: Destination, record: Path, count: int, settings: dict[str, int]
) -> tuple[float, float]:
    """Seconds from the member's join to the last referral recorded by the receiver, and the CPU
    seconds this process spent meanwhile."""
    async with bench(servers, data_dir, start=False) as b:
        b.destinations.known[RECEIVER] = destination
        for _ in range(count):
            await b.publish(RECEIVER)

        async def published() -> bool:
            return await b.store.outbox_backlog() == 0

        await poll(published, 0.1, 300)  # every event is on the broker before delivery starts
        service = await b.add_delivery(**settings)
        await service.joined()  # from here on it delivers: the group's join delay is not delivery's
        started, cpu = time.perf_counter(), time.process_time()
        lines = _Lines(record)
        if not await poll(lambda: lines.count() >= count, 0.05, 600):
            raise RuntimeError(f"only {lines.count()} of {count} referrals were delivered")
        return time.perf_counter() - started, time.process_time() - cpu


class _Lines:
    """The lines the receiver has written to its record so far, reading only what was added since the
    last look (the process being measured does the looking: reading the whole file each time cost
    more than delivering)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._read = 0
        self._lines = 0

    def count(self) -> int:
        if self._path.exists():
            with self._path.open("rb") as f:
                f.seek(self._read)
                added = f.read()
            self._read += len(added)
            self._lines += added.count(b"\n")
        return self._lines


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


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    cli.add_argument("--count", type=int, default=2000)
    cli.add_argument("--in-flight", type=int, help="delivery.in_flight_per_receiver (default: the setting's)")
    cli.add_argument("--mllp-connections", type=int, help="delivery.mllp_connections_per_receiver")
    cli.add_argument("--no-intake", dest="intake", action="store_false", help="delivery figures alone")
    cli.set_defaults(intake=True)
    args = cli.parse_args()
    settings = {
        name: value
        for name, value in (
            ("in_flight_per_receiver", args.in_flight),
            ("mllp_connections_per_receiver", args.mllp_connections),
        )
        if value is not None
    }
    report = Report()
    run(report, args.count, args.intake, **settings)
    if args.intake:
        against_intake(report)
    report.summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
