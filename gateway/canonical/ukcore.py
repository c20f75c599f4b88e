"""UK Core rules a referral must meet before the gateway accepts it.

fhir.resources checks structure and data types; it does not check code values or identifier
systems. These are the rules that matter for routing a referral between NHS services. All
problems are collected and reported at once, each with the FHIRPath of the failing element.
"""

from __future__ import annotations

from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.canonical import nhs_number, ods, patient, systems
from gateway.errors import InvalidReferral, Issue

STATUSES = {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
INTENTS = {
    "proposal",
    "plan",
    "directive",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
}
PRIORITIES = {"routine", "urgent", "asap", "stat"}


def validate(sr: ServiceRequest) -> None:
    """Raise `InvalidReferral` listing every rule the ServiceRequest breaks."""
    found = issues(sr)
    if found:
        raise InvalidReferral("The ServiceRequest does not meet the UK Core rules", *found)


def issues(sr: ServiceRequest) -> list[Issue]:
    """Every rule the ServiceRequest breaks (none: it meets them)."""
    return [*_codes(sr), *_subject(sr), *_organisations(sr), *_identifiers(sr)]


def _codes(sr: ServiceRequest) -> list[Issue]:
    issues = []
    if sr.status not in STATUSES:
        issues.append(
            Issue(f"status '{sr.status}' is not a request-status code", "ServiceRequest.status", "code-invalid")
        )
    if sr.intent not in INTENTS:
        issues.append(
            Issue(f"intent '{sr.intent}' is not a request-intent code", "ServiceRequest.intent", "code-invalid")
        )
    if sr.priority is not None and sr.priority not in PRIORITIES:
        issues.append(
            Issue(f"priority '{sr.priority}' is not a request-priority code", "ServiceRequest.priority", "code-invalid")
        )
    return issues


def _subject(sr: ServiceRequest) -> list[Issue]:
    where = "ServiceRequest.subject.identifier"
    if patient.is_untraced(sr):
        return _untraced(sr)
    ident = sr.subject.identifier if sr.subject else None
    if ident is None or ident.system != systems.NHS_NUMBER or not ident.value:
        return [Issue(f"the subject must be identified by an NHS number ({systems.NHS_NUMBER})", where, "required")]
    if not nhs_number.is_valid(ident.value):
        return [
            Issue("the NHS number is not ten digits with a valid modulus-11 check digit", f"{where}.value", "value")
        ]
    return []


def _untraced(sr: ServiceRequest) -> list[Issue]:
    """A patient without an NHS number: the contained Patient must say who they are."""
    found = next(
        (c for c in sr.contained or [] if c.get_resource_type() == "Patient" and c.id == patient.PATIENT_ID), None
    )
    missing = patient.missing_demographics(found.model_dump(mode="json", exclude_none=True)) if found else ["Patient"]
    if missing:
        return [
            Issue(
                "a patient without an NHS number must be identified by name, birth date and postcode or address: "
                f"{', '.join(missing)} missing",
                "ServiceRequest.contained",
                "required",
            )
        ]
    return []


def _organisations(sr: ServiceRequest) -> list[Issue]:
    issues = []
    parties = [("ServiceRequest.requester", sr.requester)]
    parties += [
        (f"ServiceRequest.performer[{i}]", p)
        for i, p in enumerate(sr.performer or [])
        if p.type != "HealthcareService"  # a service the performer names; its organisation is listed too
    ]
    if not any(p.type != "HealthcareService" for p in sr.performer or []):
        parties.append(("ServiceRequest.performer", None))
    for where, ref in parties:
        ident = ref.identifier if ref is not None else None
        if ident is None or ident.system != systems.ODS_CODE or not ident.value:
            issues.append(
                Issue(f"must be identified by an ODS code ({systems.ODS_CODE})", f"{where}.identifier", "required")
            )
        elif not ods.is_valid(ident.value):
            issues.append(Issue(f"'{ident.value}' is not an ODS code", f"{where}.identifier.value", "value"))
    return issues


def _identifiers(sr: ServiceRequest) -> list[Issue]:
    if any(i.system and i.value for i in sr.identifier or []):
        return []
    return [Issue("a referral identifier (system and value) is required", "ServiceRequest.identifier", "required")]
