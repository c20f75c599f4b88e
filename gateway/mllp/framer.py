"""MLLP framing as a pure object, in the manner of h11: push bytes in with `receive_data`, take
whole frames out with `next_frame`, which answers `NEED_DATA` until a frame is complete.

    <VT 0x0B> message <FS 0x1C><CR 0x0D>

Bytes between frames (a sender's stray CR LF, keep-alive noise) are dropped, and so is a frame a
sender abandoned by starting another. A frame, or a run of
bytes that has not yet ended one, longer than `max_frame_bytes` raises `FrameTooLarge`: the
connection cannot be trusted to be in step after that, so the caller answers and closes it.
Must not: decode or parse the message, or touch a socket.
"""

from __future__ import annotations

from enum import Enum

from gateway.errors import Issue, MalformedInput

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"


class _Need(Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA = _Need.NEED_DATA


class FrameTooLarge(MalformedInput):
    """A frame longer than the listener takes."""


class MllpFramer:
    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._searched = 0  # how far the buffer has been searched for the end block

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as a frame (a partial frame at end of stream)."""
        return len(self._buffer)

    def next_frame(self) -> bytes | _Need:
        start = self._buffer.find(START_BLOCK)
        if start < 0:
            self._buffer.clear()  # nothing but noise between frames
            self._searched = 0
            return NEED_DATA
        if start > 0:
            del self._buffer[:start]
            self._searched = max(0, self._searched - start)
        end = self._buffer.find(END_BLOCK, max(1, self._searched))
        if end < 0:
            self._searched = max(1, len(self._buffer) - 1)  # the FS may be the last byte so far
            self._check_size(len(self._buffer) - 1 - self._buffer.endswith(END_BLOCK[:1]))
            return NEED_DATA
        begin = self._buffer.rfind(START_BLOCK, 0, end)  # a sender that gave up on a frame and began again
        frame = bytes(self._buffer[begin + 1 : end])
        del self._buffer[: end + len(END_BLOCK)]
        self._searched = 0
        self._check_size(len(frame))
        return frame

    def _check_size(self, size: int) -> None:
        if size > self.max_frame_bytes:
            self._buffer.clear()
            self._searched = 0
            raise FrameTooLarge(
                f"an MLLP frame is longer than {self.max_frame_bytes} bytes",
                Issue(f"frames up to {self.max_frame_bytes} bytes are taken", None, "too-long"),
            )
