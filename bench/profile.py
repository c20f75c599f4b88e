"""Where one gateway process spends its CPU per referral: `python -m bench.profile`.

Two views. The stages: the FHIR work a `POST /fhir/ServiceRequest` does, timed in this process one
piece at a time (parse and canonicalise, check, route, and the one dump of the model the intake
makes for the stored JSON; an HL7 v2 referral's JSON comes from its mapping, so it is not dumped).
The whole process: py-spy samples the gateway's event-loop thread under a closed-loop load and the
samples are grouped by where they fall (needs py-spy: `.venv/bin/pip install py-spy`; it is
not a dependency of the project).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from fhir.resources.R4B.servicerequest import ServiceRequest

from adapters.inbound.fhir import rest
from bench.harness import gateway
from bench.load import FHIR_JSON, Referrals, closed_loop
from gateway.canonical import ukcore
from gateway.routing import load_router
from gateway.settings import SCHEMAS_DIR

#: Sample groups, first match wins (a frame anywhere in the stack puts the sample in its group).
GROUPS = [
    ("logging", ["logging/__init__"]),
    ("FHIR parse and canonicalise (adapters/inbound)", ["adapters/"]),
    ("intake: check, route, serialise", ["gateway/intake.py", "gateway/canonical", "gateway/routing"]),
    ("outbox relay and aiokafka", ["gateway/bus/relay.py", "aiokafka/"]),
    ("store: SQLAlchemy and the driver", ["sqlalchemy/", "aiosqlite/", "asyncpg/", "group_commit"]),
    ("HTTP: uvicorn, Starlette, FastAPI, AnyIO", ["starlette/", "fastapi/", "uvicorn/", "anyio/", "gateway/app.py"]),
    ("waiting for I/O (epoll)", ["EpollSelector.select"]),
]


def stages(repeat: int = 300) -> list[tuple[str, float]]:
    """Milliseconds of CPU per call for each piece of FHIR work on one referral."""
    body = Referrals("profile").body(1)
    sr = rest.service_request(body, FHIR_JSON)
    router = load_router(SCHEMAS_DIR)
    pieces: list[tuple[str, Callable[[], object]]] = [
        ("parse, resolve references, infer source (adapter)", lambda: rest.service_request(body, FHIR_JSON)),
        ("  of which ServiceRequest.model_validate_json", lambda: ServiceRequest.model_validate_json(body)),
        ("UK Core checks", lambda: ukcore.validate(sr)),
        ("routing", lambda: router.route(sr)),
        ("ServiceRequest.model_dump (the intake's one dump)", lambda: sr.model_dump(mode="json")),
    ]
    return [(name, _cpu_ms(call, repeat)) for name, call in pieces]


def _cpu_ms(call: Callable[[], object], repeat: int) -> float:
    call()
    started = time.process_time()
    for _ in range(repeat):
        call()
    return (time.process_time() - started) * 1000 / repeat


def sampled(seconds: float, clients: int) -> tuple[Counter[str], int, int] | None:
    """(samples per group, samples, referrals) of the gateway's main thread under load."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        return None
    with gateway() as gw, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(closed_loop(gw, Referrals(uuid.uuid4().hex[:8]), 1000, clients))  # warm-up
        out = Path(tmp) / "samples.txt"
        command = [spy, "record", "-p", str(gw.pid), "-o", str(out), "-f", "raw", "-d", str(int(seconds))]
        recorder = subprocess.Popen([*command, "-r", "100", "--threads", "--nonblocking"], stdout=subprocess.DEVNULL)
        count = int(seconds * 150)
        results = asyncio.run(closed_loop(gw, Referrals(uuid.uuid4().hex[:8]), count, clients))
        recorder.wait()
        groups, total = _grouped(out.read_text())
    return groups, total, results.answered


def _grouped(raw: str) -> tuple[Counter[str], int]:
    groups: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if "MainThread" not in stack.split(";", 1)[0]:
            continue
        total += int(count)
        group = next((name for name, marks in GROUPS if any(m in stack for m in marks)), "event loop, other")
        groups[group] += int(count)
    return groups, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=64)
    args = parser.parse_args(argv)
    print("FHIR work per referral, CPU in this process:")
    for name, ms in stages():
        print(f"  {name:58} {ms:6.2f} ms")
    found = sampled(args.seconds, args.clients)
    if found is None:
        print("process profile: py-spy is not installed (.venv/bin/pip install py-spy)")
        return 0
    groups, total, referrals = found
    print(f"gateway event-loop thread under load ({referrals} referrals, {total} samples, py-spy):")
    for name, samples in groups.most_common():
        print(f"  {name:58} {100 * samples / total:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
