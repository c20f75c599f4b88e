"""The pad's Questionnaire and code tables: stable linkIds, every answer has a meaning, the sources
of referral are the codes IAPT services report on."""

from __future__ import annotations

import json

from fhir.resources.R4B.questionnaire import Questionnaire

from adapters.inbound.pad import codes, questionnaire
from gateway.canonical import systems
from gateway.settings import SCHEMAS_DIR
from tests.pad.pads import CANONICAL, pad

#: The published linkIds. Changing one breaks every sender: a new meaning takes a new linkId.
LINK_IDS = [
    "patient",
    "patient.nhs-number",
    "patient.nhs-number-unknown",
    "patient.given-name",
    "patient.family-name",
    "patient.birth-date",
    "patient.address",
    "patient.postcode",
    "patient.phone",
    "patient.safe-to-leave-message",
    "patient.contact-times",
    "patient.interpreter-needed",
    "patient.interpreter-language",
    "patient.access-needs",
    "referrer",
    "referrer.name",
    "referrer.hcpc",
    "referrer.organisation-ods",
    "referrer.setting",
    "referrer.phone",
    "referrer.email",
    "difficulties",
    "difficulties.presenting",
    "difficulties.other-detail",
    "conditions",
    "conditions.long-term",
    "conditions.other-detail",
    "pathway",
    "pathway.recommended",
    "risk",
    "risk.self-harm-thoughts",
    "consent",
    "consent.referral",
    "consent.sharing",
    "notes",
]


def test_questionnaire_is_the_canonical_version_1_1_0_with_stable_link_ids() -> None:
    loaded = pad()
    assert loaded.questionnaire.url == CANONICAL == questionnaire.CANONICAL_URL
    assert loaded.version == "1.1.0"
    assert loaded.questionnaire.status == "active"
    assert list(loaded.items) == LINK_IDS


def test_questionnaire_round_trips_through_fhir_resources_r4b() -> None:
    data = json.loads((SCHEMAS_DIR / questionnaire.RELATIVE_PATH).read_text())
    first = Questionnaire.model_validate(data)
    assert Questionnaire.model_validate_json(first.model_dump_json()).model_dump() == first.model_dump()


def test_the_questions_the_pad_must_ask_are_required() -> None:
    items = pad().items
    for link_id in [
        "patient.birth-date",
        "patient.phone",
        "patient.safe-to-leave-message",
        "referrer.hcpc",
        "referrer.organisation-ods",
        "difficulties.presenting",
        "pathway.recommended",
        "risk.self-harm-thoughts",
        "consent.referral",
        "consent.sharing",
    ]:
        assert items[link_id].required, link_id
    assert not items["referrer"].required  # a self-referral has no referrer section


def test_every_difficulty_and_condition_option_has_a_meaning_in_the_code_table() -> None:
    table = codes.answer_codes(SCHEMAS_DIR)
    for link_id in ("difficulties.presenting", "conditions.long-term"):
        for code in pad().option_codes(link_id):
            assert code in table.reasons, f"{link_id} option {code} has no entry in answer-codes.json"
    options = pad().items["difficulties.presenting"].answerOption or []
    assert all(o.valueCoding and o.valueCoding.system == table.answer_system for o in options)


def test_presenting_difficulties_map_to_snomed_findings() -> None:
    reasons = codes.answer_codes(SCHEMAS_DIR).reasons
    assert [c.code for c in reasons["low-mood"]] == ["366979004"]
    assert [c.code for c in reasons["anxiety"]] == ["48694002"]
    assert [c.code for c in reasons["back-pain-sciatica"]] == ["161891005", "23056005"]
    assert reasons["other"] == []  # carried as text


def test_sources_of_referral_pair_snomed_with_the_iapt_data_set_code() -> None:
    table = codes.sources_of_referral(SCHEMAS_DIR)
    pairs = {s.id: (s.snomed.code, s.iapt.code) for s in table.sources}
    assert pairs["physiotherapist-community"] == (systems.SOURCE_PHYSIOTHERAPIST[0], "A3")
    assert pairs["physiotherapist-hospital"] == (systems.SOURCE_PHYSIOTHERAPIST[0], "H2")
    assert pairs["self"] == (systems.SOURCE_SELF_IAPT[0], "B1")
    assert pairs["gp"] == (systems.SOURCE_GP[0], "A1")


def test_c1_is_documented_as_not_a_physiotherapist_source() -> None:
    data = json.loads((SCHEMAS_DIR / "pad" / "source-of-referral.json").read_text())
    unused = {entry["code"]: entry["display"] for entry in data["not_used"]}
    assert "Social Services" in unused["C1"]
    assert all(s["iapt"]["code"] != "C1" for s in data["sources"])
