"""The demo receiver's HL7 v2 endpoint: REF^I12 over MLLP, answered with an ACK (AA, or the AE / AR it
was told to answer with). A message is kept once per referral (RF1-6, else MSH-10); a resend with
the same MSH-10 is acknowledged again without keeping it twice. As a referrer it also takes RRI^I12,
the status coming back (its NTEs say the exact status and why).

Read and written with the project's HL7 v2 codec and framed by `MllpConnection`, as a receiver would
be that keeps a sender's connection open for message after message.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import suppress
from datetime import UTC, datetime

from adapters.hl7v2 import parser, writer
from adapters.hl7v2.parser import Message
from adapters.mllp.connection import FrameTooLarge, MllpConnection
from adapters.mllp.streams import read_frame
from gateway.demo_receiver.ledger import ReceivedReferrals
from gateway.errors import MalformedInput

log = logging.getLogger(__name__)

FORMAT = "hl7v2-mllp"
MAX_FRAME_BYTES = 1024 * 1024
_REASONS = {"I12": "new", "I13": "update", "I14": "delete"}


async def serve_connection(
    ledger: ReceivedReferrals, reader: asyncio.StreamReader, writer_: asyncio.StreamWriter
) -> None:
    mllp = MllpConnection(MAX_FRAME_BYTES)
    try:
        while (frame := await read_frame(reader, mllp)) is not None:
            writer_.write(mllp.send((await answer(ledger, frame.decode(errors="replace"))).encode()))
            await writer_.drain()
    except FrameTooLarge:
        log.warning("demo receiver: an MLLP frame over %d bytes, connection closed", MAX_FRAME_BYTES)
    except ConnectionError:
        pass  # the sender went away
    finally:
        writer_.close()
        with suppress(OSError):
            await writer_.wait_closed()


async def answer(ledger: ReceivedReferrals, text: str) -> str:
    """The ACK for one message, after keeping it (or failing as told)."""
    try:
        message = parser.parse(text)
    except MalformedInput as exc:
        return ack("", "AR", f"not an HL7 v2 message: {exc.message}")
    msh = message.msh
    msh_10, event = msh.text(10), msh.text(9, 2)
    rf1 = message.first("RF1")
    identity = (rf1.first(6).raw if rf1 else "") or msh_10
    if msh.text(9, 1) == "RRI":
        ledger.heard(FORMAT, identity, *_status(message))
        return ack(msh_10, "AA", "")
    failure = await ledger.misbehave("mllp")
    if failure is not None:
        ledger.failed(FORMAT, identity, msh_10, failure)
        return ack(msh_10, str(failure), "the demo receiver was told to refuse this", error="207")
    ours = (rf1.text(11) if rf1 else "") or None  # RF1-11: the gateway's referral id (^REFERRAL-GATEWAY)
    ledger.keep(FORMAT, identity, msh_10, _REASONS.get(event, "update"), text, ours)
    return ack(msh_10, "AA", "")


def ack(msh_10: str, code: str, text: str, error: str | None = None) -> str:
    msh = writer.msh(
        [
            "DEMO-RECEIVER",
            None,
            None,
            None,
            datetime.now(UTC).strftime("%Y%m%d%H%M%S"),
            None,
            ("ACK", "I12", "ACK"),
            uuid.uuid4().hex[:20].upper(),
            "P",
            "2.5",
        ]
    )
    segments = [msh, writer.segment("MSA", [code, msh_10, text or None])]
    if error:
        segments.append(writer.segment("ERR", [None, None, (error, "Application internal error", "HL70357"), "E"]))
    return writer.message(segments)


def _status(message: Message) -> tuple[str, str | None]:
    notes = [n.text(3) for n in message.all("NTE")]
    status = next((n.removeprefix("Referral status:").strip() for n in notes if n.startswith("Referral status:")), "")
    others = [n for n in notes if n and not n.startswith("Referral status:")]
    rf1 = message.first("RF1")
    return status or (rf1.raw(1) if rf1 else ""), "; ".join(others) or None
