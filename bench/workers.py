"""`referral-gateway serve --workers N` on PostgreSQL: the HL7 v2 end-to-end rate (MLLP in, AA, event
read back from the broker) with one worker and with two, in the same run, and the CPU per message of
all the gateway's processes together (the workers and the parent; not the broker, not PostgreSQL).

Each run is the whole command, as an operator starts it: its own embedded broker (run by the parent
with two workers, by the one gateway process with one), a PostgreSQL schema of its own, the inbound
log on and delivery off. On a two-core machine that also carries the broker, PostgreSQL and the load,
a second worker has little spare core to use: the figure says what it gives here, not elsewhere.
Run: `.venv/bin/python -m bench.workers [--messages N] [--connections C] [--workers 1 2]`.
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
from typing import Any

from bench import hl7_mllp
from bench.harness import POSTGRESQL, UNLIMITED, cpu_seconds, stop, store_env, store_kinds
from bench.readback import TopicWatcher
from bench.report import Report
from tests.conftest import free_port
from tests.processes import child_pids, gateway_env, wait_ready


@contextmanager
def serving(workers: int) -> Iterator[tuple[subprocess.Popen[bytes], int, str]]:
    """`serve --workers N` on a PostgreSQL schema of its own: (the process, its MLLP port, its broker)."""
    with TemporaryDirectory(prefix="bench-workers-") as tmp, store_env(POSTGRESQL) as env_of_store:
        data_dir, api, mllp, broker = Path(tmp), free_port(), free_port(), free_port()
        env = {**gateway_env(data_dir, api, mllp, embedded_port=broker), **UNLIMITED, **env_of_store}
        env.update(DELIVERY_ENABLED="false", LOG_LEVEL="WARNING")
        with (data_dir / "gateway.log").open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--workers", str(workers)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_ready(proc, f"http://127.0.0.1:{api}", timeout=90)
            _wait_workers(proc.pid, workers)
            yield proc, mllp, f"127.0.0.1:{broker}"
        finally:
            stop(proc)


def _gateway_pids(parent: int) -> list[int]:
    """The parent and its workers (not the broker, a child too)."""
    return [parent, *(pid for pid in child_pids(parent) if "gateway" in _command(pid))]


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _wait_workers(parent: int, workers: int, timeout: float = 60) -> None:
    if workers == 1:
        return
    deadline = time.monotonic() + timeout
    while len(_gateway_pids(parent)) < workers + 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{workers} workers did not start")
        time.sleep(0.2)


def _cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def measure(workers: int, count: int, connections: int) -> dict[str, Any]:
    with serving(workers) as (proc, mllp, servers):
        # a worker answers only once its own runtime is up: warm every worker's connections and caches
        return asyncio.run(_measure(_gateway_pids(proc.pid), mllp, servers, count, connections))


async def _measure(pids: list[int], mllp: int, servers: str, count: int, connections: int) -> dict[str, Any]:
    watcher = TopicWatcher(servers, *hl7_mllp.TOPICS)
    await watcher.start()
    try:
        await hl7_mllp.send_all(mllp, hl7_mllp.messages(200), connections)  # warm-up
        await watcher.wait_for(200, 60)
        texts, before = hl7_mllp.messages(count), watcher.arrivals.count
        cpu_before, started = _cpu(pids), time.perf_counter()
        codes = await hl7_mllp.send_all(mllp, texts, connections)
        acked = time.perf_counter() - started
        complete = await watcher.wait_for(before + count, 180)
        cpu = _cpu(pids) - cpu_before
    finally:
        await watcher.stop()
    return {
        "aa": codes.count("AA"),
        "ack_rate": count / acked,
        "events_rate": count / (watcher.arrivals.last_at - started) if complete else None,
        "cpu_per_message_ms": cpu / count * 1000,
    }


def main(argv: list[str] | None = None, report: Report | None = None) -> int:
    args, own = _arguments(argv), report is None
    report = report or Report()
    if POSTGRESQL not in store_kinds():
        report.unmeasured("serve --workers on PostgreSQL", "no PostgreSQL server answers")
        return 0
    rates: dict[int, float] = {}
    for workers in args.workers:
        result = measure(workers, args.messages, args.connections)
        name = f"serve --workers {workers} (PostgreSQL): HL7 v2 end to end, {args.connections} connections"
        if result["events_rate"] is None:
            report.unmeasured(name, "not every event was read back")
            continue
        rates[workers] = result["events_rate"]
        report.figure(name, result["events_rate"], "/s")
        report.line(
            f"  {result['ack_rate']:.0f} msg/s ACKed, {result['aa']} AA of {args.messages}; "
            f"CPU of the gateway's processes {result['cpu_per_message_ms']:.3f} ms per message"
        )
    if 1 in rates and 2 in rates:
        report.figure("serve --workers 2 against --workers 1, end-to-end rate", rates[2] / rates[1], " x")
    if own:
        report.summary()
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    cli.add_argument("--messages", type=int, default=4000)
    cli.add_argument("--connections", type=int, default=hl7_mllp.CONNECTIONS)
    cli.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    return cli.parse_args(argv)


def run(report: Report, count: int = 4000) -> None:
    """For `python -m bench workers`: one worker, then two."""
    main(["--messages", str(count)], report)


if __name__ == "__main__":
    sys.exit(main())
