"""Latency of `POST /fhir/ServiceRequest` (a 201 means durably committed) at a fixed offered rate,
on each store: p50 / p99 from when each request was due."""

from __future__ import annotations

import asyncio
import uuid

from bench.harness import gateway, store_kinds
from bench.load import Referrals, fixed_rate, percentile
from bench.report import Report

RATE = 100.0


def run(report: Report, seconds: float = 30.0, rate: float = RATE) -> None:
    for store in store_kinds():
        with gateway(store, DELIVERY_ENABLED="false") as gw:
            results = asyncio.run(fixed_rate(gw, Referrals(uuid.uuid4().hex[:8]), rate, seconds))
        latencies = results.latencies_ms
        report.figure(f"POST latency p50 at {rate:.0f}/s, {store}", percentile(latencies, 50), "ms")
        report.figure(f"POST latency p99 at {rate:.0f}/s, {store}", percentile(latencies, 99), "ms", ("<=", 10))
        report.line(
            f"  ({len(latencies)} requests over {seconds:.0f}s after a warm-up; max {max(latencies):.1f} ms; "
            f"statuses {results.statuses})"
        )
    if len(store_kinds()) == 1:
        report.line("POST latency on PostgreSQL: not measured, no PostgreSQL server answers")
