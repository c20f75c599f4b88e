"""The canonical referral as HL7 v2: REF^I12 (a new referral; I13 an update, I14 a cancellation) for a
receiver that speaks HL7, and RRI^I12 (return referral information) telling a referrer where its
referral stands, from the referral's FHIR Task.

REF^I12 is the inverse of adapters/hl7v2/ref_i12.py (schemas/hl7v2/ref_i12_mapping.md), so
HL7 -> FHIR -> HL7 keeps every mapped field:

    MSH   REFERRAL-GATEWAY ^ requester ODS -> performer ODS; MSH-7 when the event was made
    RF1   status, priority, code, category, identifier (RF1-6), period, authoredOn; our id in RF1-11
    PRD   RP requester, RT performer: ODS code and registrations in PRD-7, contained Practitioner
    PID   NHS number (CX-4 NHS, CX-5 NH) and the contained Patient; none: PID-32 NSTS + its status
    DG1   each reasonCode       OBR/OBX/NTE  each contained Observation     NTE  each note

Written with the project's ER7 writer (escaping for the encoding characters), not hl7apy: hl7apy
takes about 7 ms to build one REF^I12; it checks these messages against the v2.5 structures in the
tests. The code tables are given by the caller (loaded from the settings' SCHEMAS_DIR), never found here.
Must not: send, retry or decide who receives (adapters/outbound/hl7v2_mllp.py and delivery do).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from adapters.hl7v2 import encode_datatypes as dt
from adapters.hl7v2 import writer
from adapters.hl7v2.tables import CodeTable, Hl7Tables
from adapters.hl7v2.writer import Repetition, Value
from gateway.canonical import systems
from gateway.canonical.patient import untraced_key

Json = dict[str, Any]
EVENTS = {"new": "I12", "update": "I13", "delete": "I14"}
_NOTE = frozenset({3})  # NTE-3 is formatted text
_OBX_TEXT = frozenset({5})


class Outgoing(Protocol):
    """What delivery hands an outbound adapter (adapters/outbound/receipt.py), as far as the codec reads
    it: given, not imported, so the codec sits below the adapters that send."""

    @property
    def resource(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def sent_at(self) -> str: ...


def encode_ref_i12(outgoing: Outgoing, msh_10: str, hl7: Hl7Tables) -> str:
    """The delivery's REF^I12 (I13, I14) for one referral event."""
    sr = json.loads(outgoing.resource)
    return ref_i12(sr, msh_10, outgoing.sent_at, hl7, EVENTS[outgoing.reason])


def encode_rri_i12(outgoing: Outgoing, service_request: Json, msh_10: str, hl7: Hl7Tables) -> str:
    """The delivery's RRI^I12 for one status event (the Task as published) about `service_request`
    (the referral as stored: RRI^I12 carries the patient and providers again, PID-5 is required)."""
    return rri_i12(json.loads(outgoing.resource), service_request, msh_10, outgoing.sent_at, hl7)


def ref_i12(sr: Json, msh_10: str, sent_at: str, hl7: Hl7Tables, event: str = "I12") -> str:
    contained = {f"#{r.get('id')}": r for r in sr.get("contained") or []}
    observations = [contained[s["reference"]] for s in _supporting(sr, contained, "Observation")]
    notes = [n["text"] for n in sr.get("note") or [] if n.get("text")]
    segments = [
        _msh(hl7, _ods(sr.get("requester")), _ods((sr.get("performer") or [None])[0]), sent_at, ("REF", event), msh_10),
        _rf1(sr, sr.get("status"), hl7.tables.referral_status, hl7),
        *_prds(sr, contained, hl7),
        _pid(sr, contained.get("#patient"), hl7),
        *[_dg1(i, reason, hl7) for i, reason in enumerate(sr.get("reasonCode") or [], start=1)],
        *_observation_group(observations, hl7),
    ]
    if notes and observations:
        segments.append(writer.segment("PV1", ["1", "N"]))  # so the notes below are the referral's, not the last OBX's
    segments += [writer.segment("NTE", [str(i), "P", text], formatted=_NOTE) for i, text in enumerate(notes, start=1)]
    return writer.message(segments)


def rri_i12(task: Json, sr: Json, msh_10: str, sent_at: str, hl7: Hl7Tables) -> str:
    """RRI^I12 from a referral's Task: RF1-1 says accepted (A), rejected (R) or pending (P); the exact
    Task status and its reason go in NTE, as table 0283 has no codes for in progress or completed."""
    contained = {f"#{r.get('id')}": r for r in sr.get("contained") or []}
    status = task.get("status")
    notes = [f"Referral status: {status}"]
    for element in ("businessStatus", "statusReason"):
        text = _concept_text(task.get(element))
        notes += [text] if text else []
    segments = [
        _msh(hl7, _ods((sr.get("performer") or [None])[0]), _ods(sr.get("requester")), sent_at, ("RRI", "I12"), msh_10),
        _rf1(sr, status, hl7.tables.task_status, hl7, processed=task.get("lastModified")),
        *_prds(sr, contained, hl7),
        _pid(sr, contained.get("#patient"), hl7),
        *[writer.segment("NTE", [str(i), "P", text], formatted=_NOTE) for i, text in enumerate(notes, start=1)],
    ]
    return writer.message(segments)


def _msh(
    hl7: Hl7Tables, sender: str | None, receiver: str | None, sent_at: str, kind: tuple[str, str], msh_10: str
) -> str:
    profile = hl7.profile
    return writer.msh(
        [
            profile.sending_application,
            sender or profile.sending_facility,
            None,
            receiver,
            dt.timestamp(sent_at),
            None,
            (*kind, f"{kind[0]}_I12"),
            msh_10,
            "P",
            profile.outbound_version,
        ]
    )


def _rf1(
    resource: Json, status: str | None, status_table: CodeTable, hl7: Hl7Tables, processed: str | None = None
) -> str:
    tables = hl7.tables
    period = resource.get("occurrencePeriod") or {}
    ours = resource.get("id")
    fields: list[Value] = [
        dt.table_code(status_table, status, "HL70283"),
        dt.table_code(tables.referral_priority, resource.get("priority") or "routine", "HL70280"),
        dt.coded_element(resource.get("code"), tables.coding_systems),
        None,
        dt.coded_element((resource.get("category") or [None])[0], tables.coding_systems),
        _entity_identifier((resource.get("identifier") or [None])[0], hl7),
        dt.timestamp(period.get("start")),
        dt.timestamp(period.get("end")),
        dt.timestamp(processed or resource.get("authoredOn")),
        None,
        (ours, hl7.profile.sending_application) if ours and resource.get("resourceType") == "ServiceRequest" else None,
    ]
    return writer.segment("RF1", fields)


def _entity_identifier(ident: Json | None, hl7: Hl7Tables) -> Repetition:
    """RF1-6 (EI) from the business identifier: the inverse of the inbound choice of system."""
    if not ident:
        return None
    ids, system, value = hl7.identifiers, ident.get("system") or "", ident.get("value")
    namespaces = {uri: name for name, uri in ids.referral_namespaces.items()}
    if system in namespaces:
        return (value, namespaces[system])
    if system.startswith(ids.local_referral_prefix):
        return (value, system[len(ids.local_referral_prefix) :])
    if system.startswith("urn:oid:"):
        return (value, None, system[len("urn:oid:") :], "ISO")
    return (value, None, system, "URI") if system else (value,)


def _prds(sr: Json, contained: dict[str, Json], hl7: Hl7Tables) -> list[str]:
    performers = sr.get("performer") or [None]
    return [
        _prd("RP", sr.get("requester"), contained.get("#referrer"), hl7),
        _prd("RT", performers[0], contained.get("#referred-to"), hl7),
    ]


def _prd(role: str, organisation: Json | None, practitioner: Json | None, hl7: Hl7Tables) -> str:
    tables, person = hl7.tables, practitioner or {}
    ids: list[Repetition] = [(_ods(organisation), "ODS")]
    for ident in person.get("identifier") or []:
        kind = hl7.identifiers.provider_type(ident.get("system") or "") or (ident.get("type") or {}).get("text")
        ids.append((ident.get("value"), kind))
    names = [dt.person_name(n, tables) for n in person.get("name") or []]
    if not names and organisation and organisation.get("display"):
        names = [(organisation["display"],)]
    fields: list[Value] = [
        (role, None, "HL70286"),
        names or None,
        [dt.address(a, tables) for a in person.get("address") or []] or None,
        None,
        [dt.contact_point(t, tables) for t in person.get("telecom") or []] or None,
        None,
        ids,
    ]
    return writer.segment("PRD", fields)


def _pid(sr: Json, patient: Json | None, hl7: Hl7Tables) -> str:
    """PID-3 leads with the NHS number; a patient without one leads with the gateway's key for them
    (assigned by the sending application, type PI), which lasts the referral's life, and PID-32 says
    the NHS number's status (trace required)."""
    tables, person = hl7.tables, patient or {}
    rule = hl7.identifiers.nhs_number
    nhs = ((sr.get("subject") or {}).get("identifier") or {}).get("value")
    written = rule.written_as
    if nhs:
        ids: list[Repetition] = [(nhs, None, None, written["assigning_authority"], written["identifier_type"])]
    else:
        ids = [(untraced_key(str(sr.get("id") or "")), None, None, hl7.profile.sending_application, "PI")]
    ids += [_other_identifier(i) for i in person.get("identifier") or [] if i.get("system") != systems.NHS_NUMBER]
    telecom = person.get("telecom") or []
    fields: list[Value] = [
        "1",
        None,
        ids,
        None,
        [dt.person_name(n, tables) for n in person.get("name") or []] or None,
        None,
        dt.timestamp(person.get("birthDate")),
        tables.administrative_sex.from_fhir.get(person.get("gender") or ""),
        None,
        None,
        [dt.address(a, tables) for a in person.get("address") or []] or None,
        None,
        [dt.contact_point(t, tables) for t in telecom if t.get("use") != "work"] or None,
        [dt.contact_point(t, tables) for t in telecom if t.get("use") == "work"] or None,
    ]
    if not nhs:
        fields += [None] * 17 + [rule.status_written_as[_verification_status(person)]]
    return writer.segment("PID", fields)


def _verification_status(patient: Json) -> str:
    """The UK Core NHS number verification status on the patient's NHS number slice ("03", trace
    required, when it says none)."""
    for ident in patient.get("identifier") or []:
        if ident.get("system") == systems.NHS_NUMBER:
            for ext in ident.get("extension") or []:
                for coding in (ext.get("valueCodeableConcept") or {}).get("coding") or []:
                    if coding.get("system") == systems.NHS_NUMBER_VERIFICATION and coding.get("code"):
                        return str(coding["code"])
    return systems.TRACE_REQUIRED[0]


def _other_identifier(ident: Json) -> Repetition:
    codings = (ident.get("type") or {}).get("coding") or [{}]
    return (ident.get("value"), None, None, (ident.get("assigner") or {}).get("display"), codings[0].get("code"))


def _dg1(number: int, reason: Json, hl7: Hl7Tables) -> str:
    return writer.segment(
        "DG1", [str(number), None, dt.coded_element(reason, hl7.tables.coding_systems), None, None, "W"]
    )


def _observation_group(observations: list[Json], hl7: Hl7Tables) -> list[str]:
    if not observations:
        return []
    segments = [writer.segment("OBR", ["1", None, None, ("REFOBS", "Referral observations", "L")])]
    for number, obs in enumerate(observations, start=1):
        segments.append(_obx(number, obs, hl7))
        notes = [n["text"] for n in obs.get("note") or [] if n.get("text")]
        segments += [writer.segment("NTE", [str(i), "P", t], formatted=_NOTE) for i, t in enumerate(notes, start=1)]
    return segments


def _obx(number: int, obs: Json, hl7: Hl7Tables) -> str:
    tables = hl7.tables
    kind, value, units = _observation_value(obs, hl7)
    fields: list[Value] = [
        str(number),
        kind,
        dt.coded_element(obs.get("code"), tables.coding_systems),
        None,
        value,
        units,
        None,
        None,
        None,
        None,
        tables.observation_status.from_fhir.get(obs.get("status") or "", "F"),
        None,
        None,
        dt.timestamp(obs.get("effectiveDateTime")),
    ]
    return writer.segment("OBX", fields, formatted=_OBX_TEXT)


def _observation_value(obs: Json, hl7: Hl7Tables) -> tuple[str | None, Value, Repetition]:
    systems_table = hl7.tables.coding_systems
    if "valueQuantity" in obs:
        q = obs["valueQuantity"]
        units = (
            (q.get("code") or q.get("unit"), q.get("unit"), systems_table.name(q.get("system")))
            if q.get("unit") or q.get("code")
            else None
        )
        return "NM", _number(q.get("value")), units
    if "valueCodeableConcept" in obs:
        return "CE", dt.coded_element(obs["valueCodeableConcept"], systems_table), None
    if "valueDateTime" in obs:
        return "TS", dt.timestamp(obs["valueDateTime"]), None
    if "valueString" in obs:
        return "TX", obs["valueString"], None
    return None, None, None


def _number(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _supporting(sr: Json, contained: dict[str, Json], kind: str) -> list[Json]:
    refs = sr.get("supportingInfo") or []
    return [r for r in refs if contained.get(r.get("reference", ""), {}).get("resourceType") == kind]


def _ods(reference: Json | None) -> str | None:
    ident = (reference or {}).get("identifier") or {}
    return ident.get("value") if ident.get("system") == systems.ODS_CODE else None


def _concept_text(concept: Json | None) -> str | None:
    if not concept:
        return None
    codings = concept.get("coding") or [{}]
    text = concept.get("text") or codings[0].get("display") or codings[0].get("code")
    return str(text) if text else None
