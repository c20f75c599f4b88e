"""The clinical content of a REF^I12: why the patient is referred and what the referrer adds.

    DG1-3   CE (coding system in CE-3: SNOMED CT, ICD-10, ...)  -> ServiceRequest.reasonCode
            (DG1-4 description when DG1-3 is empty -> reasonCode.text)
    OBX     -> a contained Observation each, in ServiceRequest.supportingInfo
            OBX-3 code, OBX-2/OBX-5 value (ST TX FT: string, NM: quantity with OBX-6 units,
            CE CWE: CodeableConcept, DT TS DTM: dateTime), OBX-11 status, OBX-14 effective time
    NTE     directly after an OBX -> that Observation's note; any other -> ServiceRequest.note
            (NTE-3 repetitions are lines of one note)

Must not: judge the clinical content (routing criteria do).
"""

from __future__ import annotations

from adapters.hl7v2 import datatypes
from adapters.hl7v2.datatypes import Json
from adapters.hl7v2.parser import Message, Segment
from adapters.hl7v2.tables import Hl7Tables
from gateway.canonical import primitives
from gateway.errors import InvalidReferral, Issue

_CODED_TYPES = {"CE", "CWE", "CNE"}
_TIME_TYPES = {"TS", "DTM", "DT"}


def reasons(message: Message, hl7: Hl7Tables) -> list[Json]:
    systems = hl7.tables.coding_systems
    found = []
    for dg1 in message.all("DG1"):
        concept = datatypes.codeable_concept(dg1.first(3), systems)
        text = primitives.string(dg1.text(4))
        if concept is None and text:
            concept = {"text": text}
        if concept is not None:
            found.append(concept)
    return found


def observations_and_notes(message: Message, hl7: Hl7Tables) -> tuple[list[Json], list[Json]]:
    """Contained Observations (OBX with their NTEs) and the referral's own notes (every other NTE)."""
    observations: list[Json] = []
    notes: list[Json] = []
    current: Json | None = None
    for seg in message:
        if seg.name == "OBX":
            current = observation(seg, len(observations) + 1, message.occurrence(seg), hl7)
            observations.append(current)
        elif seg.name == "NTE":
            note = _note(seg)
            if note is not None:
                (current.setdefault("note", []) if current is not None else notes).append(note)
        else:
            current = None
    return observations, notes


def observation(obx: Segment, number: int, occurrence: int, hl7: Hl7Tables) -> Json:
    where = f"OBX[{occurrence}]"
    code = datatypes.codeable_concept(obx.first(3), hl7.tables.coding_systems)
    if code is None:
        raise InvalidReferral(
            "an OBX has no observation identifier", Issue("OBX-3 is required", f"{where}-3", "required")
        )
    status = obx.text(11)
    resource: Json = {
        "resourceType": "Observation",
        "id": f"obx-{number}",
        "status": hl7.tables.observation_status.to_fhir.get(status, "unknown") if status else "final",
        "code": code,
        **_value(obx, where, hl7),
        "effectiveDateTime": datatypes.date_time(obx.text(14), f"{where}-14", hl7.profile.local_time_zone),
    }
    return {k: v for k, v in resource.items() if v is not None}


def _value(obx: Segment, where: str, hl7: Hl7Tables) -> Json:
    kind, reps = obx.text(2).upper(), obx.repeats(5)
    if not reps:
        return {}
    if kind in _CODED_TYPES:
        return {"valueCodeableConcept": datatypes.codeable_concept(reps[0], hl7.tables.coding_systems)}
    if kind in _TIME_TYPES:
        return {"valueDateTime": datatypes.date_time(reps[0].get(1), f"{where}-5", hl7.profile.local_time_zone)}
    if kind == "NM":
        return {"valueQuantity": _quantity(reps[0].get(1), obx, where, hl7)}
    text = primitives.string("\n".join(r.text() for r in reps))
    return {"valueString": text} if text else {}


def _quantity(number: str, obx: Segment, where: str, hl7: Hl7Tables) -> Json:
    value = primitives.decimal(number)
    if value is None:
        raise InvalidReferral(
            "an OBX numeric value is not a number", Issue(f"'{number}' is not a finite NM", f"{where}-5", "value")
        )
    units = obx.first(6)
    code = primitives.code(units.get(1))
    system = primitives.uri(hl7.tables.coding_systems.system(primitives.code(units.get(3)) or "")) if code else None
    quantity: Json = {
        "value": value,
        "unit": primitives.string(units.get(2)) or code,
        "system": system,
        "code": code,
    }
    return {k: v for k, v in quantity.items() if v is not None}


def _note(nte: Segment) -> Json | None:
    text = primitives.string("\n".join(r.text() for r in nte.repeats(3)))
    return {"text": text} if text else None
