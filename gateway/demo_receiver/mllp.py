"""The demo receiver's HL7 v2 endpoint: REF^I12 over MLLP, answered with an ACK (AA, or the AE / AR it
was told to answer with). A message is kept once per referral (RF1-6, else MSH-10); a resend with
the same MSH-10 is acknowledged again without keeping it twice. As a referrer it also takes RRI^I12,
the status coming back (its NTEs say the exact status and why)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from hl7apy.core import Message
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

from gateway.demo_receiver.ledger import ReceivedReferrals

log = logging.getLogger(__name__)

FORMAT = "hl7v2-mllp"
START_BLOCK, END_BLOCK = b"\x0b", b"\x1c\x0d"
_REASONS = {"I12": "new", "I13": "update", "I14": "delete"}


async def serve_connection(
    ledger: ReceivedReferrals, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            frame = await reader.readuntil(END_BLOCK)
            text = frame[frame.find(START_BLOCK) + 1 : -len(END_BLOCK)].decode(errors="replace")
            writer.write(START_BLOCK + (await answer(ledger, text)).encode() + END_BLOCK)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the sender closed the connection
    finally:
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()


async def answer(ledger: ReceivedReferrals, text: str) -> str:
    """The ACK for one message, after keeping it (or failing as told)."""
    try:
        message = parse_message(text.replace("\n", "\r").strip(), find_groups=False)
        msh_10 = str(message.msh.msh_10.value)
        event = str(message.msh.msh_9.msh_9_2.value)
    except (HL7apyException, AttributeError, IndexError) as exc:
        return ack("", "AR", f"not an HL7 v2 message: {exc}")
    identity = _placer_referral(message) or msh_10
    if str(message.msh.msh_9.msh_9_1.value) == "RRI":
        ledger.heard(FORMAT, identity, *_status(message))
        return ack(msh_10, "AA", "")
    failure = await ledger.misbehave("mllp")
    if failure is not None:
        ledger.failed(FORMAT, identity, msh_10, failure)
        return ack(msh_10, str(failure), "the demo receiver was told to refuse this", error="207")
    ledger.keep(FORMAT, identity, msh_10, _REASONS.get(event, "update"), text, _ours(message))
    return ack(msh_10, "AA", "")


def ack(msh_10: str, code: str, text: str, error: str | None = None) -> str:
    message = Message("ACK", version="2.5")
    message.msh.msh_3 = "DEMO-RECEIVER"
    message.msh.msh_7 = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    message.msh.msh_9 = "ACK^I12^ACK"
    message.msh.msh_10 = uuid.uuid4().hex[:20].upper()
    message.msh.msh_11 = "P"
    message.msa.msa_1 = code
    message.msa.msa_2 = msh_10
    if text:
        message.msa.msa_3 = text
    if error:
        message.add_segment("ERR")
        message.err.err_3 = f"{error}^Application internal error^HL70357"
        message.err.err_4 = "E"
    return str(message.to_er7())


def _status(message: Any) -> tuple[str, str | None]:
    notes = [str(n.nte_3.to_er7()) for n in message.children if n.name == "NTE"]
    status = next((n.removeprefix("Referral status:").strip() for n in notes if n.startswith("Referral status:")), "")
    others = [n for n in notes if not n.startswith("Referral status:")]
    return status or str(message.rf1.rf1_1.to_er7()), "; ".join(others) or None


def _ours(message: Any) -> str | None:
    """RF1-11: the gateway's referral id (^REFERRAL-GATEWAY)."""
    with suppress(HL7apyException, AttributeError, IndexError):
        return str(message.rf1.rf1_11.rf1_11_1.to_er7()) or None
    return None


def _placer_referral(message: Any) -> str:
    with suppress(HL7apyException, AttributeError, IndexError):
        return str(message.rf1.rf1_6.to_er7())
    return ""
