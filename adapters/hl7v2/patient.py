"""PID: the patient's NHS number (the subject of the referral) and the patient as the referrer sent
them (a contained Patient: the receiver needs name, birth date, sex, address and phone to act).

    PID-3   the repetition whose assigning authority (CX-4) or identifier type (CX-5) says NHS
            -> Patient.identifier (nhs-number) and ServiceRequest.subject.identifier
            other repetitions -> Patient.identifier (type CX-5, assigner CX-4)
    PID-5   XPN  -> Patient.name           PID-7   TS  -> Patient.birthDate
    PID-8   0001 -> Patient.gender         PID-11  XAD -> Patient.address
    PID-13, PID-14  XTN -> Patient.telecom

Must not: log any of it.
"""

from __future__ import annotations

from adapters.hl7v2 import datatypes
from adapters.hl7v2.datatypes import Json
from adapters.hl7v2.parser import Composite, Segment
from adapters.hl7v2.tables import Hl7Tables, NhsNumberRule
from gateway.canonical import nhs_number, primitives, systems
from gateway.errors import InvalidReferral, Issue

PATIENT_ID = "patient"
IDENTIFIER_TYPES = "http://terminology.hl7.org/CodeSystem/v2-0203"


def is_nhs_number(cx: Composite, rule: NhsNumberRule) -> bool:
    authority = {cx.get(4, 1).upper(), cx.get(4, 2)}
    return bool(authority & {*rule.assigning_authorities, *rule.authority_oids}) or (
        cx.get(5).upper() in rule.identifier_types
    )


def nhs_number_of(pid: Segment, rule: NhsNumberRule) -> str:
    """The NHS number in PID-3; raises `InvalidReferral` at PID-3 when there is none, or it is not valid."""
    found = next((cx.get(1) for cx in pid.repeats(3) if is_nhs_number(cx, rule) and cx.get(1)), None)
    if found is None:
        raise InvalidReferral(
            "the patient has no NHS number",
            Issue("no PID-3 repetition has assigning authority NHS or identifier type NH", "PID-3", "required"),
        )
    number = nhs_number.normalise(found)
    if not nhs_number.is_valid(number):
        raise InvalidReferral(
            "the NHS number is not valid",
            Issue("the NHS number in PID-3 is not ten digits with a valid modulus-11 check digit", "PID-3", "value"),
        )
    return number


def patient(pid: Segment, number: str, hl7: Hl7Tables) -> Json:
    """The contained Patient."""
    tables = hl7.tables
    born = datatypes.date(pid.text(7), "PID-7")
    resource: Json = {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "identifier": [
            {"system": systems.NHS_NUMBER, "value": number},
            *_other_identifiers(pid, hl7.identifiers.nhs_number),
        ],
        "name": [n for n in (datatypes.human_name(x, tables) for x in pid.repeats(5)) if n] or None,
        "gender": datatypes.coded(tables.administrative_sex, pid.text(8)),
        "birthDate": born,
        "address": [a for a in (datatypes.address(x, tables) for x in pid.repeats(11)) if a] or None,
        "telecom": [t for t in (datatypes.contact_point(x, tables) for n in (13, 14) for x in pid.repeats(n)) if t]
        or None,
    }
    return {k: v for k, v in resource.items() if v is not None}


def _other_identifiers(pid: Segment, rule: NhsNumberRule) -> list[Json]:
    out = []
    for cx in pid.repeats(3):
        value, kind, authority = primitives.string(cx.get(1)), primitives.code(cx.get(5)), primitives.string(cx.get(4))
        if is_nhs_number(cx, rule) or not value:
            continue
        ident: Json = {"value": value}
        if kind:
            ident["type"] = {"coding": [{"system": IDENTIFIER_TYPES, "code": kind}]}
        if authority:
            ident["assigner"] = {"display": authority}
        out.append(ident)
    return out
