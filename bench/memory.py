"""Memory of one gateway process under a long, streamed load: RSS sampled from /proc while many
keep-alive clients send referrals (bodies made on the fly, so the load itself stays bounded).

A million referrals takes about an hour at this machine's rate (`--memory-referrals 1000000`), so
by default fewer are sent; the figures printed are the RSS growth per 100k referrals over the second
half of the run (after caches and pools have filled) and, for a shorter run, what that growth would
come to over a million.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

from bench.harness import SQLITE, Gateway, gateway, rss_kib
from bench.load import Referrals, Results, closed_loop
from bench.report import Report

MILLION = 1_000_000


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


def run(report: Report, count: int = 100_000, clients: int = 64, store: str = SQLITE) -> None:
    with gateway(store, DELIVERY_ENABLED="false") as gw:  # intake, store and relay: delivery has its own benchmark
        samples, seconds = asyncio.run(_load(gw, count, clients))
        _, peak = rss_kib(gw.pid)
    first, last = samples.points[0][1], samples.points[-1][1]
    growth = samples.growth_per_100k_kib()
    label = "" if count >= MILLION else f" (run: {count:,} referrals, not a million)"
    report.figure(f"gateway peak RSS over {count:,} referrals{label}", peak / 1024, "MiB")
    report.figure("gateway RSS after warm-up", first / 1024, "MiB")
    report.figure("gateway RSS at the end", last / 1024, "MiB")
    report.figure("RSS growth per 100k referrals (second half of the run)", growth / 1024, "MiB")
    if count < MILLION:
        at_million = last + growth * (MILLION - count) / 100_000
        report.figure("RSS at a million referrals if that growth went on (extrapolated)", at_million / 1024, "MiB")
    rate = count / seconds
    report.line(f"  ({count:,} referrals in {seconds:.0f}s, {rate:.0f}/s, {clients} keep-alive clients, {store})")


async def _load(gw: Gateway, count: int, clients: int) -> tuple[Samples, float]:
    samples, results = Samples(), Results()
    await closed_loop(gw, Referrals(uuid.uuid4().hex[:8]), 2000, clients)  # warm-up
    sampler = asyncio.create_task(_sample(gw.pid, samples, results))
    started = time.perf_counter()
    try:
        await closed_loop(gw, Referrals(uuid.uuid4().hex[:8]), count, clients, results)
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    samples.points.append((results.answered, rss_kib(gw.pid)[0]))
    return samples, time.perf_counter() - started


async def _sample(pid: int, samples: Samples, results: Results) -> None:
    while True:
        samples.points.append((results.answered, rss_kib(pid)[0]))
        await asyncio.sleep(1.0)
