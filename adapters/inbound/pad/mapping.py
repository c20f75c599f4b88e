"""A checked pad QuestionnaireResponse to the canonical referral: one ServiceRequest to the IAPT
service that carries, contained, the patient, the referring physiotherapist and the response itself,
so the event on Kafka is all IAPT needs.

    subject    logical reference: the NHS number; "I don't know it": the contained patient, flagged
               "NHS number to be traced" (gateway/canonical/patient.py)
    requester  the physiotherapist's organisation (ODS code); a self-referral: the configured organisation
    performer  the IAPT service (ODS code, settings.pad)
    identifier the pad reference the gateway made (PAD-XXXX-XXXX)
    code       referral to IAPT (SNOMED CT) and the pathway's service type (schemas/directory)
    priority   urgent when the risk screen is positive, so routing sends it to the duty team
    extension  UK Core SourceOfServiceRequest: SNOMED CT and the IAPT Data Set's source of referral

Must not: check the answers (rules.py does, first) or route, store or publish.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhir.resources.R4B.servicerequest import ServiceRequest

from adapters.inbound.pad import codes, rules
from adapters.inbound.pad.answers import Answers
from adapters.inbound.pad.questionnaire import Pad
from adapters.inbound.pad.rules import Variant
from gateway.canonical import nhs_number, patient, systems, trusted
from gateway.canonical.referral import InboundReferral
from gateway.settings import PadSettings

CHANNEL = "pad"
SELF_REFERRAL_SENDER = "self-referral"
PATIENT_ID, REFERRER_ID, RESPONSE_ID = "patient", "referrer", "pad-response"
RISK_TEXT = "Current thoughts of self-harm or suicide"


@dataclass(frozen=True)
class Submission:
    """One checked pad, with what the gateway adds to it."""

    response: QuestionnaireResponse
    variant: Variant
    reference: str  # the pad reference (identifier value)
    correlation_id: str
    message_id: str | None = None  # the form's submission token or X-Request-Id: a resend is a duplicate


def to_referral(submission: Submission, pad: Pad, settings: PadSettings, schemas_dir: Path) -> InboundReferral:
    answers = Answers.of(submission.response)
    response = _contained_response(submission)
    data = _service_request(submission, answers, response, pad, settings, schemas_dir)
    sender = _ods(answers.text("referrer.organisation-ods")) if submission.variant == "physiotherapist" else None
    return InboundReferral(
        service_request=trusted.model(ServiceRequest, data),  # valid by construction: built, not validated
        resource=data,
        channel=CHANNEL,
        sender=sender or SELF_REFERRAL_SENDER,
        correlation_id=submission.correlation_id,
        message_id=submission.message_id,
        attachments=(response,),
        resolved=_resolved(submission.variant, answers),
    )


def _resolved(variant: Variant, answers: Answers) -> dict[str, str]:
    """How the pad named each party, for the referral's history (no patient details)."""
    subject = (
        'no NHS number ("I don\'t know it"): the patient by name, birth date and address, NHS number to be traced'
        if rules.nhs_number_unknown(answers)
        else "the NHS number the pad gives (patient.nhs-number)"
    )
    requester = (
        "the physiotherapist's organisation (referrer.organisation-ods)"
        if variant == "physiotherapist"
        else "self-referral: the configured organisation (PAD_SELF_REFERRAL_REQUESTER_ODS)"
    )
    return {"subject": subject, "requester": requester, "performer": "the IAPT service (PAD_IAPT_SERVICE_ODS)"}


def is_urgent(answers: Answers) -> bool:
    return answers.flag("risk.self-harm-thoughts") is True


def _contained_response(submission: Submission) -> QuestionnaireResponse:
    """The response as IAPT receives it: named by the pad reference, about the contained patient. What
    a contained resource may not have (its own contained resources) or need not (meta, narrative) goes."""
    author = REFERRER_ID if submission.variant == "physiotherapist" else PATIENT_ID
    data = submission.response.model_dump(mode="json", exclude_none=True, exclude={"contained", "meta", "text"})
    data |= {
        "id": RESPONSE_ID,
        "identifier": {"system": systems.REFERRAL_ID, "value": submission.reference},
        "subject": {"reference": f"#{PATIENT_ID}"},
        "author": {"reference": f"#{author}"},
    }
    return QuestionnaireResponse.model_validate(data)


def _service_request(
    submission: Submission,
    answers: Answers,
    response: QuestionnaireResponse,
    pad: Pad,
    settings: PadSettings,
    schemas_dir: Path,
) -> dict[str, Any]:
    table = codes.answer_codes(schemas_dir)
    untraced = rules.nhs_number_unknown(answers)
    contained = [patient.untraced_patient(_patient(answers)) if untraced else _patient(answers)]
    if submission.variant == "physiotherapist":
        contained.append(_practitioner(answers))
    contained.append(response.model_dump(mode="json", exclude_none=True))
    sr: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "contained": contained,
        "extension": [_source_extension(submission.variant, answers, schemas_dir)],
        "identifier": [{"system": systems.REFERRAL_ID, "value": submission.reference}],
        "status": "active",
        "intent": "order",
        "priority": "urgent" if is_urgent(answers) else "routine",
        "category": [{"coding": [_snomed(table.category)]}],
        "code": _code(answers, pad, table),
        "subject": patient.untraced_subject() if untraced else _subject(answers),
        "authoredOn": response.model_dump(mode="json").get("authored"),
        "requester": _requester(submission.variant, answers, settings),
        "performer": [_organisation(settings.iapt_service_ods, settings.iapt_service_name)],
        "reasonCode": _reasons(answers, pad, table) or None,
        "supportingInfo": [{"reference": f"#{RESPONSE_ID}", "display": "IAPT prescription pad"}],
        "note": [{"text": text} for text in _notes(answers, pad)],
    }
    if untraced:
        sr["meta"] = {"tag": [patient.flag_tag()]}
    pruned: dict[str, Any] = _pruned(sr)
    return pruned


def _pruned(data: Any) -> Any:
    """`data` without the elements an answer left empty (None, "", or nothing inside): FHIR has no
    empty elements, so a blank answer is left out rather than written as null or ""."""
    if isinstance(data, dict):
        kept = {k: _pruned(v) for k, v in data.items()}
        return {k: v for k, v in kept.items() if not _empty(v)}
    if isinstance(data, list):
        return [v for v in (_pruned(v) for v in data) if not _empty(v)]
    return data


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | dict | list) and not value)


def _subject(answers: Answers) -> dict[str, Any]:
    return {"identifier": {"system": systems.NHS_NUMBER, "value": _nhs(answers)}}


def _snomed(code: codes.Code) -> dict[str, str]:
    return {"system": systems.SNOMED_CT, "code": code.code, "display": code.display}


def _nhs(answers: Answers) -> str:
    return nhs_number.normalise(answers.text("patient.nhs-number") or "")


def _ods(value: str | None) -> str | None:
    return value.strip().upper() if value else None


def _organisation(ods_code: str, display: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"identifier": {"system": systems.ODS_CODE, "value": ods_code}}
    return {**ref, "display": display} if display else ref


def _requester(variant: Variant, answers: Answers, settings: PadSettings) -> dict[str, Any]:
    if variant == "self":
        return _organisation(settings.self_referral_requester, "Self-referral by the patient")
    name, hcpc = answers.text("referrer.name"), (answers.text("referrer.hcpc") or "").upper().replace(" ", "")
    who = f"{name}, physiotherapist" if name else "Physiotherapist"
    return _organisation(_ods(answers.text("referrer.organisation-ods")) or "", f"{who} ({hcpc})")


def _patient(answers: Answers) -> dict[str, Any]:
    address = answers.text("patient.address") or ""
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "identifier": [{"system": systems.NHS_NUMBER, "value": _nhs(answers)}],
        "name": [
            {
                "use": "official",
                "family": answers.text("patient.family-name"),
                "given": [answers.text("patient.given-name")],
            }
        ],
        "birthDate": str(answers.day("patient.birth-date")),
        "telecom": [{"system": "phone", "value": answers.text("patient.phone"), "use": "home"}],
        "address": [
            {
                "use": "home",
                "text": address,
                "line": [line.strip() for line in address.replace(",", "\n").splitlines() if line.strip()],
                "postalCode": (answers.text("patient.postcode") or "").upper(),
            }
        ],
    }
    language = answers.text("patient.interpreter-language")
    if answers.flag("patient.interpreter-needed") and language:
        patient["communication"] = [{"language": {"text": language}, "preferred": True}]
    return patient


def _practitioner(answers: Answers) -> dict[str, Any]:
    telecom = [{"system": "phone", "value": answers.text("referrer.phone"), "use": "work"}]
    if answers.text("referrer.email"):
        telecom.append({"system": "email", "value": answers.text("referrer.email"), "use": "work"})
    return {
        "resourceType": "Practitioner",
        "id": REFERRER_ID,
        "identifier": [
            {"system": systems.HCPC_NUMBER, "value": (answers.text("referrer.hcpc") or "").upper().replace(" ", "")}
        ],
        "name": [{"text": answers.text("referrer.name")}],
        "telecom": telecom,
    }


def _source_extension(variant: Variant, answers: Answers, schemas_dir: Path) -> dict[str, Any]:
    table = codes.sources_of_referral(schemas_dir)
    if variant == "self":
        source = table.source("self")
    else:
        setting = answers.text("referrer.setting") or "community"
        source = table.source(f"physiotherapist-{setting}")
    coding = [_snomed(source.snomed), {"system": table.iapt_system, **source.iapt.model_dump()}]
    return {"url": systems.EXT_SOURCE_OF_SERVICE_REQUEST, "valueCodeableConcept": {"coding": coding}}


def _code(answers: Answers, pad: Pad, table: codes.AnswerCodes) -> dict[str, Any]:
    """A referral to IAPT (SNOMED CT) and, for a Health and Wellbeing pathway, the service type the
    directory gives it: what routing rules read to choose the service."""
    pathway = answers.text("pathway.recommended") or "core"
    coding = [_snomed(table.code)]
    service_type = table.pathways.get(pathway)
    if service_type is not None:
        coding.append({"system": table.service_type_system, **service_type.model_dump()})
    return {"coding": coding, "text": pad.option_display("pathway.recommended", pathway)}


def _reasons(answers: Answers, pad: Pad, table: codes.AnswerCodes) -> list[dict[str, Any]]:
    reasons: list[dict[str, Any]] = []
    seen: set[str] = set()
    for link_id, detail in (
        ("difficulties.presenting", "difficulties.other-detail"),
        ("conditions.long-term", "conditions.other-detail"),
    ):
        for code in answers.codes(link_id):
            label = pad.option_display(link_id, code)
            found = table.reasons.get(code, [])
            if not found:
                reasons.append({"text": f"{label}: {answers.text(detail) or 'not described'}"})
            for concept in found:
                if concept.code not in seen:
                    seen.add(concept.code)
                    reasons.append({"coding": [_snomed(concept)], "text": label})
    if is_urgent(answers):
        reasons.append({"coding": [_snomed(table.positive_risk_screen)], "text": RISK_TEXT})
    return reasons


def _notes(answers: Answers, pad: Pad) -> list[str]:
    notes = [answers.text("notes") or ""]
    times = [pad.option_display("patient.contact-times", c) for c in answers.codes("patient.contact-times")]
    safe = {True: "yes", False: "no", None: "not said"}[answers.flag("patient.safe-to-leave-message")]
    notes.append(f"Contact: safe to leave a message: {safe}; best times: {', '.join(times) or 'any'}.")
    if answers.flag("patient.interpreter-needed"):
        notes.append(f"Needs an interpreter: {answers.text('patient.interpreter-language')}.")
    if answers.text("patient.access-needs"):
        notes.append(f"Access needs: {answers.text('patient.access-needs')}")
    risk = (
        "POSITIVE: current thoughts of self-harm or suicide"
        if is_urgent(answers)
        else "no current thoughts of self-harm or suicide"
    )
    notes.append(f"Risk screen: {risk}.")
    notes.append("The patient consented to this referral and to sharing their information with the service.")
    return [n for n in notes if n]
