"""HL7 v2 over MLLP: the referral as REF^I12 (encoded by `adapters.hl7v2.encode`) to the receiver's
host:port, or its Task as RRI^I12 back to the referrer's; delivered when the ACK says AA.

MSH-10 is derived from the event id, so every copy of one event carries the same control id and the
receiver can tell a resend from a new message. The ACK decides (MSA-1): AA delivered; AR refused,
not retried; AE retried unless ERR-3 (HL7 table 0357) says the content itself is wrong (1xx, 200-205).
No connection, no ACK within the timeout, or an ACK to another message: retriable.
Must not: decide to retry, record or commit anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from contextlib import suppress
from typing import Any

from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

from adapters.hl7v2 import encode as hl7v2
from adapters.hl7v2.tables import Hl7Tables
from adapters.outbound.receipt import Outgoing, Receipt
from gateway.errors import DeliveryFailed

FORMAT = "hl7v2-mllp"
START_BLOCK, END_BLOCK = b"\x0b", b"\x1c\x0d"
_CONTENT_ERRORS = {"100", "101", "102", "103", "200", "201", "202", "203", "204", "205"}


def control_id(event_id: str) -> str:
    """MSH-10 from the event id: the same for every copy, within v2.5's 20 characters."""
    return hashlib.sha256(event_id.encode()).hexdigest()[:20].upper()


async def send_ref_i12(address: str, outgoing: Outgoing, timeout_s: float, hl7: Hl7Tables) -> Receipt:
    msh_10 = control_id(outgoing.event_id)
    return await _send(address, hl7v2.encode_ref_i12(outgoing, msh_10, hl7), msh_10, timeout_s)


async def send_rri_i12(address: str, outgoing: Outgoing, timeout_s: float, hl7: Hl7Tables) -> Receipt:
    """Status back to an HL7 v2 referrer: the Task as RRI^I12, with the referral it is about."""
    assert outgoing.referral is not None, "a status event carries its referral"
    msh_10 = control_id(outgoing.event_id)
    message = hl7v2.encode_rri_i12(outgoing, json.loads(outgoing.referral), msh_10, hl7)
    return await _send(address, message, msh_10, timeout_s)


async def _send(address: str, message: str, msh_10: str, timeout_s: float) -> Receipt:
    host, port = _host_port(address)
    try:
        ack = await asyncio.wait_for(_exchange(host, port, message), timeout_s)
    except TimeoutError as exc:
        raise DeliveryFailed(f"no ACK from {address} within {timeout_s:g}s") from exc
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise DeliveryFailed(f"MLLP to {address} failed: {exc or type(exc).__name__}") from exc
    return receipt(ack, msh_10)


def receipt(ack: bytes, msh_10: str) -> Receipt:
    """What the ACK means for the message sent with control id `msh_10`."""
    try:
        message = parse_message(ack.decode(errors="replace").strip(), find_groups=False)
        code, answers, text = (message.msa.msa_1.value, message.msa.msa_2.value, message.msa.msa_3.value)
        error = _error_code(message)
    except (HL7apyException, AttributeError, IndexError, KeyError) as exc:
        raise DeliveryFailed(f"the receiver's answer is not an HL7 ACK: {exc}") from exc
    if answers != msh_10:
        raise DeliveryFailed(f"the ACK answers message {answers}, not {msh_10}")
    if code in ("AA", "CA"):
        return Receipt(f"{code} MSA-2 {answers}")
    detail = f"the receiver answered {code}{f' ({error})' if error else ''}: {text or 'no reason given'}"
    raise DeliveryFailed(detail, retriable=code in ("AE", "CE") and error not in _CONTENT_ERRORS)


def _error_code(message: Any) -> str:
    """The HL7 error code (table 0357): ERR-3.1 from v2.5 on, ERR-1.4 before."""
    if not len(message.err):
        return ""
    try:
        return str(message.err.err_3.err_3_1.value or "")
    except HL7apyException:
        parts = message.err.err_1.to_er7().split("^")
        return parts[3].split("&")[0] if len(parts) > 3 else ""


async def _exchange(host: str, port: int, message: str) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(START_BLOCK + message.encode() + END_BLOCK)
        await writer.drain()
        frame = await reader.readuntil(END_BLOCK)
    finally:
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()
    return frame[frame.find(START_BLOCK) + 1 : -len(END_BLOCK)]


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise DeliveryFailed(f"'{address}' is not an MLLP host:port", retriable=False)
    return host, int(port)
