"""One MLLP connection as a pure object, in the manner of h11: push bytes in with `receive_data`, take
whole frames out with `next_frame` (which answers `NEED_DATA` until a frame is complete), and get the
bytes to write for a message from `send`. The listener, the outbound client and the demo receiver
all frame through this; nothing else knows the block characters.

    <VT 0x0B> message <FS 0x1C><CR 0x0D>

Reading: bytes between frames (a sender's stray CR LF, keep-alive noise) are dropped, and so is a
frame a peer abandoned by starting another. A frame, or a run of bytes that has not yet ended one,
longer than `max_frame_bytes` raises `FrameTooLarge` and leaves the connection `broken`: it cannot be
trusted to be in step after that, so reading more raises `ConnectionBroken`; the caller may still
`send` an answer, then must close the socket.
Writing: `send` refuses a message holding a start block or an FS (the HL7 writer escapes them), which
would end or restart the frame at the other side.
Must not: decode or parse the message, or touch a socket.
"""

from __future__ import annotations

from enum import Enum

from gateway.errors import Issue, MalformedInput

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
_FS = END_BLOCK[:1]


class _Need(Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA = _Need.NEED_DATA


class FrameTooLarge(MalformedInput):
    """A frame longer than this side takes."""


class ConnectionBroken(RuntimeError):
    """Read from a connection after it refused an oversize frame: a fault of the caller, not the peer."""


class Unframable(ValueError):
    """A message that holds MLLP block characters cannot be sent as one frame."""


class MllpConnection:
    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.broken = False
        # A read that starts at a frame boundary (the usual case: a sender waits for each ACK) is kept
        # as it came and its frames sliced out of it, one copy each; only a frame that spans reads is
        # gathered in a bytearray. Frames are found in place: `_at` is where the unread bytes begin.
        self._buffer: bytes | bytearray = b""
        self._at = 0
        self._searched = 0  # how far the buffer has been searched for the end block

    def receive_data(self, data: bytes) -> None:
        self._readable()
        if self._at >= len(self._buffer):
            self._buffer, self._at, self._searched = data, 0, 0
            return
        if isinstance(self._buffer, bytes):
            self._buffer = bytearray(self._buffer)
        del self._buffer[: self._at]  # what the frames before took, dropped once per read
        self._searched = max(0, self._searched - self._at)
        self._at = 0
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as a frame (a partial frame at end of stream)."""
        return len(self._buffer) - self._at

    def next_frame(self) -> bytes | _Need:
        """The next whole frame, copied once out of the buffer (nothing else is sliced); or NEED_DATA."""
        self._readable()
        buffer = self._buffer
        start = buffer.find(START_BLOCK, self._at)
        if start < 0:
            self._reset()  # nothing but noise between frames
            return NEED_DATA
        self._at = start
        end = buffer.find(END_BLOCK, max(start + 1, self._searched))
        if end < 0:
            self._searched = max(start + 1, len(buffer) - 1)  # the FS may be the last byte so far
            self._check_size(len(buffer) - start - 1 - buffer.endswith(_FS))
            return NEED_DATA
        begin = buffer.rfind(START_BLOCK, start, end)  # a peer that gave up on a frame and began again
        self._check_size(end - begin - 1)
        if isinstance(buffer, bytes):
            frame = buffer[begin + 1 : end]
        else:
            with memoryview(buffer) as view:
                frame = bytes(view[begin + 1 : end])
        self._at = self._searched = end + len(END_BLOCK)
        if self._at == len(buffer):
            self._reset()
        return frame

    def send(self, message: bytes) -> bytes:
        """The bytes that carry `message` as one frame."""
        if START_BLOCK in message or _FS in message:
            raise Unframable("an MLLP message must not hold a VT (0x0B) or an FS (0x1C)")
        return START_BLOCK + message + END_BLOCK

    def _readable(self) -> None:
        if self.broken:
            raise ConnectionBroken("this MLLP connection refused an oversize frame and must be closed")

    def _reset(self) -> None:
        self._buffer = b""
        self._at = self._searched = 0

    def _check_size(self, size: int) -> None:
        if size > self.max_frame_bytes:
            self._reset()
            self.broken = True
            raise FrameTooLarge(
                f"an MLLP frame is longer than {self.max_frame_bytes} bytes",
                Issue(f"frames up to {self.max_frame_bytes} bytes are taken", None, "too-long"),
            )
