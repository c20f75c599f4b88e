"""Form and JSON fields to a QuestionnaireResponse: each value becomes an answer of its item's type,
or an issue against its linkId."""

from __future__ import annotations

from datetime import date
from typing import Any

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from adapters.inbound.pad import conformance, fields
from adapters.inbound.pad.answers import Answers
from gateway.errors import Issue
from tests.pad.pads import pad, physio_fields, self_fields


def convert(values: dict[str, Any], **options: Any) -> tuple[QuestionnaireResponse, list[Issue]]:
    return fields.response_from_fields(values, pad(), **options)


def test_complete_json_fields_make_a_response_that_fits_the_questionnaire() -> None:
    qr, issues = convert(physio_fields())
    assert issues == []
    assert conformance.check(qr, pad()) == []
    assert qr.questionnaire == "https://referral-gateway.nhs.example/Questionnaire/iapt-prescription-pad|1.1.0"
    assert qr.status == "completed"
    assert qr.authored is not None


def test_answers_are_nested_in_their_groups_in_questionnaire_order() -> None:
    qr, _ = convert(physio_fields())
    assert [i.linkId for i in qr.item or []] == [
        "patient",
        "referrer",
        "difficulties",
        "conditions",
        "pathway",
        "risk",
        "consent",
        "notes",
    ]
    patient = qr.item[0]
    assert patient.item[0].linkId == "patient.nhs-number"


def test_form_strings_become_typed_answers() -> None:
    values = physio_fields(
        {"patient.safe-to-leave-message": "yes", "risk.self-harm-thoughts": "no", "patient.birth-date": "14/03/1971"}
    )
    qr, issues = convert(values)
    answers = Answers.of(qr)
    assert issues == []
    assert answers.flag("patient.safe-to-leave-message") is True
    assert answers.flag("risk.self-harm-thoughts") is False
    assert answers.day("patient.birth-date") == date(1971, 3, 14)


def test_choices_become_codings_from_the_questionnaire() -> None:
    qr, _ = convert(physio_fields())
    presenting = qr.item[2].item[0].answer
    assert [a.valueCoding.code for a in presenting] == ["low-mood", "pain-distress"]
    assert presenting[0].valueCoding.display == "Low mood"
    assert presenting[0].valueCoding.system == "https://referral-gateway.nhs.example/CodeSystem/iapt-prescription-pad"


def test_unreadable_values_are_reported_against_their_link_id() -> None:
    values = physio_fields(
        {"patient.birth-date": "31/02/1971", "risk.self-harm-thoughts": "maybe", "pathway.recommended": "yoga"}
    )
    _, issues = convert(values)
    assert {i.expression: i.diagnostics for i in issues} == {
        "patient.birth-date": "enter a real date, for example 27/03/1985",
        "risk.self-harm-thoughts": "answer yes or no",
        "pathway.recommended": (
            "choose one of the options (core, living-well-with-pain, living-well-back-pain-sciatica)"
        ),
    }


def test_a_field_the_pad_does_not_have_is_reported() -> None:
    _, issues = convert(physio_fields({"patient.shoe-size": "9", "patient": "x"}))
    assert [i.expression for i in issues] == ["patient.shoe-size", "patient"]


def test_several_values_for_a_question_that_does_not_repeat_are_reported() -> None:
    _, issues = convert(physio_fields({"pathway.recommended": ["core", "living-well-with-pain"]}))
    assert [i.expression for i in issues] == ["pathway.recommended"]


def test_blank_form_fields_are_no_answer() -> None:
    qr, issues = convert(physio_fields({"notes": "   ", "patient.access-needs": ""}))
    assert issues == []
    assert not Answers.of(qr).has("notes")


def test_an_unticked_checkbox_is_an_answer_of_no_on_the_web_form_only() -> None:
    values = physio_fields({"consent.sharing": None, "patient.interpreter-needed": None})
    on_form, _ = convert(values, unticked_is_no=fields.checkbox_items(pad()))
    as_json, _ = convert(values)
    assert Answers.of(on_form).flag("consent.sharing") is False
    assert Answers.of(on_form).flag("patient.interpreter-needed") is False
    assert Answers.of(as_json).flag("consent.sharing") is None


def test_checkbox_items_are_the_booleans_shown_as_one_checkbox() -> None:
    assert fields.checkbox_items(pad()) == {
        "patient.nhs-number-unknown",
        "patient.interpreter-needed",
        "consent.referral",
        "consent.sharing",
    }


def test_a_self_referral_leaves_out_the_referrer_section() -> None:
    qr, issues = convert(self_fields(), leave_out=("referrer",))
    assert issues == []
    assert "referrer" not in Answers.of(qr).present
    _, issues = convert({**self_fields(), "referrer.name": "Someone"}, leave_out=("referrer",))
    assert [i.expression for i in issues] == ["referrer.name"]


def test_a_json_number_is_taken_as_text() -> None:
    qr, issues = convert(physio_fields({"patient.nhs-number": 9434765919}))
    assert issues == []
    assert Answers.of(qr).text("patient.nhs-number") == "9434765919"
