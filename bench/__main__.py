"""`python -m bench [NAME ...]`: run the benchmarks (all, or those named) and print their figures, each
beside its target where it has one (issue 18), then what missed.

hl7-mllp    HL7 v2 over MLLP end to end (20 connections; target >= 1,000/s), the gateway's CPU per
            message (target <= 0.7 ms), the ingest stage against the naive pipeline (the ratio)
hl7-split   how that CPU per message splits over the gateway's parts (py-spy, bench/profile.py)
fhir-http   FHIR POST /fhir/ServiceRequest end to end, and its CPU per referral (target <= 1.2 ms)
inbound-log what the inbound message log costs per HL7 v2 message (CPU, bytes), and the rate with it on
latency     POST latency p50 / p99 at a fixed offered rate (100/s), SQLite and PostgreSQL
delivery    outbound delivery to one FHIR REST and one HL7 v2 MLLP receiver (bench/delivery.py), each
            against the highest intake rate of the run (target: at least that)
workers     `serve --workers 2` beside `--workers 1`, on PostgreSQL (HL7 v2 end to end)
memory      RSS over a long streamed load, its growth per 100k referrals (target: flat, <= 2 MiB)

Every gateway measured has the inbound message log on, as in production (bench/harness.py), but for
the inbound-log benchmark's run with it off. At the README's rates the default run comes to about
ten minutes on a quiet 2-core machine; the counts are options (`--help`). Where the CPU goes for
FHIR: `python -m bench.profile`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

from bench import delivery, fhir_http, hl7_mllp, inbound_log, latency, memory, profile, workers
from bench.harness import SQLITE, machine, store_kinds
from bench.report import Report

NAMES = ("hl7-mllp", "hl7-split", "fhir-http", "inbound-log", "latency", "delivery", "workers", "memory")
FLAT_MIB_PER_100K = 2.0  # 20 MiB over a million referrals, on a process of a few hundred


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=_Raw)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(NAMES)} (all)")
    parser.add_argument("--count", type=int, default=5000, help="referrals for the FHIR throughput figure")
    parser.add_argument("--hl7-count", type=int, default=4000, help="messages for the HL7 v2 end-to-end figures")
    parser.add_argument("--split-seconds", type=float, default=15.0, help="seconds of py-spy sampling")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--latency-rate", type=float, default=latency.RATE, help="offered requests per second")
    parser.add_argument("--delivery-count", type=int, default=2000)
    parser.add_argument("--workers-count", type=int, default=4000, help="messages per `serve --workers` run")
    parser.add_argument("--memory-referrals", type=int, default=100_000)
    parser.add_argument("--memory-store", choices=store_kinds(), default=SQLITE)
    parser.add_argument("--memory-source", choices=memory.SOURCES, default=memory.HL7, help="what the load sends")
    args = parser.parse_args()
    unknown = set(args.names) - set(NAMES)
    if unknown:
        parser.error(f"no benchmark named {', '.join(sorted(unknown))}")
    logging.basicConfig(level=logging.WARNING)
    report = Report()
    report.line(f"Referral Gateway benchmarks on: {machine()}; the inbound message log on")
    hl7 = ["--e2e-messages", str(args.hl7_count)]
    runs: dict[str, Callable[[], object]] = {
        "hl7-mllp": lambda: hl7_mllp.main(hl7, report),  # more figures: `python -m bench.hl7_mllp --help`
        "hl7-split": lambda: profile.report_split(report, args.split_seconds, hl7_mllp.CONNECTIONS),
        "fhir-http": lambda: fhir_http.run(report, args.count),
        "inbound-log": lambda: inbound_log.main(["--messages", str(args.hl7_count)], report),
        "latency": lambda: latency.run(report, args.latency_seconds, args.latency_rate),
        "delivery": lambda: _delivery(report, args.delivery_count),
        "workers": lambda: workers.run(report, args.workers_count),
        "memory": lambda: _memory(report, args.memory_referrals, args.memory_store, args.memory_source),
    }
    for name in args.names or NAMES:
        report.heading(name)
        runs[name]()
    report.heading("summary")
    report.summary()
    return 0


def _delivery(report: Report, count: int) -> None:
    """Delivery's own figures, then each against the highest intake rate this run measured."""
    delivery.run(report, count)
    intake = {
        name: rate
        for prefix in ("HL7 v2 messages end to end", "HL7 v2 end to end", "FHIR/HTTP end to end")
        for name, rate in report.value(prefix).items()
    }
    rates = report.value("delivery to ")
    if not intake:
        report.line("  (no intake rate measured in this run to set delivery's target: run hl7-mllp or fhir-http too)")
        return
    best_name, best = max(intake.items(), key=lambda item: item[1])
    report.line(f"  delivery's target: the highest intake rate of this run, {best:,.0f}/s ({best_name})")
    for name, rate in rates.items():
        report.figure(f"{name.removesuffix(', events per second')}, against intake", rate, "/s", (">=", best))


def _memory(report: Report, count: int, store: str, source: str) -> None:
    memory.run(report, count, store=store, source=source)
    for name, growth in report.value("RSS growth per 100k").items():
        report.figure(f"{name}: flat", growth, " MiB", ("<=", FLAT_MIB_PER_100K))


class _Raw(argparse.RawDescriptionHelpFormatter):
    pass


if __name__ == "__main__":
    raise SystemExit(main())
