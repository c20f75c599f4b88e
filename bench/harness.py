"""What every benchmark needs: a broker, a gateway process (SQLite or a PostgreSQL schema of its
own), and readings from /proc of that process (RSS, CPU time)."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL, free_port, postgres_answers, start_tansu
from tests.processes import gateway_env, local_token, start_gateway, wait_ready

SQLITE, POSTGRESQL = "sqlite", "postgresql"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Gateway:
    base_url: str
    host: str
    port: int
    pid: int
    servers: str  # the broker it publishes to
    data_dir: Path
    token: str  # the development partner's bearer token


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "unknown CPU")
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory_kib / 2**20:.0f} GiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )


def store_kinds() -> list[str]:
    return [SQLITE, POSTGRESQL] if postgres_answers() else [SQLITE]


@contextmanager
def broker() -> Iterator[str]:
    port = free_port()
    proc = start_tansu(port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def gateway(store: str = SQLITE, **extra: str) -> Iterator[Gateway]:
    """One `referral-gateway serve` process with its own broker and store, killed afterwards."""
    with TemporaryDirectory(prefix="bench-") as tmp, broker() as servers, store_env(store) as env_of_store:
        data_dir, api = Path(tmp), free_port()
        env = {**gateway_env(data_dir, api, free_port(), kafka=servers), **UNLIMITED, **env_of_store, **extra}
        proc = start_gateway(env, data_dir / "gateway.log")
        base_url = f"http://127.0.0.1:{api}"
        try:
            wait_ready(proc, base_url, timeout=60)
            yield Gateway(base_url, "127.0.0.1", api, proc.pid, servers, data_dir, local_token(data_dir))
        finally:
            stop(proc)


# The load comes from one client: its rate limit would measure the limiter, not the gateway; and it
# holds one token for the whole run (the default lifetime, 15 minutes, is shorter than a long run).
# The inbound message log is on, as in production (a benchmark that measures it off says so).
UNLIMITED = {
    "AUTH_RATE_LIMIT_PER_S": "1000000",
    "AUTH_RATE_LIMIT_BURST": "1000000",
    "AUTH_TOKEN_TTL_S": str(24 * 3600),
    "INBOUND_ENABLED": "true",
}


@contextmanager
def store_env(store: str) -> Iterator[dict[str, str]]:
    """The settings for a store of the benchmark's own: SQLite in the data directory, or a PostgreSQL
    schema dropped afterwards."""
    if store == SQLITE:
        yield {}
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        yield {"STORE_URL": POSTGRES_URL, "STORE_DB_SCHEMA": schema}
    finally:
        asyncio.run(_drop_schema(schema))


async def _drop_schema(schema: str) -> None:
    url = make_url(POSTGRES_URL)
    conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process, in KiB, from /proc/PID/status."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


async def poll(check: Callable[[], Awaitable[bool] | bool], interval_s: float, timeout_s: float) -> bool:
    """Whether `check` came true within the time-out, asking every `interval_s`."""
    deadline = time.perf_counter() + timeout_s
    while True:
        result = check()
        if await result if isinstance(result, Awaitable) else result:
            return True
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(interval_s)
