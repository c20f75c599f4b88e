"""The QuestionnaireResponse validator: required items, answer types, options, linkIds that exist,
enableWhen, repeats, the canonical URL and status."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from adapters.inbound.pad import conformance
from gateway.errors import Issue
from tests.pad.pads import answer, find_item, pad, remove_item, sample_response


def check(qr: dict[str, Any]) -> list[Issue]:
    return conformance.check(QuestionnaireResponse.model_validate(qr), pad())


def where(issues: list[Issue]) -> list[str | None]:
    return [i.expression for i in issues]


def test_the_sample_response_fits_the_questionnaire() -> None:
    assert check(sample_response()) == []


def test_a_missing_required_answer_names_its_link_id() -> None:
    qr = sample_response()
    remove_item(qr["item"], "patient.birth-date")
    issues = check(qr)
    assert where(issues) == ["patient.birth-date"]
    assert issues[0].code == "required"


def test_a_missing_required_group_reports_each_required_question_in_it() -> None:
    qr = sample_response()
    remove_item(qr["item"], "risk")
    assert where(check(qr)) == ["risk.self-harm-thoughts"]


def test_a_missing_optional_group_is_fine() -> None:
    qr = sample_response()
    remove_item(qr["item"], "conditions")
    assert check(qr) == []


def test_an_answer_of_the_wrong_type_is_refused() -> None:
    qr = sample_response()
    answer(qr, "patient.birth-date")[0] = {"valueString": "14th March 1971"}
    answer(qr, "risk.self-harm-thoughts")[0] = {"valueString": "no"}
    issues = check(qr)
    assert where(issues) == ["patient.birth-date", "risk.self-harm-thoughts"]
    assert "valueDate" in issues[0].diagnostics


def test_a_choice_outside_the_options_is_refused() -> None:
    qr = sample_response()
    answer(qr, "pathway.recommended")[0]["valueCoding"]["code"] = "hypnotherapy"
    issues = check(qr)
    assert where(issues) == ["pathway.recommended"]
    assert issues[0].code == "code-invalid"


def test_a_link_id_the_questionnaire_does_not_have_is_refused() -> None:
    qr = sample_response()
    find_item(qr["item"], "patient")["item"].append({"linkId": "patient.shoe-size", "answer": [{"valueString": "9"}]})
    assert where(check(qr)) == ["patient.shoe-size"]


def test_two_answers_to_a_question_that_does_not_repeat_are_refused() -> None:
    qr = sample_response()
    answer(qr, "patient.phone").append({"valueString": "07700 900000"})
    assert where(check(qr)) == ["patient.phone"]


def test_repeating_questions_take_several_answers() -> None:
    qr = sample_response()
    answer(qr, "difficulties.presenting").append(
        {"valueCoding": {"system": answer(qr, "difficulties.presenting")[0]["valueCoding"]["system"], "code": "sleep"}}
    )
    assert check(qr) == []


def test_a_question_enabled_by_an_answer_becomes_required() -> None:
    qr = sample_response()
    answer(qr, "patient.interpreter-needed")[0] = {"valueBoolean": True}
    issues = check(qr)
    assert where(issues) == ["patient.interpreter-language"]
    assert issues[0].code == "required"


def test_an_answer_to_a_question_that_is_not_enabled_is_refused_saying_when_it_is_asked() -> None:
    qr = sample_response()
    find_item(qr["item"], "patient")["item"].append(
        {"linkId": "patient.interpreter-language", "answer": [{"valueString": "Polish"}]}
    )
    issues = check(qr)
    assert where(issues) == ["patient.interpreter-language"]
    assert "Needs an interpreter" in issues[0].diagnostics


def test_an_other_choice_enables_its_detail() -> None:
    qr = sample_response()
    coding = answer(qr, "difficulties.presenting")[0]["valueCoding"]
    answer(qr, "difficulties.presenting").append({"valueCoding": {**coding, "code": "other", "display": None}})
    assert where(check(qr)) == ["difficulties.other-detail"]


def test_too_long_text_is_refused() -> None:
    qr = sample_response()
    answer(qr, "patient.postcode")[0]["valueString"] = "X" * 9
    issues = check(qr)
    assert where(issues) == ["patient.postcode"]
    assert issues[0].code == "too-long"


def test_another_questionnaire_is_refused() -> None:
    qr = sample_response()
    qr["questionnaire"] = "https://example.org/Questionnaire/phq-9"
    assert where(check(qr)) == ["QuestionnaireResponse.questionnaire"]


def test_the_versioned_canonical_is_accepted() -> None:
    qr = sample_response()
    qr["questionnaire"] += "|1.0.0"
    assert check(qr) == []
    qr["questionnaire"] = qr["questionnaire"].replace("1.0.0", "2.0.0")
    assert where(check(qr)) == ["QuestionnaireResponse.questionnaire"]


def test_an_unfinished_response_is_not_a_referral() -> None:
    qr = sample_response()
    qr["status"] = "in-progress"
    assert where(check(qr)) == ["QuestionnaireResponse.status"]


def test_a_group_with_an_answer_is_refused() -> None:
    qr = sample_response()
    find_item(qr["item"], "risk")["answer"] = [{"valueBoolean": False}]
    assert "risk" in where(check(qr))
