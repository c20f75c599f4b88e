"""What the pad's web page shows, built from the Questionnaire: fields with what was typed, errors
linked from the summary to the fields in form order, the patient's own words on a self-referral, and
the receipt after sending."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest

from adapters.inbound.pad import inbound
from adapters.inbound.pad.rules import Variant
from gateway.api import pad_view
from gateway.api.pad_receipt import receipt
from gateway.errors import Issue
from gateway.settings import SCHEMAS_DIR, PadSettings
from tests.pad.pads import pad, physio_fields, self_fields


def fields_by_name(sections: list[pad_view.Section]) -> dict[str, pad_view.Field]:
    return {f.name: f for s in sections for f in s.fields}


def test_every_question_of_the_questionnaire_is_a_field() -> None:
    shown = fields_by_name(pad_view.sections(pad(), "physiotherapist", {}, []))
    questions = [link for link, item in pad().items.items() if item.type != "group"]
    assert list(shown) == questions


def test_controls_follow_the_item_type_and_item_control() -> None:
    shown = fields_by_name(pad_view.sections(pad(), "physiotherapist", {}, []))
    assert shown["patient.nhs-number"].control == "text"
    assert shown["patient.address"].control == "textarea"
    assert shown["patient.safe-to-leave-message"].control == "yes-no"
    assert shown["consent.referral"].control == "checkbox"
    assert shown["difficulties.presenting"].control == "checkboxes"
    assert shown["pathway.recommended"].control == "radios"
    assert shown["patient.phone"].attrs["type"] == "tel"


def test_what_was_typed_is_shown_again() -> None:
    typed = {
        "patient.given-name": "Robin",
        "difficulties.presenting": ["low-mood", "sleep"],
        "risk.self-harm-thoughts": "no",
        "consent.referral": "yes",
    }
    shown = fields_by_name(pad_view.sections(pad(), "physiotherapist", typed, []))
    assert shown["patient.given-name"].value == "Robin"
    assert [o.value for o in shown["difficulties.presenting"].options if o.checked] == ["low-mood", "sleep"]
    assert [o.value for o in shown["risk.self-harm-thoughts"].options if o.checked] == ["no"]
    assert shown["consent.referral"].options[0].checked
    assert not shown["consent.sharing"].options[0].checked


def test_the_summary_links_each_problem_to_its_field_in_form_order() -> None:
    issues = [
        Issue("consent is needed before the referral can be sent", "consent.sharing", "business-rule"),
        Issue("an answer is required", "risk.self-harm-thoughts", "required"),
        Issue("this is not a valid NHS number: check the digits", "patient.nhs-number", "value"),
        Issue("an answer is required", "difficulties.presenting", "required"),
    ]
    links = pad_view.error_summary(pad(), "physiotherapist", issues)
    assert [(link.href, link.text) for link in links] == [
        ("#patient-nhs-number", "NHS number: this is not a valid NHS number: check the digits."),
        ("#difficulties-presenting-low-mood", "What is the patient struggling with: tick at least one."),
        (
            "#risk-self-harm-thoughts-yes",
            "Does the patient have current thoughts of self-harm or suicide: answer yes or no.",
        ),
        (
            "#consent-sharing",
            "The patient consents to their information being shared with NHS Talking Therapies: "
            "consent is needed before the referral can be sent.",
        ),
    ]


def test_each_field_shows_its_own_error() -> None:
    issues = [Issue("an answer is required", "patient.postcode", "required")]
    shown = fields_by_name(pad_view.sections(pad(), "physiotherapist", {}, issues))
    assert shown["patient.postcode"].error == "This is required."
    assert shown["patient.phone"].error is None


def test_a_problem_not_about_a_field_links_to_the_form() -> None:
    links = pad_view.error_summary(pad(), "physiotherapist", [Issue("the store did not commit")])
    assert [(link.href, link.text) for link in links] == [("#pad-form", "The store did not commit.")]


def test_a_question_asked_after_another_answer_says_when() -> None:
    shown = fields_by_name(pad_view.sections(pad(), "physiotherapist", {}, []))
    assert shown["patient.interpreter-language"].conditional
    assert shown["patient.interpreter-language"].hint == "Only if you ticked \u201cNeeds an interpreter\u201d."
    assert shown["difficulties.other-detail"].hint == "Only if you ticked \u201cSomething else\u201d."


def test_a_self_referral_has_no_referrer_section_and_speaks_to_the_patient() -> None:
    sections = pad_view.sections(pad(), "self", {}, [])
    assert "referrer" not in [s.name for s in sections]
    shown = fields_by_name(sections)
    assert shown["risk.self-harm-thoughts"].label.startswith("Are you having thoughts")
    assert shown["patient.interpreter-language"].hint == "Only if you ticked \u201cI need an interpreter\u201d."
    assert shown["patient.given-name"].attrs["autocomplete"] == "given-name"


def test_the_physiotherapists_browser_does_not_autofill_the_patients_details() -> None:
    shown = fields_by_name(pad_view.sections(pad(), "physiotherapist", {}, []))
    assert shown["patient.given-name"].attrs["autocomplete"] == "off"
    assert shown["referrer.name"].attrs["autocomplete"] == "name"


def made(values: dict[str, Any], variant: Variant = "physiotherapist") -> ServiceRequest:
    return inbound.from_fields(
        values,
        variant,
        web_form=False,
        settings=PadSettings(),
        schemas_dir=SCHEMAS_DIR,
        correlation_id="c",
        message_id=None,
    ).service_request


def test_the_receipt_gives_the_reference_and_where_it_went() -> None:
    sr = made(physio_fields())
    shown = receipt(sr, "referrals.iapt", "iapt-by-performer", PadSettings())
    assert shown.reference == sr.identifier[0].value
    assert (shown.service_ods, shown.topic, shown.rule) == ("NQ1IA", "referrals.iapt", "iapt-by-performer")
    assert (shown.source_snomed, shown.source_iapt) == ("185370009", "A3")
    assert not shown.urgent


def test_the_receipt_of_a_positive_risk_screen_carries_the_configured_crisis_steps() -> None:
    settings = PadSettings(crisis_steps=["Call the Leeds crisis team on 0800 000 0000."])
    sr = made(physio_fields({"risk.self-harm-thoughts": True}))
    shown = receipt(sr, "referrals.iapt", "iapt-urgent-risk", settings)
    assert shown.urgent
    assert shown.crisis_steps == ("Call the Leeds crisis team on 0800 000 0000.",)


def test_a_self_referral_receipt_speaks_to_the_patient() -> None:
    sr = made(self_fields({"risk.self-harm-thoughts": True}), "self")
    shown = receipt(sr, "referrals.iapt", "iapt-urgent-risk", PadSettings())
    assert shown.variant == "self"
    assert shown.crisis_steps == tuple(PadSettings().self_referral_crisis_steps)
