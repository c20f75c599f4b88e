"""RRI^I12 in: a receiver telling the gateway where a referral stands, read as a proposed Task status.

    RF1-11  our referral id (^REFERRAL-GATEWAY), as every REF^I12 the gateway sends carries it;
            else RF1-6, the referral's business identifier
    NTE-3   "Referral status: <Task.status>" gives the exact status (what the gateway's own RRI^I12
            writes); without it RF1-1 (table 0283: P received, A accepted, R rejected, E cancelled)
    NTE-3   the other notes: the reason for a status that needs one (rejected, cancelled, failed),
            else the business status (e.g. "Booked onto the course starting 2026-12-01")

Pure: no I/O. Which Task this is, and whether the move is allowed, the status spine decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.hl7v2.header import Header
from adapters.hl7v2.parser import Message
from adapters.hl7v2.ref_i12 import _from_table, _identifier, _required
from adapters.hl7v2.tables import Hl7Tables
from gateway.errors import InvalidReferral, Issue

STRUCTURE = "RRI_I12"
STATUS_NOTE = "Referral status:"
NEEDS_REASON = frozenset({"rejected", "cancelled", "failed"})


@dataclass(frozen=True)
class StatusReport:
    referral_id: str | None  # ours, from RF1-11
    identifier: tuple[str, str] | None  # RF1-6 as (system, value), when RF1-11 is not ours
    status: str  # the proposed Task.status
    reason: str | None  # Task.statusReason text
    business_status: str | None  # Task.businessStatus text


def to_status(message: Message, head: Header, hl7: Hl7Tables) -> StatusReport:
    rf1 = _required(message, "RF1")
    ours = rf1.first(11)
    referral_id = ours.get(1) if ours.get(1) and ours.get(2) == hl7.profile.sending_application else None
    identifier = None
    if referral_id is None:
        found = _identifier(rf1.first(6), head, hl7)
        identifier = (found["system"], found["value"])
    notes = [n.text(3) for n in message.all("NTE") if n.text(3)]
    stated = [n.removeprefix(STATUS_NOTE).strip() for n in notes if n.startswith(STATUS_NOTE)]
    others = "; ".join(n for n in notes if not n.startswith(STATUS_NOTE)) or None
    status = stated[0] if stated else _from_table(rf1.text(1), hl7.tables.task_status.to_fhir, "RF1-1", "")
    if not status:
        raise InvalidReferral(
            "an RRI^I12 must say the referral's status", Issue("RF1-1 or a 'Referral status:' NTE", "RF1-1", "required")
        )
    if status in NEEDS_REASON:
        return StatusReport(referral_id, identifier, status, others, None)
    return StatusReport(referral_id, identifier, status, None, others)
