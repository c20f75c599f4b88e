"""What the inbound message log costs: the same HL7 v2 end-to-end run (bench.hl7_mllp: a gateway
process with its own broker and SQLite store, fed over MLLP) with the log off and on.

    CPU     the gateway's CPU per message, on minus off
    bytes   what the log holds per message (the raw bytes and the row), and how much the store's
            files grew per message, on against off
    rate    the HL7 v2 end-to-end rate with the log on (ACKs, and events read back from the broker)

Run: `.venv/bin/python -m bench.inbound_log [--messages N] [--connections C]`. Figures depend on the
machine and on what else runs on it; take them on a quiet one.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from pathlib import Path
from typing import Any

from bench.harness import gateway
from bench.hl7_mllp import CONNECTIONS, _measure
from bench.report import Report
from tests.conftest import free_port


def run_once(count: int, connections: int, logged: bool) -> dict[str, Any]:
    mllp_port = free_port()
    extra = {
        "MLLP_PORT": str(mllp_port),
        "DELIVERY_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        "INBOUND_ENABLED": "true" if logged else "false",
    }
    with gateway(**extra) as running:
        before = _store_bytes(running.data_dir)
        result = asyncio.run(_measure(running, mllp_port, count, connections))
        result["store_bytes_per_message"] = (_store_bytes(running.data_dir) - before) / count
        result["log"] = _log_rows(running.data_dir / "gateway.db")
    return result


def _store_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in data_dir.glob("gateway.db*"))


def _log_rows(database: Path) -> tuple[int, int, int]:
    """Rows in the log, the raw bytes they hold, and the bytes of their other columns (as SQLite sees them)."""
    with sqlite3.connect(database) as conn:
        count, raw = conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM inbound_messages").fetchone()
        columns = conn.execute(
            "SELECT coalesce(sum(length(id) + length(channel) + length(sender) + length(coalesce(control_id, ''))"
            " + length(outcome) + length(coalesce(referral_id, '')) + length(issues) + 40), 0) FROM inbound_messages"
        ).fetchone()[0]
    return int(count), int(raw), int(columns)


def main(argv: list[str] | None = None, report: Report | None = None) -> int:
    args, own = _arguments(argv), report is None
    report = report or Report()
    off = run_once(args.messages, args.connections, logged=False)
    on = run_once(args.messages, args.connections, logged=True)
    count, raw, columns = on["log"]
    warmed = count - args.messages  # the warm-up's messages are logged too
    cpu = on["cpu_per_message_us"] - off["cpu_per_message_us"]
    report.line(
        f"inbound log    CPU {cpu:+.0f} us per message ({on['cpu_per_message_us']:.0f} on, "
        f"{off['cpu_per_message_us']:.0f} off; {args.messages} messages, {args.connections} connections)"
    )
    per = max(count, 1)
    report.line(
        f"  bytes per message: {raw / per:.0f} raw + about {columns / per:.0f} in its other columns; "
        f"store files grew {on['store_bytes_per_message']:.0f} B/message on, {off['store_bytes_per_message']:.0f} off "
        f"({count} rows, {warmed} of them the warm-up's)"
    )
    report.line(
        f"  with the log on: {on['ack_rate']:.0f} msg/s ACKed, "
        + (
            f"{on['events_rate']:.0f} msg/s until every event was read back"
            if on["events_rate"]
            else "not all read back"
        )
        + f" (off: {off['ack_rate']:.0f} ACKed)"
    )
    name = f"HL7 v2 end to end with the inbound log on, {args.connections} connections"
    if on["events_rate"]:
        report.figure(name, on["events_rate"], "/s", (">=", 1000))
    else:
        report.unmeasured(name, "not every event was read back")
    report.figure("inbound log CPU per message", cpu, " us")
    report.figure("inbound log bytes per message (raw and row)", (raw + columns) / per, " B")
    if own:
        report.summary()
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    cli.add_argument("--messages", type=int, default=3000)
    cli.add_argument("--connections", type=int, default=CONNECTIONS)
    return cli.parse_args(argv)


def run(report: Report) -> None:
    """For `python -m bench inbound-log`: every figure, with the defaults."""
    main([], report)


if __name__ == "__main__":
    sys.exit(main())
