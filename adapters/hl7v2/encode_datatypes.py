"""FHIR R4 data types (JSON) as HL7 v2 values for the ER7 writer: the inverse of
adapters/hl7v2/datatypes.py, so a referral read from HL7 is written back field for field.

    CodeableConcept -> CE       dateTime / date -> TS / DT      HumanName -> XPN
    Address -> XAD              ContactPoint -> XTN             Identifier -> EI

Must not: choose which element goes to which field (encode.py does).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.hl7v2.tables import CodeTable, CodingSystems, Tables
from adapters.hl7v2.writer import Component, Repetition

Json = dict[str, Any]


def coded_element(concept: Json | None, systems: CodingSystems) -> Repetition:
    """CE: the first coding (CE-1..3), the second as the alternate (CE-4..6); text alone in CE-2."""
    if not concept:
        return None
    codings = concept.get("coding") or []
    parts: list[Component] = []
    for coding in codings[:2]:
        parts += [coding.get("code"), coding.get("display"), systems.name(coding.get("system"))]
    if not parts:
        return (None, concept.get("text"))
    return tuple(parts)


def table_code(table: CodeTable, fhir_code: str | None, table_name: str) -> Repetition:
    """A FHIR code as the HL7 table's code (CE: code ^ ^ HL7nnnn, or ^ ^ L for local codes)."""
    code = table.from_fhir.get(fhir_code or "")
    if not code:
        return None
    return (code, None, "L" if code in table.local else table_name)


def timestamp(value: str | None) -> str | None:
    """A FHIR date or dateTime as HL7 TS: YYYY[MM[DD[HHMMSS[.S]][+ZZZZ]]]."""
    if not value:
        return None
    if "T" not in value:
        return value.replace("-", "")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    fraction = f".{moment.microsecond // 1000:03d}".rstrip("0").rstrip(".") if moment.microsecond else ""
    offset = moment.strftime("%z") if moment.tzinfo else ""
    return f"{moment.strftime('%Y%m%d%H%M%S')}{fraction}{offset}"


def person_name(name: Json, tables: Tables) -> Repetition:
    given = name.get("given") or []
    return (
        name.get("family"),
        given[0] if given else None,
        " ".join(given[1:]) or None,
        _first(name.get("suffix")),
        _first(name.get("prefix")),
        None,
        tables.name_type.from_fhir.get(name.get("use") or ""),
    )


def address(addr: Json, tables: Tables) -> Repetition:
    lines = addr.get("line") or []
    return (
        lines[0] if lines else None,
        ", ".join(lines[1:]) or None,
        addr.get("city"),
        addr.get("district"),
        addr.get("postalCode"),
        addr.get("country"),
        tables.address_type.from_fhir.get(addr.get("use") or ""),
    )


def contact_point(point: Json, tables: Tables) -> Repetition:
    system, use, value = point.get("system"), point.get("use"), point.get("value")
    if system == "email":
        use_code = "NET" if use in (None, "home") else tables.telecom_use.from_fhir.get(use)
        return (None, use_code, "Internet", value)
    if use == "mobile":
        return (value, "PRN", "CP")
    equipment = tables.telecom_equipment.from_fhir.get(system or "phone")
    return (value, tables.telecom_use.from_fhir.get(use or ""), equipment)


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None
