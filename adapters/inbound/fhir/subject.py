"""The subject of a referral: the NHS number, or a patient still to be traced.

`subject.identifier` is kept (the NHS number without the spaces people type); a referenced Patient
gives its NHS number; a Patient without one is taken when name, birth date and postcode (or address)
say who they are, contained as `#patient` and flagged to be traced (gateway/canonical/patient.py).

Pure. Must not: judge the NHS number's check digit (the UK Core rules do, for every channel).
"""

from __future__ import annotations

from typing import Any

from adapters.inbound.fhir.parties import Work, first_identifier
from gateway.canonical import nhs_number, patient, systems
from gateway.errors import Issue


def resolve_subject(work: Work) -> None:
    ref = work.data.get("subject")
    if not ref:
        return  # the UK Core rules report a missing subject
    if ref.get("identifier"):
        ident = ref["identifier"]
        if ident.get("system") == systems.NHS_NUMBER and isinstance(ident.get("value"), str):
            ident["value"] = nhs_number.normalise(ident["value"])
        work.how["subject"] = "ServiceRequest.subject.identifier"
        return
    target = work.find(ref)
    if target is None or target["resourceType"] != "Patient":
        work.issues.append(
            Issue(
                f"'{ref.get('reference')}' is not a Patient in the Bundle or contained resources, so it "
                "cannot be resolved to an NHS number",
                "ServiceRequest.subject.reference",
                "not-found",
            )
        )
        return
    _patient(work, ref, target)


def _patient(work: Work, ref: dict[str, Any], target: dict[str, Any]) -> None:
    number = first_identifier(target, (systems.NHS_NUMBER,))
    if number:
        work.data["subject"] = {"identifier": {"system": systems.NHS_NUMBER, "value": nhs_number.normalise(number)}}
        if ref.get("display"):
            work.data["subject"]["display"] = ref["display"]
        work.how["subject"] = "the NHS number of the Patient ServiceRequest.subject references"
        return
    missing = patient.missing_demographics(target)
    if missing:
        work.issues.append(
            Issue(
                "the Patient has no NHS number; without one it must be identified by name, birth date and "
                f"postcode or address, and it has no {', '.join(missing)}",
                "ServiceRequest.subject",
                "required",
            )
        )
        return
    if str(ref.get("reference", "")).startswith("#"):
        wanted = str(ref["reference"])[1:]
        work.data["contained"] = [c for c in work.data.get("contained", []) if c.get("id") != wanted]
    work.data["contained"] = [c for c in work.data.get("contained", []) if c.get("id") != patient.PATIENT_ID]
    work.data.setdefault("contained", []).insert(0, patient.untraced_patient(target))
    work.data["subject"] = patient.untraced_subject(ref.get("display"))
    meta = work.data.setdefault("meta", {})
    meta["tag"] = [*meta.get("tag", []), patient.flag_tag()]
    work.how["subject"] = (
        "no NHS number: the Patient by name, birth date and postcode or address (contained), NHS number to be traced"
    )
