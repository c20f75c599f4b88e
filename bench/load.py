"""Load for the benchmarks: unique referrals made cheaply from the sample, and a lean keep-alive
HTTP/1.1 client to send them, closed-loop (N clients back to back) or at a fixed offered rate.

The client is a few lines over asyncio streams on purpose: a full client (httpx) spends about 2 ms
of CPU per request, and on a two-core machine that CPU would be taken from the gateway measured.
It expects what the gateway sends: a Content-Length on every response.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.settings import SCHEMAS_DIR
from tests.samples import valid_nhs_number

FHIR_JSON = "application/fhir+json"
_UBRN, _NHS = "@@UBRN@@", "@@NHS@@"


class Referrals:
    """Request bodies: the MSK-pain sample with a unique UBRN and one of a pool of NHS numbers."""

    def __init__(self, run: str, patients: int = 5000, seed: int = 7) -> None:
        sample = json.loads((SCHEMAS_DIR / "samples" / "fhir" / "servicerequest-msk-pain.json").read_text())
        sample["identifier"][0]["value"] = _UBRN
        sample["subject"]["identifier"]["value"] = _NHS
        head, tail = json.dumps(sample).split(_UBRN)
        self._parts = (head.encode(), tail.encode())
        rng = random.Random(seed)
        self._patients = [valid_nhs_number(rng).encode() for _ in range(patients)]
        self._run = run.encode()

    def body(self, i: int) -> bytes:
        head, tail = self._parts
        text = head + self._run + b"%09d" % i + tail
        return text.replace(_NHS.encode(), self._patients[i % len(self._patients)])


class Target(Protocol):
    """Where the load goes (bench.harness.Gateway is one), with a bearer token that may write referrals."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def token(self) -> str: ...


class Connection:
    """One keep-alive HTTP/1.1 connection; requests on it go one after another."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, token: str) -> None:
        self._reader, self._writer = reader, writer
        self._head = b"Host: %s\r\nAuthorization: Bearer %s\r\n" % (host.encode(), token.encode())

    @classmethod
    async def open(cls, target: Target) -> Connection:
        reader, writer = await asyncio.open_connection(target.host, target.port)
        return cls(reader, writer, target.host, target.token)

    async def post(self, path: str, body: bytes, content_type: str = FHIR_JSON) -> tuple[int, bytes]:
        self._writer.write(
            b"POST %s HTTP/1.1\r\n%sContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (path.encode(), self._head, content_type.encode(), len(body), body)
        )
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = _content_length(head)
        return status, await self._reader.readexactly(length)

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ValueError("a response without Content-Length")


Sent = Callable[[int, int, bytes], Awaitable[None] | None]  # (referral number, status, body)


@dataclass
class Results:
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    first_sent: float = 0.0
    last_answered: float = 0.0

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    def count(self, status: int, at: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.last_answered = max(self.last_answered, at)


async def closed_loop(
    target: Target, referrals: Referrals, count: int, clients: int, results: Results | None = None
) -> Results:
    """`clients` connections each sending the next referral as soon as the last was answered;
    `results` (optional) is filled as the answers come, for a watcher to read meanwhile."""
    results = results or Results()
    results.first_sent, numbers = time.perf_counter(), iter(range(count))

    async def client() -> None:
        conn = await Connection.open(target)
        try:
            for i in numbers:  # one shared iterator: every referral is sent once
                status, _ = await conn.post("/fhir/ServiceRequest", referrals.body(i))
                results.count(status, time.perf_counter())
        finally:
            await conn.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return results


async def fixed_rate(
    target: Target, referrals: Referrals, rate: float, seconds: float, warm_up_s: float = 2.0
) -> Results:
    """Send at `rate` per second whatever the answers; latency counts from when a request was due,
    so a slow answer that delays the next request is not hidden (no coordinated omission)."""
    idle: deque[Connection] = deque()  # oldest first, so none idles past the server's keep-alive
    results, tasks = Results(), []
    start = time.perf_counter() + 0.1
    total = int((seconds + warm_up_s) * rate)

    async def send(i: int, due: float) -> None:
        conn = idle.popleft() if idle else await Connection.open(target)
        try:
            status, _ = await conn.post("/fhir/ServiceRequest", referrals.body(i))
        except (asyncio.IncompleteReadError, ConnectionError):  # closed while idle: nothing was processed
            conn = await Connection.open(target)
            status, _ = await conn.post("/fhir/ServiceRequest", referrals.body(i))
        done = time.perf_counter()
        idle.append(conn)
        results.count(status, done)
        if due - start >= warm_up_s:
            results.latencies_ms.append((done - due) * 1000)

    for i in range(total):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(send(i, due)))
    await asyncio.gather(*tasks)
    await asyncio.gather(*(c.close() for c in idle))
    return results


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]
