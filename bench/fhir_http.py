"""FHIR over HTTP, end to end: `POST /fhir/ServiceRequest` → 201 → the event read back from the
broker; referrals per second through one gateway process (SQLite store, closed loop, delivery off)."""

from __future__ import annotations

import asyncio
import uuid

from bench.harness import Gateway, cpu_seconds, gateway
from bench.load import Referrals, closed_loop
from bench.readback import TopicWatcher
from bench.report import Report

TOPIC = "referrals.msk-pain"  # where the sample is routed


def run(report: Report, count: int = 5000, clients: int = 64) -> None:
    with gateway(DELIVERY_ENABLED="false") as gw:  # intake only: delivery has its own benchmark
        asyncio.run(_measure(report, gw, count, clients))


async def _measure(report: Report, gw: Gateway, count: int, clients: int) -> None:
    referrals = Referrals(uuid.uuid4().hex[:8])
    await closed_loop(gw, referrals, min(500, count), clients)  # warm-up, not counted
    watcher = TopicWatcher(gw.servers, TOPIC)
    await watcher.start()
    try:
        await watcher.wait_for(min(500, count), 30)
        before, cpu_before = watcher.arrivals.count, cpu_seconds(gw.pid)
        numbered = Referrals(uuid.uuid4().hex[:8])
        results = await closed_loop(gw, numbered, count, clients)
        complete = await watcher.wait_for(before + count, 120)
        cpu = cpu_seconds(gw.pid) - cpu_before
    finally:
        await watcher.stop()
    created = results.statuses.get(201, 0)
    http_s = results.last_answered - results.first_sent
    e2e_s = watcher.arrivals.last_at - results.first_sent
    report.figure("FHIR/HTTP referrals accepted (201) per second", created / http_s, "/s", target=(">=", 1000))
    if complete:
        report.figure("FHIR/HTTP end to end (201 and event read back) per second", count / e2e_s, "/s", (">=", 1000))
    else:
        report.line(f"FHIR/HTTP end to end: only {watcher.arrivals.count - before} of {count} events arrived")
    report.figure(
        "gateway CPU per FHIR POST /fhir/ServiceRequest (all threads)", cpu * 1000 / count, " ms", ("<=", 1.2)
    )
    report.line(f"  ({count} referrals, {clients} keep-alive clients, SQLite store, statuses {results.statuses})")
