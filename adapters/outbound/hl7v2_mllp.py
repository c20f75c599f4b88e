"""HL7 v2 over MLLP: the referral as REF^I12 (encoded by `adapters.hl7v2.encode`) to the receiver's
host:port, or its Task as RRI^I12 back to the referrer's; delivered when the ACK says AA.

MSH-10 is derived from the event id, so every copy of one event carries the same control id and the
receiver can tell a resend from a new message. The ACK decides (MSA-1): AA delivered; AR refused,
not retried; AE retried unless ERR-3 (HL7 table 0357) says the content itself is wrong (1xx, 200-205).
No connection, no ACK within the timeout, an ACK larger than the limit, or an answer that is not
HL7: retriable. The ACK is read with the project's HL7 v2 parser (hl7apy is too slow for every
delivery).

`MllpClient` keeps connections to each receiver open, up to `connections` of them (one by default),
and sends each message on one not in use, waiting for its ACK before that connection carries the
next: several messages go to one receiver at once, one per connection, each connection in order (the
caller keeps one patient's messages one after another). The connection used last is used first, so a
steady trickle keeps to one connection and only a burst opens more. An
answer to another message (an enhanced-mode receiver's application ACK after its commit ACK, say) is
passed over while the ACK to this one is awaited. A connection that fails in any way is closed, and
the next message opens a new one. A connection reused from earlier that the receiver has closed
meanwhile (its idle time-out) is opened again and the message sent on the new one at once: the
receiver never answered it, and MSH-10 makes a resend harmless anyway.
Must not: decide to retry, record or commit anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from contextlib import suppress
from dataclasses import dataclass

from adapters.hl7v2 import encode as hl7v2
from adapters.hl7v2 import parser
from adapters.hl7v2.parser import Message
from adapters.hl7v2.tables import Hl7Tables
from adapters.mllp.connection import FrameTooLarge, MllpConnection
from adapters.mllp.streams import read_frame
from adapters.outbound.receipt import Outgoing, Receipt
from gateway.errors import DeliveryFailed, MalformedInput

log = logging.getLogger(__name__)

FORMAT = "hl7v2-mllp"
_CONTENT_ERRORS = {"100", "101", "102", "103", "200", "201", "202", "203", "204", "205"}


def control_id(event_id: str) -> str:
    """MSH-10 from the event id: the same for every copy, within v2.5's 20 characters."""
    return hashlib.sha256(event_id.encode()).hexdigest()[:20].upper()


class _Closed(ConnectionError):
    """The receiver closed the connection before it answered."""


@dataclass
class _Link:
    """One connection to a receiver: used by one message at a time (its pool hands it out)."""

    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    mllp: MllpConnection | None = None

    async def close(self) -> None:
        writer, self.reader, self.writer, self.mllp = self.writer, None, None, None
        if writer is not None:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()


class _Pool:
    """A receiver's connections: each handed to one message at a time, the one given back last first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free: asyncio.LifoQueue[_Link] = asyncio.LifoQueue()
        for _ in range(size):
            self._free.put_nowait(_Link())  # opened when first used

    async def take(self) -> _Link:
        return await self._free.get()

    def give_back(self, link: _Link) -> None:
        self._free.put_nowait(link)

    async def close(self) -> None:
        """Close every connection, waiting for those in use to be given back."""
        for _ in range(self.size):
            link = await self._free.get()
            await link.close()


class MllpClient:
    """Connections to MLLP receivers, up to `connections` per host:port, kept open between messages.

    `connect_timeout_s` bounds opening a connection, `read_timeout_s` the wait for the ACK once the
    message is written, `max_ack_bytes` the ACK frame (a larger one closes the connection)."""

    def __init__(
        self, connect_timeout_s: float, read_timeout_s: float, max_ack_bytes: int = 64 * 1024, connections: int = 1
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_ack_bytes = max_ack_bytes
        self.connections = connections
        self._pools: dict[tuple[str, int], _Pool] = {}

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.close()

    async def __aenter__(self) -> MllpClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def exchange(self, address: str, message: str, msh_10: str) -> Message:
        """Send `message` (control id `msh_10`) to the receiver at `address`; its ACK, read."""
        host, port = _host_port(address)
        pool = self._pools.setdefault((host, port), _Pool(self.connections))
        link = await pool.take()
        try:
            return await self._exchange(link, host, port, message.encode(), msh_10)
        except BaseException:
            await link.close()  # out of step or gone: the next message on it starts afresh
            raise
        finally:
            pool.give_back(link)

    async def _exchange(self, link: _Link, host: str, port: int, payload: bytes, msh_10: str) -> Message:
        reused = link.writer is not None and link.reader is not None and not link.reader.at_eof()
        if not reused:
            await link.close()
            await self._connect(link, host, port)
        try:
            return await self._round_trip(link, payload, msh_10)
        except (_Closed, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            log.info("MLLP connection to %s:%d was closed by the receiver: opening a new one", host, port)
        await link.close()
        await self._connect(link, host, port)
        return await self._round_trip(link, payload, msh_10)

    async def _connect(self, link: _Link, host: str, port: int) -> None:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                link.reader, link.writer = await asyncio.open_connection(host, port)
        except TimeoutError as exc:
            raise DeliveryFailed(f"no MLLP connection to {host}:{port} within {self.connect_timeout_s:g}s") from exc
        except OSError as exc:
            raise DeliveryFailed(f"MLLP to {host}:{port} failed: {exc or type(exc).__name__}") from exc
        link.mllp = MllpConnection(self.max_ack_bytes)

    async def _round_trip(self, link: _Link, payload: bytes, msh_10: str) -> Message:
        assert link.writer is not None and link.mllp is not None
        link.writer.write(link.mllp.send(payload))
        await link.writer.drain()
        others: list[str] = []
        try:
            async with asyncio.timeout(self.read_timeout_s):
                return await self._answer(link, msh_10, others)
        except TimeoutError as exc:
            instead = f" (answers came to {', '.join(others)} instead)" if others else ""
            raise DeliveryFailed(f"no ACK within {self.read_timeout_s:g}s{instead}") from exc
        except FrameTooLarge as exc:
            raise DeliveryFailed(f"the receiver's answer is longer than {self.max_ack_bytes} bytes") from exc

    @staticmethod
    async def _answer(link: _Link, msh_10: str, others: list[str]) -> Message:
        """The ACK to `msh_10`. An answer to another message (the application ACK after a commit ACK
        of an enhanced-mode receiver, a second answer to an earlier one) is passed over."""
        assert link.reader is not None and link.mllp is not None
        while (frame := await read_frame(link.reader, link.mllp)) is not None:
            ack = read_ack(frame)
            msa = ack.first("MSA")
            if msa is None or msa.text(2) == msh_10:
                return ack
            log.info("MLLP answer to %s while waiting for the ACK to %s: passed over", msa.text(2), msh_10)
            others.append(msa.text(2))
        raise _Closed("the receiver closed the connection without answering")


async def send_ref_i12(client: MllpClient, address: str, outgoing: Outgoing, hl7: Hl7Tables) -> Receipt:
    msh_10 = control_id(outgoing.event_id)
    return await _send(client, address, hl7v2.encode_ref_i12(outgoing, msh_10, hl7), msh_10)


async def send_rri_i12(client: MllpClient, address: str, outgoing: Outgoing, hl7: Hl7Tables) -> Receipt:
    """Status back to an HL7 v2 referrer: the Task as RRI^I12, with the referral it is about."""
    assert outgoing.referral is not None, "a status event carries its referral"
    msh_10 = control_id(outgoing.event_id)
    message = hl7v2.encode_rri_i12(outgoing, json.loads(outgoing.referral), msh_10, hl7)
    return await _send(client, address, message, msh_10)


async def _send(client: MllpClient, address: str, message: str, msh_10: str) -> Receipt:
    try:
        ack = await client.exchange(address, message, msh_10)
    except DeliveryFailed as exc:
        raise DeliveryFailed(f"{exc.message} ({address})", retriable=exc.retriable) from exc
    except OSError as exc:
        raise DeliveryFailed(f"MLLP to {address} failed: {exc or type(exc).__name__}") from exc
    return meaning(ack, msh_10)


def read_ack(frame: bytes) -> Message:
    """A receiver's answer, read with the project's parser; raises `DeliveryFailed` when it is not HL7."""
    try:
        return parser.parse(frame.decode(errors="replace"))
    except MalformedInput as exc:
        raise DeliveryFailed(f"the receiver's answer is not an HL7 ACK: {exc.message}") from exc


def receipt(ack: bytes, msh_10: str) -> Receipt:
    """What the ACK (as received) means for the message sent with control id `msh_10`."""
    return meaning(read_ack(ack), msh_10)


def meaning(message: Message, msh_10: str) -> Receipt:
    """What the ACK, read, means for the message sent with control id `msh_10`."""
    msa = message.first("MSA")
    if msa is None or not msa.text(1):
        raise DeliveryFailed("the receiver's answer is not an HL7 ACK: it has no MSA-1")
    code, answers, text = msa.text(1).upper(), msa.text(2), msa.text(3)
    if answers != msh_10:
        raise DeliveryFailed(f"the ACK answers message {answers}, not {msh_10}")
    if code in ("AA", "CA"):
        return Receipt(f"{code} MSA-2 {answers}")
    error = _error_code(message)
    detail = f"the receiver answered {code}{f' ({error})' if error else ''}: {text or 'no reason given'}"
    raise DeliveryFailed(detail, retriable=code in ("AE", "CE") and error not in _CONTENT_ERRORS)


def _error_code(message: Message) -> str:
    """The HL7 error code (table 0357): ERR-3.1 from v2.5 on, ERR-1.4 before."""
    err = message.first("ERR")
    return (err.text(3) or err.text(1, 4)) if err is not None else ""


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise DeliveryFailed(f"'{address}' is not an MLLP host:port", retriable=False)
    return host, int(port)
