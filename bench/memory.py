"""Memory of one gateway process under a long, streamed load: RSS sampled from /proc while REF^I12
messages come in over MLLP connections (`--memory-source hl7`, the default) or many keep-alive
clients POST FHIR referrals (`fhir`). Messages and bodies are made on the fly, so the load itself
stays bounded.

A million HL7 v2 referrals take about 40 minutes at this machine's rate (`--memory-referrals
1000000`), so by default fewer are sent; the figures printed are the RSS growth per 100k referrals
over the second half of the run (after caches and pools have filled) and, for a shorter run, what
that growth would come to over a million.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from adapters.mllp.connection import MllpConnection
from adapters.mllp.streams import read_frame
from bench import hl7_mllp
from bench.harness import SQLITE, Gateway, gateway, rss_kib
from bench.load import Referrals, Results, closed_loop
from bench.report import Report
from tests.conftest import free_port

MILLION = 1_000_000
HL7, FHIR = "hl7", "fhir"
SOURCES = (HL7, FHIR)


@dataclass
class Samples:
    points: list[tuple[int, int]] = field(default_factory=list)  # (referrals answered, RSS KiB)

    def growth_per_100k_kib(self) -> float:
        """Least-squares slope over the second half of the run."""
        half = self.points[len(self.points) // 2 :]
        if len(half) < 2:
            return 0.0
        mean_x = sum(x for x, _ in half) / len(half)
        mean_y = sum(y for _, y in half) / len(half)
        var = sum((x - mean_x) ** 2 for x, _ in half)
        cov = sum((x - mean_x) * (y - mean_y) for x, y in half)
        return cov / var * 100_000 if var else 0.0


def run(report: Report, count: int = 100_000, clients: int = 64, store: str = SQLITE, source: str = HL7) -> None:
    """`clients`: keep-alive HTTP clients for FHIR; HL7 v2 comes over the end-to-end figure's connections."""
    mllp_port = free_port()
    extra = {"DELIVERY_ENABLED": "false", "MLLP_PORT": str(mllp_port), "LOG_LEVEL": "WARNING"}
    with gateway(store, **extra) as gw:  # intake, store and relay: delivery has its own benchmark
        load = _load_hl7(gw.pid, mllp_port, count) if source == HL7 else _load(gw, count, clients)
        samples, seconds = asyncio.run(load)
        _, peak = rss_kib(gw.pid)
    first, last = samples.points[0][1], samples.points[-1][1]
    growth = samples.growth_per_100k_kib()
    what = "HL7 v2 referrals over MLLP" if source == HL7 else "FHIR referrals"
    label = "" if count >= MILLION else f" (run: {count:,} {what}, not a million)"
    report.figure(f"gateway peak RSS over {count:,} {what}{label}", peak / 1024, "MiB")
    report.figure("gateway RSS after warm-up", first / 1024, "MiB")
    report.figure("gateway RSS at the end", last / 1024, "MiB")
    report.figure("RSS growth per 100k referrals (second half of the run)", growth / 1024, "MiB")
    if count < MILLION:
        at_million = last + growth * (MILLION - count) / 100_000
        report.figure("RSS at a million referrals if that growth went on (extrapolated)", at_million / 1024, "MiB")
    rate = count / seconds
    load = f"{hl7_mllp.CONNECTIONS} MLLP connections" if source == HL7 else f"{clients} keep-alive clients"
    report.line(f"  ({count:,} {what} in {seconds:.0f}s, {rate:.0f}/s, {load}, {store})")


async def _load(gw: Gateway, count: int, clients: int) -> tuple[Samples, float]:
    samples, results = Samples(), Results()
    await closed_loop(gw, Referrals(uuid.uuid4().hex[:8]), 2000, clients)  # warm-up
    sampler = asyncio.create_task(_sample(gw.pid, samples, lambda: results.answered))
    started = time.perf_counter()
    try:
        await closed_loop(gw, Referrals(uuid.uuid4().hex[:8]), count, clients, results)
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    samples.points.append((results.answered, rss_kib(gw.pid)[0]))
    return samples, time.perf_counter() - started


async def _load_hl7(pid: int, port: int, count: int) -> tuple[Samples, float]:
    connections = hl7_mllp.CONNECTIONS
    await hl7_mllp.send_all(port, hl7_mllp.messages(2000), connections)  # warm-up
    samples, acked = Samples(), [0]
    sampler = asyncio.create_task(_sample(pid, samples, lambda: acked[0]))
    started = time.perf_counter()
    try:
        shares = (hl7_mllp.streamed(count, share, connections) for share in range(connections))
        await asyncio.gather(*(_send(port, share, acked) for share in shares))
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    samples.points.append((acked[0], rss_kib(pid)[0]))
    return samples, time.perf_counter() - started


async def _send(port: int, texts: Iterator[str], acked: list[int]) -> None:
    """One connection's messages one at a time, as MLLP senders do; anything but AA ends the run."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    mllp = MllpConnection(1024 * 1024)
    try:
        for text in texts:
            writer.write(mllp.send(text.encode()))
            await writer.drain()
            frame = await read_frame(reader, mllp)
            if frame is None or b"\rMSA|AA|" not in frame:
                raise RuntimeError(f"the gateway did not accept a message: {frame!r}"[:300])
            acked[0] += 1
    finally:
        writer.close()


async def _sample(pid: int, samples: Samples, answered: Callable[[], int]) -> None:
    """RSS each second; each 100k referrals a line on stderr, so a run of an hour shows its progress."""
    shown = 0
    while True:
        samples.points.append((answered(), rss_kib(pid)[0]))
        if samples.points[-1][0] >= shown + 100_000:
            shown = samples.points[-1][0] // 100_000 * 100_000
            print(f"  {samples.points[-1][0]:,} referrals: RSS {samples.points[-1][1] / 1024:.0f} MiB", file=sys.stderr)
        await asyncio.sleep(1.0)
