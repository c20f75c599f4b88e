"""`python -m bench [NAME ...]`: run the benchmarks (all, or those named) and print their figures.

fhir-http   FHIR over HTTP end to end, referrals per second
hl7-mllp    HL7 v2 over MLLP end to end, and the ingest stage against the naive pipeline
latency     POST latency p50 / p99 at a fixed offered rate (100/s), SQLite and PostgreSQL
delivery    outbound delivery throughput
inbound-log what the inbound message log costs per HL7 v2 message (CPU, bytes), and the rate with it on
memory      peak RSS over a long streamed load (--memory-referrals; a million takes about an hour here)

Where the CPU goes, per stage and per part of the process: `python -m bench.profile`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

from bench import delivery, fhir_http, hl7_mllp, inbound_log, latency, memory
from bench.harness import SQLITE, machine, store_kinds
from bench.report import Report

NAMES = ("fhir-http", "hl7-mllp", "inbound-log", "latency", "delivery", "memory")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=_Raw)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(NAMES)} (all)")
    parser.add_argument("--count", type=int, default=5000, help="referrals for the throughput figure")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--latency-rate", type=float, default=latency.RATE, help="offered requests per second")
    parser.add_argument("--delivery-count", type=int, default=2000)
    parser.add_argument("--memory-referrals", type=int, default=100_000)
    parser.add_argument("--memory-store", choices=store_kinds(), default=SQLITE)
    args = parser.parse_args()
    unknown = set(args.names) - set(NAMES)
    if unknown:
        parser.error(f"no benchmark named {', '.join(sorted(unknown))}")
    logging.basicConfig(level=logging.WARNING)
    report = Report()
    report.line(f"Referral Gateway benchmarks, one gateway process on: {machine()}")
    runs: dict[str, Callable[[], object]] = {
        "fhir-http": lambda: fhir_http.run(report, args.count),
        "hl7-mllp": lambda: hl7_mllp.run(report),  # more figures: `python -m bench.hl7_mllp --help`
        "inbound-log": lambda: inbound_log.run(report),
        "latency": lambda: latency.run(report, args.latency_seconds, args.latency_rate),
        "delivery": lambda: delivery.run(report, args.delivery_count),
        "memory": lambda: memory.run(report, args.memory_referrals, store=args.memory_store),
    }
    for name in args.names or NAMES:
        report.heading(name)
        runs[name]()
    report.heading("summary")
    report.summary()
    return 0


class _Raw(argparse.RawDescriptionHelpFormatter):
    pass


if __name__ == "__main__":
    raise SystemExit(main())
