"""PRD: the referring provider (PRD-1 RP) and the provider referred to (RT).

    PRD-7   PLN repetitions; PLN-2 names the identifier type (identifiers.json):
            an ODS code -> requester / performer logical reference (ods-organization-code)
            GMC, GMP, NMC, HCPC, SDS numbers -> the contained Practitioner's identifiers
    PRD-2   XPN -> the display of the requester / performer reference (and Practitioner.name)
    PRD-3   XAD -> Practitioner.address    PRD-5   XTN -> Practitioner.telecom

A contained Practitioner is made only when the PRD says more than a name (registrations, address,
phone): a referred-to service usually sends its name alone.

A referral needs both providers with an ODS code; up to v2.5.1 PRD has no organisation field
(PRD-10 came with v2.6), so PRD-7 is where UK senders put it.

A sender whose REF^I12 carry no PRD at all (a PAS often sends MSH, EVN, RF1 and PID only) may be
given its organisations in the settings (`MLLP_SENDER_ORGANISATIONS`, matched on MSH-4 and MSH-6 by
the caller): a role with no PRD then takes the configured ODS code. A PRD that is there always wins,
and one without an ODS code is still refused: only a missing segment is filled in, never a wrong one.

Only the first PRD of each role counts; other roles (PP, CP) are not part of the referral.
Must not: decide routing from the performer (the router does).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from adapters.hl7v2 import datatypes
from adapters.hl7v2.datatypes import Json
from adapters.hl7v2.parser import Composite, Message, Segment
from adapters.hl7v2.tables import Hl7Tables, Identifiers
from gateway.canonical import ods, primitives
from gateway.errors import InvalidReferral, Issue

log = logging.getLogger(__name__)

REFERRING, REFERRED_TO = "RP", "RT"
PRACTITIONER_IDS = {REFERRING: "referrer", REFERRED_TO: "referred-to"}
ROLE_NAMES = {REFERRING: "Referring provider", REFERRED_TO: "Referred-to provider"}


@dataclass(frozen=True)
class Provider:
    role: str
    ods_code: str
    display: str | None
    practitioner: Json | None  # contained: the person and professional registrations, when sent
    identifier_types: tuple[tuple[str, str], ...]  # (PLN-2, PLN-1) of PRD-7, for the source of referral


def provider(message: Message, role: str, hl7: Hl7Tables, configured: str | None = None) -> Provider:
    """The provider in `role`; raises `InvalidReferral` naming the PRD when it is missing (and no ODS
    code is `configured` for the sender) or has no ODS code."""
    prd = next((s for s in message.all("PRD") if role in _roles(s)), None)
    if prd is None and configured:
        log.info("HL7 %s has no PRD %s: %s from the sender's settings", message.msh.text(10), role, configured)
        return Provider(role, configured, None, None, ())
    if prd is None:
        raise InvalidReferral(
            f"the message has no {ROLE_NAMES[role].lower()}",
            Issue(f"a PRD segment with PRD-1 {role} is required", "PRD", "structure"),
        )
    where = f"PRD[{message.occurrence(prd)}]-7"
    code = _ods_code(prd, hl7.identifiers)
    if not code:
        raise InvalidReferral(
            f"the {ROLE_NAMES[role].lower()} has no ODS code",
            Issue(f"PRD-7 of the {role} provider needs a repetition of type ODS", where, "required"),
        )
    if not ods.is_valid(code):
        raise InvalidReferral(f"'{code}' is not an ODS code", Issue("not an ODS organisation code", where, "value"))
    types = tuple((pln.get(2).strip().upper(), pln.get(1)) for pln in prd.repeats(7))
    return Provider(role, code, _display(prd, hl7), _practitioner(prd, role, hl7), types)


def _roles(prd: Segment) -> set[str]:
    return {ce.get(1).upper() for ce in prd.repeats(1)}


def _ods_code(prd: Segment, ids: Identifiers) -> str:
    for pln in prd.repeats(7):
        if ids.provider_identifier_types.get(pln.get(2).strip().upper()) == ids.organisation_system and pln.get(1):
            return pln.get(1).strip().upper()
    return ""


def _display(prd: Segment, hl7: Hl7Tables) -> str | None:
    name = datatypes.human_name(prd.first(2), hl7.tables)
    if name is None:
        return None
    parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
    return " ".join(p for p in parts if p) or None


def _practitioner(prd: Segment, role: str, hl7: Hl7Tables) -> Json | None:
    tables = hl7.tables
    resource: Json = {
        "identifier": [i for i in (_professional(pln, hl7.identifiers) for pln in prd.repeats(7)) if i] or None,
        "name": [n for n in (datatypes.human_name(x, tables) for x in prd.repeats(2)) if n] or None,
        "telecom": [t for t in (datatypes.contact_point(x, tables) for x in prd.repeats(5)) if t] or None,
        "address": [a for a in (datatypes.address(x, tables) for x in prd.repeats(3)) if a] or None,
    }
    present = {k: v for k, v in resource.items() if v is not None}
    if set(present) <= {"name"}:
        return None  # a name alone is the reference's display: a Practitioner would add nothing but cost
    return {"resourceType": "Practitioner", "id": PRACTITIONER_IDS[role], **present}


def _professional(pln: Composite, ids: Identifiers) -> Json | None:
    """A PRD-7 repetition that is not the organisation's ODS code: a professional registration."""
    kind, value, named = pln.get(2).strip().upper(), primitives.string(pln.get(1)), primitives.string(pln.get(2))
    system = ids.provider_identifier_types.get(kind)
    if not value or system == ids.organisation_system:
        return None
    if system:
        return {"system": system, "value": value}
    return {"type": {"text": named}, "value": value} if named else {"value": value}
