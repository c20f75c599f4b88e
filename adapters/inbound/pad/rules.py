"""The pad's rules, beyond fitting the Questionnaire: consent, the NHS number (given, with a valid
check digit, or "I don't know it" ticked: the service then traces it from name, birth date and
address), the
HCPC registration number, ODS code, phone and postcode shapes, dates not in the future, and the
referrer section being there exactly when a physiotherapist refers.

`check` raises `ConsentMissing` when the patient has not consented (nothing may be sent) and
`InvalidReferral` for anything else, each listing every problem with the item's linkId. A positive
risk screen is not an error: mapping.py makes the referral urgent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from adapters.inbound.pad import conformance
from adapters.inbound.pad.answers import Answers
from adapters.inbound.pad.questionnaire import Pad
from gateway.canonical import nhs_number, ods
from gateway.errors import ConsentMissing, InvalidReferral, Issue

Variant = Literal["physiotherapist", "self"]

REFERRER = "referrer"
CONSENT_ITEMS = ("consent.referral", "consent.sharing")
# HCPC registers physiotherapists under the profession prefix PH followed by the number (PH123456).
_HCPC_PHYSIOTHERAPIST = re.compile(r"^PH\d{1,7}$")
_POSTCODE = re.compile(r"^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$")
_UK_PHONE = re.compile(r"^(?:\+44|0)\d{9,10}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_OLDEST = date(1900, 1, 1)
_CLOCK_SKEW = timedelta(minutes=5)


def variant_of(qr: QuestionnaireResponse) -> Variant:
    """A response with the referrer section is a physiotherapist's referral; without, a self-referral."""
    return "physiotherapist" if any(item.linkId == REFERRER for item in qr.item or []) else "self"


def check(
    qr: QuestionnaireResponse, pad: Pad, variant: Variant, prior: Sequence[Issue] = (), today: date | None = None
) -> None:
    """Raise if the response may not become a referral; return quietly if it may.

    `prior` are problems found before the response was made (a field that could not be read): they
    stand in for what conformance would say about the same item.
    """
    answers = Answers.of(qr)
    consent = consent_issues(answers)
    said = {issue.expression for issue in [*consent, *prior]}
    issues = [*prior, *(i for i in conformance.check(qr, pad) if i.expression not in said)]
    issues += _sections(answers, pad, variant) + _values(answers, today or date.today()) + _nhs_number_given(answers)
    issues += _authored(qr)
    issues = in_form_order(issues, pad)
    if consent:
        raise ConsentMissing(
            "The patient has not consented to the referral and to sharing their information, so nothing was sent",
            *consent,
            *issues,
        )
    if issues:
        raise InvalidReferral("Some answers need correcting before the referral can be sent", *issues)


def in_form_order(issues: list[Issue], pad: Pad) -> list[Issue]:
    """Issues in the order of the Questionnaire's items, so a summary reads top to bottom."""
    order = {link_id: n for n, link_id in enumerate(pad.items)}
    return sorted(issues, key=lambda issue: order.get(issue.expression or "", -1))


def consent_issues(answers: Answers) -> list[Issue]:
    return [
        Issue("consent is needed before the referral can be sent", link_id, "business-rule")
        for link_id in CONSENT_ITEMS
        if answers.flag(link_id) is not True
    ]


NHS_NUMBER, NHS_NUMBER_UNKNOWN = "patient.nhs-number", "patient.nhs-number-unknown"


def nhs_number_unknown(answers: Answers) -> bool:
    """No NHS number given and "I don't know it" ticked: the referral goes with the patient to be traced."""
    return not answers.text(NHS_NUMBER) and answers.flag(NHS_NUMBER_UNKNOWN) is True


def _nhs_number_given(answers: Answers) -> list[Issue]:
    if answers.text(NHS_NUMBER) or answers.flag(NHS_NUMBER_UNKNOWN) is True:
        return []
    return [Issue("enter the NHS number, or tick that it is not known", NHS_NUMBER, "required")]


def _sections(answers: Answers, pad: Pad, variant: Variant) -> list[Issue]:
    if variant == "self":
        if REFERRER in answers.present:
            return [Issue("a self-referral has no referring physiotherapist section", REFERRER, "structure")]
        return []
    if REFERRER in answers.present:
        return []  # conformance reports what is missing inside it
    required = [link for link, parent in pad.parents.items() if parent == REFERRER and pad.items[link].required]
    return [Issue("the referring physiotherapist's details are required", link, "required") for link in required]


def _values(answers: Answers, today: date) -> list[Issue]:
    checks = [
        ("patient.nhs-number", _nhs_number),
        ("patient.postcode", _postcode),
        ("patient.phone", _phone),
        ("referrer.phone", _phone),
        ("referrer.hcpc", _hcpc),
        ("referrer.organisation-ods", _ods_code),
        ("referrer.email", _email),
    ]
    issues = [
        Issue(problem, link_id, "value") for link_id, test in checks if (problem := _test(answers, link_id, test))
    ]
    born = answers.day("patient.birth-date")
    if born is not None and (problem := _birth_date(born, today)):
        issues.append(Issue(problem, "patient.birth-date", "value"))
    return issues


def _test(answers: Answers, link_id: str, test: Callable[[str], str | None]) -> str | None:
    value = answers.text(link_id)
    return test(value) if value else None


def _nhs_number(value: str) -> str | None:
    number = nhs_number.normalise(value)
    if len(number) != 10 or not number.isdigit():
        return "an NHS number is 10 digits, for example 943 476 5919"
    return None if nhs_number.is_valid(number) else "this is not a valid NHS number: check the digits"


def _postcode(value: str) -> str | None:
    return None if _POSTCODE.fullmatch(value.upper()) else "enter a full UK postcode, for example LS1 4AP"


def _phone(value: str) -> str | None:
    digits = re.sub(r"[\s()-]", "", value)
    return None if _UK_PHONE.fullmatch(digits) else "enter a UK phone number, for example 0113 496 0000 or 07700 900000"


def _hcpc(value: str) -> str | None:
    number = value.upper().replace(" ", "")
    ok = _HCPC_PHYSIOTHERAPIST.fullmatch(number)
    return None if ok else "a physiotherapist's HCPC registration number is PH followed by digits, for example PH123456"


def _ods_code(value: str) -> str | None:
    return (
        None if ods.is_valid(value.upper().strip()) else "an ODS code is 3 to 9 letters and digits, for example NPH01"
    )


def _email(value: str) -> str | None:
    return None if _EMAIL.fullmatch(value) else "enter an email address, for example name@nhs.net"


def _birth_date(born: date, today: date) -> str | None:
    if born > today:
        return "the date of birth cannot be in the future"
    if born < _OLDEST:
        return f"the date of birth must be after {_OLDEST.isoformat()}"
    return None


def _authored(qr: QuestionnaireResponse) -> list[Issue]:
    authored = qr.authored
    if authored is None:
        return []
    when = authored if isinstance(authored, datetime) else datetime.combine(authored, datetime.min.time())
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when > datetime.now(UTC) + _CLOCK_SKEW:
        return [Issue("authored cannot be in the future", "QuestionnaireResponse.authored", "value")]
    return []
