"""Demo receivers on loopback for the delivery tests, and a few helpers to wait for what arrives."""

from __future__ import annotations

import asyncio
import inspect
import json
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import h11

from gateway.demo_receiver import DemoReceiver
from gateway.settings import SCHEMAS_DIR


@asynccontextmanager
async def demo_receiver() -> AsyncIterator[DemoReceiver]:
    receiver = DemoReceiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 15.0, what: str = "the condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not await _holds(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.05)


async def _holds(check: Callable[[], bool | Awaitable[bool]]) -> bool:
    result = check()
    return bool(await result) if inspect.isawaitable(result) else bool(result)


def schemas_for_receiver(schemas: Path, http_port: int, mllp_port: int) -> Path:
    """A copy of the gateway's schemas at `schemas` whose service directory sends every receiver's
    FHIR and MLLP traffic to a test's demo receiver on these ports."""
    shutil.copytree(SCHEMAS_DIR, schemas)
    directory = schemas / "directory" / "directory.json"
    text = directory.read_text().replace("127.0.0.1:8090", f"127.0.0.1:{http_port}")
    directory.write_text(text.replace("127.0.0.1:2576", f"127.0.0.1:{mllp_port}"))
    return schemas


class CountingReceiver:
    """A FHIR REST receiver on loopback that answers each request after `delay_s` and counts what
    the sender did: the connections it opened, the requests in hand at once (overall and per
    patient), and the order each patient's referrals came in (their `note` text). HTTP/1.1 with
    keep-alive, read and written by h11 over a real socket."""

    def __init__(self, delay_s: float = 0.05) -> None:
        self.delay_s = delay_s
        self.connections = 0
        self.in_hand = 0
        self.most_in_hand = 0
        self.patients_in_hand: dict[str, int] = {}
        self.overlapped: list[str] = []  # patients with two requests in hand at once
        self.arrivals: dict[str, list[str]] = {}  # NHS number: notes, in the order they came
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/fhir"

    @property
    def received(self) -> int:
        return sum(len(notes) for notes in self.arrivals.values())

    async def __aenter__(self) -> CountingReceiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        connection = h11.Connection(h11.SERVER)
        try:
            while (body := await _request(connection, reader)) is not None:
                await self._take(json.loads(body))
                answer = b'{"resourceType":"ServiceRequest"}'
                headers = [("content-type", "application/fhir+json"), ("content-length", str(len(answer)))]
                writer.write(connection.send(h11.Response(status_code=201, headers=headers)) or b"")
                writer.write(connection.send(h11.Data(data=answer)) or b"")
                writer.write(connection.send(h11.EndOfMessage()) or b"")
                await writer.drain()
                connection.start_next_cycle()
        except (ConnectionError, h11.ProtocolError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _take(self, sr: dict[str, object]) -> None:
        patient = str(sr["subject"]["identifier"]["value"])  # type: ignore[index]
        self.in_hand += 1
        self.most_in_hand = max(self.most_in_hand, self.in_hand)
        self.patients_in_hand[patient] = self.patients_in_hand.get(patient, 0) + 1
        if self.patients_in_hand[patient] > 1:
            self.overlapped.append(patient)
        try:
            await asyncio.sleep(self.delay_s)
            self.arrivals.setdefault(patient, []).append(str(sr["note"][0]["text"]))  # type: ignore[index]
        finally:
            self.in_hand -= 1
            self.patients_in_hand[patient] -= 1


async def _request(connection: h11.Connection, reader: asyncio.StreamReader) -> bytes | None:
    """The next request's body; None when the sender closed the connection."""
    body = b""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await reader.read(65536))  # b"" at the end: ConnectionClosed next
            continue
        if isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return body
        elif isinstance(event, h11.ConnectionClosed):
            return None
