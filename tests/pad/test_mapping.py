"""A checked pad becomes one canonical ServiceRequest to IAPT: logical references, SNOMED CT codes,
the source of referral in both code systems, urgent on a positive risk screen, and everything IAPT
needs contained. It passes the UK Core rules and routes to referrals.iapt with the real rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhir.resources.R4B.servicerequest import ServiceRequest

from adapters.inbound.pad import inbound, reference
from adapters.inbound.pad.rules import Variant
from gateway.canonical import referral, systems, ukcore
from gateway.canonical.referral import InboundReferral
from gateway.routing import load_router
from gateway.settings import SCHEMAS_DIR, PadSettings
from tests.pad.pads import physio_fields, sample_response, self_fields

IAPT_SOURCE_SYSTEM = "https://referral-gateway.nhs.example/CodeSystem/nhs-talking-therapies-source-of-referral"


def make(
    values: dict[str, Any], variant: Variant = "physiotherapist", settings: PadSettings | None = None
) -> InboundReferral:
    return inbound.from_fields(
        values,
        variant,
        web_form=False,
        settings=settings or PadSettings(),
        schemas_dir=SCHEMAS_DIR,
        correlation_id="corr-1",
        message_id="msg-1",
    )


def source_codes(sr: ServiceRequest) -> dict[str | None, str | None]:
    (ext,) = [e for e in sr.extension or [] if e.url == systems.EXT_SOURCE_OF_SERVICE_REQUEST]
    return {c.system: c.code for c in ext.valueCodeableConcept.coding}


def contained(sr: ServiceRequest, resource_type: str) -> Any:
    (found,) = [c for c in sr.contained or [] if c.get_resource_type() == resource_type]
    return found


def test_the_referral_is_addressed_by_identifiers() -> None:
    values = physio_fields({"patient.nhs-number": "943 476 5919", "referrer.organisation-ods": "nph01"})
    sr = make(values).service_request
    assert sr.subject.identifier.system == systems.NHS_NUMBER
    assert referral.nhs_number(sr) == "9434765919"
    assert sr.subject.reference is None
    assert referral.requester_ods(sr) == "NPH01"
    assert referral.performer_ods(sr) == "NQ1IA"


def test_the_iapt_service_is_configurable() -> None:
    sr = make(
        physio_fields(), settings=PadSettings(iapt_service_ods="NQ2TT", iapt_service_name="Talking Leeds")
    ).service_request
    assert referral.performer_ods(sr) == "NQ2TT"
    assert sr.performer[0].display == "Talking Leeds"


def test_the_gateway_gives_each_pad_a_reference() -> None:
    first, second = make(physio_fields()).service_request, make(physio_fields()).service_request
    (ident,) = first.identifier
    assert ident.system == systems.REFERRAL_ID
    assert reference.PATTERN.fullmatch(ident.value)
    assert first.identifier[0].value != second.identifier[0].value


def test_category_and_code_are_snomed_ct() -> None:
    sr = make(physio_fields()).service_request
    assert (sr.category[0].coding[0].system, sr.category[0].coding[0].code) == (systems.SNOMED_CT, "3457005")
    assert (sr.code.coding[0].system, sr.code.coding[0].code) == (systems.SNOMED_CT, "1085781000000107")
    assert (sr.status, sr.intent) == ("active", "order")


def test_reason_codes_come_from_the_difficulties_and_long_term_conditions() -> None:
    values = physio_fields(
        {
            "difficulties.presenting": ["low-mood", "anxiety", "other"],
            "difficulties.other-detail": "Bereavement",
            "conditions.long-term": ["chronic-pain", "back-pain-sciatica"],
        }
    )
    sr = make(values).service_request
    assert referral.codes(sr.reasonCode) == {"366979004", "48694002", "82423001", "161891005", "23056005"}
    assert "Something else: Bereavement" in [r.text for r in sr.reasonCode]


def test_the_same_snomed_code_is_given_once() -> None:
    sr = make(physio_fields({"conditions.long-term": ["back-pain", "back-pain-sciatica"]})).service_request
    codes = [c.code for r in sr.reasonCode for c in r.coding or []]
    assert codes.count("161891005") == 1


def test_a_community_physiotherapist_is_snomed_185370009_and_iapt_a3() -> None:
    sr = make(physio_fields()).service_request
    assert source_codes(sr) == {systems.SNOMED_CT: "185370009", IAPT_SOURCE_SYSTEM: "A3"}
    assert referral.source_of_referral(sr) == "185370009"


def test_a_hospital_physiotherapist_is_iapt_h2() -> None:
    sr = make(physio_fields({"referrer.setting": "hospital"})).service_request
    assert source_codes(sr) == {systems.SNOMED_CT: "185370009", IAPT_SOURCE_SYSTEM: "H2"}


def test_a_self_referral_is_snomed_1036481000000106_and_iapt_b1() -> None:
    made = make(self_fields(), "self")
    sr = made.service_request
    assert source_codes(sr) == {systems.SNOMED_CT: "1036481000000106", IAPT_SOURCE_SYSTEM: "B1"}
    assert referral.requester_ods(sr) == "NQ1IA"
    assert made.sender == "self-referral"
    assert [c.get_resource_type() for c in sr.contained] == ["Patient", "QuestionnaireResponse"]


def test_a_self_referral_requester_is_configurable() -> None:
    sr = make(self_fields(), "self", PadSettings(self_referral_requester_ods="NQ1SR")).service_request
    assert referral.requester_ods(sr) == "NQ1SR"


def test_a_routine_pad_is_routine() -> None:
    sr = make(physio_fields()).service_request
    assert sr.priority == "routine"
    assert "6471006" not in referral.codes(sr.reasonCode)


def test_a_positive_risk_screen_makes_the_referral_urgent_and_says_why() -> None:
    sr = make(physio_fields({"risk.self-harm-thoughts": True})).service_request
    assert sr.priority == "urgent"
    assert "6471006" in referral.codes(sr.reasonCode)
    assert any("POSITIVE" in n.text for n in sr.note)


def test_a_health_and_wellbeing_pathway_is_coded_as_the_directorys_service_type() -> None:
    sr = make(physio_fields({"pathway.recommended": "living-well-with-pain"})).service_request
    assert [(c.system, c.code) for c in sr.code.coding] == [
        (systems.SNOMED_CT, "1085781000000107"),
        ("https://referral-gateway.nhs.example/CodeSystem/service-type", "hwb-chronic-pain"),
    ]
    assert sr.code.text == "Health and Wellbeing: Living Well with Pain"


def test_the_core_service_is_the_snomed_code_alone() -> None:
    sr = make(physio_fields({"pathway.recommended": "core"})).service_request
    assert referral.codes(sr.code) == {"1085781000000107"}
    assert sr.code.text == "Core NHS Talking Therapies (IAPT)"


def test_the_patient_and_physiotherapist_are_contained() -> None:
    values = physio_fields({"patient.interpreter-needed": True, "patient.interpreter-language": "Polish"})
    sr = make(values).service_request
    patient = contained(sr, "Patient")
    assert patient.identifier[0].value == referral.nhs_number(sr)
    assert (patient.name[0].given, patient.name[0].family) == (["Sam"], "Example")
    assert str(patient.birthDate) == "1971-03-14"
    assert patient.address[0].postalCode == "LS1 4AP"
    assert patient.communication[0].language.text == "Polish"
    physio = contained(sr, "Practitioner")
    assert (physio.identifier[0].system, physio.identifier[0].value) == (systems.HCPC_NUMBER, "PH123456")


def test_the_response_is_contained_and_is_the_supporting_info() -> None:
    made = make(physio_fields())
    sr = made.service_request
    response = contained(sr, "QuestionnaireResponse")
    assert sr.supportingInfo[0].reference == f"#{response.id}"
    assert response.identifier.value == sr.identifier[0].value
    assert response.subject.reference == "#patient"
    assert response.author.reference == "#referrer"
    assert made.attachments == (response,)
    assert isinstance(made.attachments[0], QuestionnaireResponse)


def test_contact_preferences_are_in_the_notes() -> None:
    sr = make(physio_fields()).service_request
    assert "Contact: safe to leave a message: yes; best times: Morning (9am to 12pm), Evening (5pm to 8pm)." in [
        n.text for n in sr.note
    ]


def test_the_inbound_referral_is_from_the_pad_channel() -> None:
    made = make(physio_fields())
    assert (made.channel, made.sender, made.correlation_id, made.message_id) == ("pad", "NPH01", "corr-1", "msg-1")


def test_the_service_request_meets_uk_core_and_round_trips() -> None:
    sr = make(physio_fields()).service_request
    ukcore.validate(sr)
    again = ServiceRequest.model_validate_json(sr.model_dump_json())
    assert again.model_dump() == sr.model_dump()
    assert ServiceRequest.model_validate_xml(sr.model_dump_xml()).model_dump() == sr.model_dump()


ROUTES = {
    "core": ({"pathway.recommended": "core"}, "iapt-by-performer", "iapt-core"),
    "back-pain-course": ({}, "iapt-back-pain-course", "iapt-hwb-back-pain-course"),
    "living-well-with-pain": (
        {"pathway.recommended": "living-well-with-pain", "conditions.long-term": ["chronic-pain"]},
        "iapt-chronic-pain-pathway",
        "iapt-hwb-chronic-pain",
    ),
    "positive-risk": ({"risk.self-harm-thoughts": True}, "iapt-urgent-risk", "iapt-duty"),
}


@pytest.mark.parametrize(("changes", "rule", "service"), ROUTES.values(), ids=ROUTES.keys())
def test_the_routing_rules_send_it_to_referrals_iapt(changes: dict[str, Any], rule: str, service: str) -> None:
    sr = make(physio_fields(changes)).service_request
    decision = load_router(SCHEMAS_DIR).route(sr)
    assert (decision.topic, decision.rule, decision.service) == ("referrals.iapt", rule, service)


def test_a_positive_risk_screen_goes_to_the_duty_team_whatever_the_pathway() -> None:
    for pathway in ("core", "living-well-with-pain", "living-well-back-pain-sciatica"):
        changes = {"risk.self-harm-thoughts": True, "pathway.recommended": pathway, "conditions.long-term": None}
        decision = load_router(SCHEMAS_DIR).route(make(physio_fields(changes)).service_request)
        assert (decision.topic, decision.service) == ("referrals.iapt", "iapt-duty"), pathway


def test_a_fhir_questionnaire_response_becomes_the_same_referral() -> None:
    made = inbound.from_questionnaire_response(
        json.dumps(sample_response("9434765919")).encode(),
        "application/fhir+json",
        settings=PadSettings(),
        schemas_dir=SCHEMAS_DIR,
        correlation_id="corr-2",
        message_id=None,
    )
    sr = made.service_request
    assert referral.nhs_number(sr) == "9434765919"
    assert source_codes(sr)[systems.SNOMED_CT] == "185370009"
    assert made.message_id == "https://physio.example.nhs.uk/Id/pad|EX-0001"  # the sender's id: a resend is a duplicate
    ukcore.validate(sr)
