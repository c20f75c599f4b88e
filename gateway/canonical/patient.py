"""Patients without an NHS number: who they are, how the referral marks them, and their event key.

A referral may name a patient who has no NHS number yet (a 999/111 caller, a self-referral from
someone who does not know theirs) when the patient is identified by name, birth date and postcode
(or address). The canonical ServiceRequest then carries, contained, the Patient as given, whose
NHS number identifier has no value and the UK Core NHS number verification status `03` (trace
required), the way receiving services read it; the referral's `meta.tag` carries the gateway flag
`nhs-number-to-be-traced`, searchable with `_tag`.

The patient key. Events are keyed by NHS number, so a patient's events keep their order on one
partition. A patient without one gets the key `U` + the first 15 hex digits of the referral id
(upper case): 16 characters, so it can never be a 10-digit NHS number, and derived from the
referral's business identifier, so every version and every gateway process computes the same one.
It keeps the versions of that referral in order; it cannot order them with other referrals for the
same person (nobody knows yet that they are the same person). A referral keeps its key for its
whole life, also after a later version carried the traced NHS number (the store then finds it by
that NHS number), so its versions never race each other across partitions.

Pure. Must not log or return patient details.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.canonical import systems

UNTRACED_PREFIX = "U"
PATIENT_ID = "patient"


def untraced_key(referral_id: str) -> str:
    return UNTRACED_PREFIX + referral_id.replace("-", "")[:15].upper()


def is_untraced_key(key: str | None) -> bool:
    return bool(key) and str(key).startswith(UNTRACED_PREFIX)


def missing_demographics(patient: dict[str, Any]) -> list[str]:
    """What a patient without an NHS number lacks to be identified: name, birth date, postcode or address."""
    missing = []
    if not any(n.get("family") or n.get("given") or n.get("text") for n in patient.get("name") or []):
        missing.append("name")
    if not patient.get("birthDate"):
        missing.append("birth date")
    if not any(a.get("postalCode") or a.get("line") or a.get("text") for a in patient.get("address") or []):
        missing.append("postcode or address")
    return missing


def verification(code: tuple[str, str]) -> dict[str, Any]:
    coding = {"system": systems.NHS_NUMBER_VERIFICATION, "code": code[0], "display": code[1]}
    return {"url": systems.EXT_NHS_NUMBER_VERIFICATION, "valueCodeableConcept": {"coding": [coding]}}


def untraced_patient(patient: dict[str, Any], patient_id: str = PATIENT_ID) -> dict[str, Any]:
    """The contained Patient: the demographics as given, and an NHS number identifier without a value
    whose verification status says a trace is required."""
    kept = {k: v for k, v in patient.items() if k in _DEMOGRAPHICS}
    others = [i for i in patient.get("identifier") or [] if i.get("system") != systems.NHS_NUMBER]
    nhs = {"extension": [verification(systems.TRACE_REQUIRED)], "system": systems.NHS_NUMBER}
    return {"resourceType": "Patient", "id": patient_id, "identifier": [nhs, *others], **kept}


def untraced_subject(display: str | None = None) -> dict[str, Any]:
    """The subject of a referral for an untraced patient: the contained Patient, typed. The key is the
    store's and the event's (it depends on the referral id, which the intake gives)."""
    subject: dict[str, Any] = {"reference": f"#{PATIENT_ID}", "type": "Patient"}
    return {**subject, "display": display} if display else subject


def flag_tag() -> dict[str, str]:
    code, display = systems.FLAG_NHS_NUMBER_TO_BE_TRACED
    return {"system": systems.REFERRAL_FLAGS, "code": code, "display": display}


def is_untraced(sr: ServiceRequest) -> bool:
    """True when the subject is the contained Patient still to be traced (no NHS number)."""
    subject = sr.subject
    return subject is not None and subject.identifier is None and subject.reference == f"#{PATIENT_ID}"


_DEMOGRAPHICS = ("name", "birthDate", "gender", "address", "telecom", "communication")
