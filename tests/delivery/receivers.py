"""Demo receivers on loopback for the delivery tests, and a few helpers to wait for what arrives."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from gateway.demo_receiver import DemoReceiver


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
