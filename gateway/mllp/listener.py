"""The MLLP listener: TCP (optionally TLS) connections from HL7 v2 senders, many at once, many messages
on each, answered in order with what the handler returns.

    connection -> allowlist check -> read -> MllpConnection -> frame -> handler(text) -> ACK frame(s)

A connection is closed when the sender closes it, after `idle_timeout_s` without a byte, or after a
frame longer than `max_frame_bytes` (answered AR first). Frames are decoded as UTF-8, else Latin-1,
and answered in the same encoding. `start()` and `stop()` are idempotent; `stop()` stops accepting
and closes every open connection. With `reuse_port` (MLLP_REUSE_PORT, set by `serve --workers N`)
the port is bound with SO_REUSEPORT, so each worker process listens on it too.
Must not: parse HL7 or decide anything about a message (the handler does).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from contextlib import suppress

from adapters.hl7v2 import ack
from adapters.hl7v2.tables import Hl7Tables
from adapters.mllp.connection import NEED_DATA, FrameTooLarge, MllpConnection
from gateway.audit import context as audit_context
from gateway.inbound_log.arrival import frame_received
from gateway.mllp.handler import Handler
from gateway.settings import MllpSettings

log = logging.getLogger(__name__)

_READ_SIZE = 64 * 1024
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class MllpListener:
    def __init__(self, settings: MllpSettings, handler: Handler, hl7: Hl7Tables) -> None:
        self.settings = settings
        self._handler = handler
        self._hl7 = hl7
        self._allowed = [ipaddress.ip_network(source, strict=False) for source in settings.allowed_sources]
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose, when settings ask for port 0)."""
        if self._server is None or not self._server.sockets:
            return self.settings.port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        if self._server is not None:
            return
        tls = self._tls()
        self._server = await asyncio.start_server(
            self._serve,
            self.settings.host,
            self.settings.port,
            ssl=tls,
            limit=_READ_SIZE,
            reuse_port=self.settings.reuse_port or None,  # worker processes share the port (serve --workers)
        )
        log.info("MLLP listening on %s:%d%s", self.settings.host, self.port, " (TLS)" if tls else "")

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()
        log.info("MLLP listener stopped")

    async def __aenter__(self) -> MllpListener:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def _tls(self) -> ssl.SSLContext | None:
        certfile, keyfile = self.settings.tls_certfile, self.settings.tls_keyfile
        if certfile is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certfile, keyfile)
        return context

    def _allows(self, peer: object) -> bool:
        if not self._allowed:
            return True
        host = peer[0] if isinstance(peer, tuple) and peer else None
        try:
            address = ipaddress.ip_address(str(host))
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._allowed)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        audit_context.connected_from(str(peer[0]) if isinstance(peer, tuple) and peer else None)
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            if self._allows(peer):
                await self._converse(reader, writer)
            else:
                log.warning("MLLP connection from %s refused: not in the allowed sources", peer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            log.debug("MLLP connection from %s ended: %s", peer, exc)
        except Exception:
            log.exception("MLLP connection from %s failed", peer)
        finally:
            if task is not None:
                self._connections.discard(task)
            await _close(writer)

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mllp = MllpConnection(self.settings.max_frame_bytes)
        while True:
            try:
                async with asyncio.timeout(self.settings.idle_timeout_s):  # no task per read, as wait_for makes
                    data = await reader.read(_READ_SIZE)
            except TimeoutError:
                log.info("MLLP connection from %s idle for %gs: closed", _peer(writer), self.settings.idle_timeout_s)
                return
            if not data:
                if mllp.buffered:
                    log.info("MLLP sender %s closed mid-frame: %d bytes unanswered", _peer(writer), mllp.buffered)
                return
            mllp.receive_data(data)
            try:
                await self._answer_frames(mllp, writer)
            except FrameTooLarge as exc:
                await _send(mllp, writer, [ack.unreadable(exc, self._hl7)], "utf-8")
                log.warning("MLLP frame too large from %s: closed", _peer(writer))
                return

    async def _answer_frames(self, mllp: MllpConnection, writer: asyncio.StreamWriter) -> None:
        while (frame := mllp.next_frame()) is not NEED_DATA:
            assert isinstance(frame, bytes)
            text, codec = _decode(frame)
            frame_received(frame)  # the inbound log keeps the bytes as read
            await _send(mllp, writer, await self._handler(text), codec)


def _peer(writer: asyncio.StreamWriter) -> object:
    return writer.get_extra_info("peername")


def _decode(frame: bytes) -> tuple[str, str]:
    try:
        return frame.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return frame.decode("latin-1"), "latin-1"


async def _send(mllp: MllpConnection, writer: asyncio.StreamWriter, answers: list[str], codec: str) -> None:
    if not answers:
        return
    writer.write(b"".join(mllp.send(a.encode(codec, errors="replace")) for a in answers))
    await writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
