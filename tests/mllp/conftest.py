"""An MLLP listener on a loopback port in front of the real intake (UK Core rules, router, SQLite store
with group commit), and a plain socket client that reads ACK frames with nothing of ours but bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.intake import Intake
from gateway.mllp.handler import ReferralHandler
from gateway.mllp.listener import MllpListener
from gateway.routing import load_router
from gateway.settings import SCHEMAS_DIR, MllpSettings
from gateway.store import Store
from tests.hl7v2.messages import HL7

VT, END = b"\x0b", b"\x1c\x0d"


@pytest.fixture
def intake(store: Store) -> Intake:
    return Intake(store, load_router(SCHEMAS_DIR), on_commit=lambda: None)


def mllp_settings(**changes: object) -> MllpSettings:
    return MllpSettings.model_validate({"port": 0, "idle_timeout_s": 10.0, **changes})


@pytest.fixture
async def listener(intake: Intake) -> AsyncIterator[MllpListener]:
    async with MllpListener(mllp_settings(), ReferralHandler(intake, HL7), HL7) as running:
        yield running


class Sender:
    """One MLLP connection, as a sending system opens it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, **kwargs: object) -> Sender:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, **kwargs)  # type: ignore[arg-type]
        return cls(reader, writer)

    async def send(self, text: str) -> str:
        self.writer.write(VT + text.encode() + END)
        await self.writer.drain()
        return await self.ack()

    async def ack(self, timeout: float = 10.0) -> str:
        frame = await asyncio.wait_for(self.reader.readuntil(END), timeout)
        return frame[frame.index(VT) + 1 : -len(END)].decode()

    async def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True when the listener closed the connection (a reset counts: it closed with our bytes unread)."""
        try:
            return await asyncio.wait_for(self.reader.read(), timeout) == b""
        except ConnectionResetError:
            return True

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass
