"""The few lines that join an `MllpConnection` to asyncio streams, for the peers that read one frame at
a time (the outbound client waiting for its ACK, the demo receiver, the benchmarks' senders). The
listener reads with its own loop, since it answers every frame a read brought and times out idle
connections by the byte.
Must not: decide anything about what a frame holds.
"""

from __future__ import annotations

import asyncio

from adapters.mllp.connection import NEED_DATA, MllpConnection

READ_SIZE = 64 * 1024


async def read_frame(reader: asyncio.StreamReader, mllp: MllpConnection) -> bytes | None:
    """The next whole frame, reading as far as it takes; None when the peer closed the stream first.
    Raises `FrameTooLarge` past the connection's limit."""
    while (frame := mllp.next_frame()) is NEED_DATA:
        data = await reader.read(READ_SIZE)
        if not data:
            return None
        mllp.receive_data(data)
    assert isinstance(frame, bytes)
    return frame
