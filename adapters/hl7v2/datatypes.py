"""HL7 v2 data types as FHIR R4 data types (JSON), one builder per type, shared by every mapping.

    CE / CWE  -> CodeableConcept   (CE-3 names the coding system: tables.json coding_systems)
    TS / DTM  -> dateTime          (no offset: the profile's local time zone, so it is deterministic)
    DT        -> date
    XPN       -> HumanName         XAD -> Address         XTN -> ContactPoint

Builders return None for an empty value. A value that is present but unreadable raises
`InvalidReferral` naming its HL7 location. Every value they write fits its FHIR type (valid by
construction, gateway/canonical/primitives.py): codes without stray whitespace, strings without
forbidden characters, system URIs without spaces, dateTimes FHIR's pattern accepts (a year from
0001, an offset up to ±14:00). Must not: choose which field to read (the mappings do).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from adapters.hl7v2.parser import Composite
from adapters.hl7v2.tables import CodeTable, CodingSystems, Tables
from gateway.canonical import primitives
from gateway.errors import InvalidReferral, Issue

Json = dict[str, Any]

_UTC = ("+00:00", "-00:00")
_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(?:(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,4}))?)?([+-]\d{4})?", re.ASCII)


def coding(code: str, display: str, system_name: str, systems: CodingSystems) -> Json | None:
    value = primitives.code(code)
    if value is None:
        return None
    system = primitives.uri(systems.system(primitives.code(system_name) or ""))
    out: Json = {"system": system, "code": value, "display": primitives.string(display)}
    return {k: v for k, v in out.items() if v}


def codeable_concept(ce: Composite, systems: CodingSystems) -> Json | None:
    """CE / CWE: the primary triplet (1-3) and the alternate (4-6) as codings; text alone as text."""
    code, text, system, alt_code, alt_text, alt_system = ce.parts(6)
    codings = [c for c in (coding(code, text, system, systems), coding(alt_code, alt_text, alt_system, systems)) if c]
    if codings:
        return {"coding": codings}
    only_text = primitives.string(text)
    return {"text": only_text} if only_text else None


def date_time(ts: str, where: str, time_zone: str) -> str | None:
    """TS / DTM as a FHIR dateTime: a date alone stays a date; a time gets the offset it was sent with,
    or the local time zone's offset on that day. Written as fhir.resources writes a dateTime (six
    fraction digits, `Z` for UTC), so the mapped JSON is the stored JSON, byte for byte."""
    match = _parts(ts, where)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    day_part = "-".join(p for p in (year, month, day) if p)
    if hour is None or day is None:
        return day_part
    clock = f"{hour}:{minute or '00'}:{second or '00'}"
    zone = _offset(offset, f"{day_part}T{clock}", time_zone, where)
    return f"{day_part}T{clock}{f'.{fraction:0<6}' if fraction else ''}{'Z' if zone in _UTC else zone}"


def date(ts: str, where: str) -> str | None:
    """DT / TS as a FHIR date (the time of day is dropped)."""
    match = _parts(ts, where)
    if match is None:
        return None
    year, month, day = match.group(1), match.group(2), match.group(3)
    return "-".join(p for p in (year, month, day) if p)


def _parts(ts: str, where: str) -> re.Match[str] | None:
    value = ts.strip()
    if not value:
        return None
    match = _TS.fullmatch(value)
    if match is None or not _plausible(match):
        raise InvalidReferral(
            f"{where} is not an HL7 date/time",
            Issue(f"'{value}' is not YYYY[MM[DD[HH[MM[SS]]]]][+/-ZZZZ]", where, "value"),
        )
    return match


def _plausible(match: re.Match[str]) -> bool:
    year, month, day, hour, minute, second = (int(g) if g else None for g in match.groups()[:6])
    offset = match.group(8)
    if not year or (offset and not _fhir_offset(int(offset[1:3]), int(offset[3:]))):
        return False  # FHIR counts years from 0001, and offsets up to ±14:00
    try:
        datetime(year, _or(month, 1), _or(day, 1), _or(hour, 0), _or(minute, 0), _or(second, 0))
    except ValueError:
        return False
    return True


def _or(part: int | None, default: int) -> int:
    """A part left out takes `default`; one sent as 00 (a month or day FHIR has no name for) stays 0."""
    return default if part is None else part


def _fhir_offset(hours: int, minutes: int) -> bool:
    return minutes < 60 and (hours < 14 or (hours, minutes) == (14, 0))


def _offset(sent: str | None, local: str, time_zone: str, where: str) -> str:
    if sent:
        return f"{sent[:3]}:{sent[3:]}"
    stamp = datetime.fromisoformat(local[:19]).replace(tzinfo=_zone(time_zone))
    utc_offset = stamp.utcoffset()
    minutes = int(utc_offset.total_seconds() // 60) if utc_offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def coded(table: CodeTable, code: str) -> str | None:
    return table.to_fhir.get(code)


def human_name(xpn: Composite, tables: Tables) -> Json | None:
    """XPN: family (1), given (2), further given (3), suffix (4), prefix (5), name type (7)."""
    family, first, further, suffix, prefix, _, kind = _strings(xpn.parts(7))
    given = [g for g in (first, further) if g]
    name: Json = {
        "use": coded(tables.name_type, kind),
        "family": family or None,
        "given": given or None,
        "suffix": [suffix] if suffix else None,
        "prefix": [prefix] if prefix else None,
    }
    return _compact(name) if name["family"] or given else None


def address(xad: Composite, tables: Tables) -> Json | None:
    """XAD: street (1), other designation (2), city (3), state or county (4), postcode (5),
    country (6), address type (7)."""
    street, other, city, district, postcode, country, kind = _strings(xad.parts(7))
    lines = [line for line in (street, other) if line]
    out: Json = {
        "use": coded(tables.address_type, kind),
        "line": lines or None,
        "city": city or None,
        "district": district or None,
        "postalCode": postcode or None,
        "country": country or None,
    }
    return _compact(out) if any(out[k] for k in ("line", "city", "postalCode")) else None


def contact_point(xtn: Composite, tables: Tables) -> Json | None:
    """XTN: the number (1, else 12) or e-mail address (4), use (2), equipment (3)."""
    number, use_code, equipment, email, *_, unformatted = _strings(xtn.parts(12))
    system = coded(tables.telecom_equipment, equipment) or ("email" if "@" in email else "phone")
    value = email if system == "email" else (number or unformatted)
    if not value:
        return None
    use = "mobile" if equipment == "CP" else coded(tables.telecom_use, use_code)
    return _compact({"system": system, "value": value, "use": use})


def _strings(parts: list[str]) -> list[str]:
    """Each component as a FHIR string ('' for none): the person's and address builders' input."""
    return [primitives.string(p) or "" for p in parts]


def _compact(data: Json) -> Json:
    return {k: v for k, v in data.items() if v is not None}
