"""Demo receivers on loopback for the delivery tests, and a few helpers to wait for what arrives."""

from __future__ import annotations

import asyncio
import inspect
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

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
