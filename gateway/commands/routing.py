"""`routing check NEW_DIR`: the referrals accepted over the last `--days` days, routed again through a
candidate ruleset and directory (NEW_DIR, laid out like schemas/; what it does not hold is taken from
the configuration in force), and every referral whose destination would change, printed.

Reads the store only: nothing is written, published or sent. Exits 0 when no destination would
change, 1 when some would, 2 when the candidate does not load (the reason is printed), like `diff`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from gateway.commands.common import clock, opened_store, print_json
from gateway.routing import Router
from gateway.safety import dry_run
from gateway.safety.dry_run import DryRun
from gateway.settings import Settings
from gateway.store.store import now


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    routing = sub.add_parser("routing", help="routing configuration: dry-run a new ruleset or directory")
    actions = routing.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check", help="replay recent referrals through NEW_DIR's rules and directory; print each that would move"
    )
    check.add_argument("new_dir", type=Path, metavar="NEW_DIR", help="a directory laid out like schemas/")
    check.add_argument("--days", type=float, default=30.0, help="replay the referrals accepted in these last days")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace, settings: Settings) -> int:
    try:
        router = dry_run.candidate(args.new_dir, settings.schemas_dir)
    except (ValueError, OSError) as exc:
        print(f"referral-gateway: the candidate configuration does not load: {exc}", file=sys.stderr)
        return 2
    result = asyncio.run(_replay(settings, router, args.days))
    print_json(result) if args.json else _print(result)
    return 1 if result.changed else 0


async def _replay(settings: Settings, router: Router, days: float) -> DryRun:
    async with opened_store(settings) as store:
        return await dry_run.replay(store, router, now() - timedelta(days=days))


def _print(result: DryRun) -> None:
    print(
        f"{result.replayed} referrals accepted since {clock(result.since)} replayed through {result.candidate}: "
        f"{len(result.changed)} would go elsewhere"
    )
    for c in result.changed:
        print(f"  {c.referral_id}  {c.identifier}  accepted {clock(c.created_at)}")
        print(f"      routed to:   {c.before}")
        print(f"      would go to: {c.after}")
