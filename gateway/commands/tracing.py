"""`trace Q`: every hop of a referral, in order, with times: found by its id, identifier, NHS number
or correlation id. Several matches are listed; `--json` prints the traces as JSON."""

from __future__ import annotations

import argparse
import asyncio
import sys

from gateway.commands.common import clock, opened_store, print_json
from gateway.monitoring import access, trace
from gateway.monitoring.trace import Trace
from gateway.settings import Settings


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = sub.add_parser("trace", help="every hop of a referral: by id, identifier, NHS number or correlation id")
    command.add_argument("q", metavar="Q")
    command.add_argument("--json", action="store_true", help="print the trace as JSON")
    command.add_argument("--unmasked", action="store_true", help="show patient identifiers (only where allowed)")
    command.add_argument("--offset", type=int, default=0, help="skip this many matches (newest first)")
    command.add_argument("--limit", type=int, default=trace.PAGE_SIZE, help="trace at most this many matches")
    command.set_defaults(func=_trace)


def _trace(args: argparse.Namespace, settings: Settings) -> int:
    if args.unmasked and not access.may_unmask(settings.monitor):
        print("referral-gateway: unmasked output is not allowed here (MONITOR_UNMASKED_ALLOWED)", file=sys.stderr)
        return 2
    return asyncio.run(_trace_async(args, settings))


async def _trace_async(args: argparse.Namespace, settings: Settings) -> int:
    async with opened_store(settings) as store:
        page = await trace.find(store, args.q, offset=args.offset, limit=max(args.limit, 1))
        traces = [await trace.trace(store, f.id, args.unmasked) for f in page.items]
    if not page.items:
        print("referral-gateway: no referral has that id, identifier, NHS number or correlation id", file=sys.stderr)
        return 1
    if page.total > len(page.items):
        span = f"{page.offset + 1}-{page.offset + len(page.items)}"
        print(f"{page.total} referrals match; {span} shown (--offset, --limit)", file=sys.stderr)
    for shown in (t for t in traces if t is not None):
        if args.json:
            print_json(shown)
        else:
            _print(shown)
    return 0


def _print(t: Trace) -> None:
    print(f"referral {t.referral_id}  identifier {t.identifier}  NHS number {t.nhs_number}")
    print(f"  received by {t.channel} from {t.sender}; correlation id {t.correlation_id}")
    print(f"  routed by rule {t.rule} ({t.ruleset_version or 'ruleset not recorded'}) to {t.topic}")
    print(f"  referral {t.status}; Task {t.task_status or 'none'}")
    for hop in t.hops:
        print(f"  {clock(hop.at)}  +{hop.elapsed.total_seconds():8.3f}s  {hop.step:22} {hop.title}")
        for label, value in hop.facts:
            print(f"  {'':48}{label}: {value}")
    print()
