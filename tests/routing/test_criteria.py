"""Acceptance criteria from schemas/routing/criteria.json: each one met, failed and returned to the
referrer with its reason, or failed (or not knowable from the referral) and sent to triage."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.errors import UnroutableReferral
from gateway.routing import RouteDecision, load_router
from gateway.routing.criteria import months_between
from tests.routing.referrals import (
    EPIDURAL,
    LOCAL,
    RF_DENERVATION,
    concept,
    concepts,
    contained,
    performer,
    referral,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
ROUTER = load_router(SCHEMAS)
COMPLEX = concepts("complex-case", system=f"{LOCAL}/referral-category")


def sciatica(**changes: Any) -> list[dict[str, Any]]:
    """The epidural sample's contained sciatica Condition with `changes` (None removes an element)."""
    condition = {**contained(EPIDURAL, "sciatica"), **changes}
    return [{k: v for k, v in condition.items() if v is not None}]


def medial_branch_block(**changes: Any) -> list[dict[str, Any]]:
    block = {**contained(RF_DENERVATION, "medial-branch-block"), **changes}
    return [{k: v for k, v in block.items() if v is not None}]


def returned(sr: ServiceRequest) -> dict[str, str]:
    """Criterion id → diagnostics, for a referral the criteria return to its referrer."""
    with pytest.raises(UnroutableReferral) as caught:
        ROUTER.route(sr)
    found = {}
    for issue in caught.value.issues:
        assert issue.code == "business-rule" and issue.expression
        found[issue.diagnostics.split("(acceptance criterion ")[1].split(" ")[0]] = issue.diagnostics
    return found


def triaged(sr: ServiceRequest) -> RouteDecision:
    decision = ROUTER.route(sr)
    assert decision.triage and decision.topic == "referrals.triage"
    return decision


def test_every_criterion_in_the_file_is_tested_here() -> None:
    book = json.loads((SCHEMAS / "routing" / "criteria.json").read_text())
    ids = {c["id"] for p in book["publishers"] for c in p["criteria"]}
    source = Path(__file__).read_text()
    assert [i for i in sorted(ids) if i not in source] == []


# --- epidural injection --------------------------------------------------------------------------


def test_epidural_for_acute_severe_sciatica_is_accepted_and_says_which_criteria_it_met() -> None:
    decision = ROUTER.route(referral(EPIDURAL))
    assert (decision.service, decision.topic, decision.triage) == ("msk-pain-epidural", "referrals.msk-pain", False)
    assert "epidural-acute-sciatica" in decision.reason and "epidural-not-repeated" in decision.reason


def test_epidural_without_sciatica_is_returned() -> None:
    found = returned(referral(EPIDURAL, contained=None, reasonReference=None, reasonCode=concepts("279039007")))
    assert list(found) == ["epidural-for-sciatica"]
    assert "offered for sciatica only" in found["epidural-for-sciatica"]
    assert "of Integrated MSK and Pain Service" in found["epidural-for-sciatica"]


@pytest.mark.parametrize(
    "code", ["76107001", "18347007", "89369001"], ids=["stenosis", "lumbar-stenosis", "claudication"]
)
def test_epidural_is_not_offered_for_spinal_stenosis_or_neurogenic_claudication(code: str) -> None:
    found = returned(referral(EPIDURAL, reasonCode=concepts(code)))
    assert list(found) == ["epidural-not-for-stenosis"]
    assert "not offered for spinal stenosis or neurogenic claudication" in found["epidural-not-for-stenosis"]


@pytest.mark.parametrize(("onset", "acute"), [("2026-05-21", True), ("2026-05-20", False), ("2025-01-01", False)])
def test_epidural_is_for_sciatica_under_six_months_old(onset: str, acute: bool) -> None:
    sr = referral(EPIDURAL, contained=sciatica(onsetDateTime=onset))
    if acute:
        assert ROUTER.route(sr).service == "msk-pain-epidural"
    else:
        assert "began six months or more before the referral" in returned(sr)["epidural-acute-sciatica"]


def test_epidural_without_an_onset_date_goes_to_the_mdt() -> None:
    decision = triaged(referral(EPIDURAL, contained=sciatica(onsetDateTime=None)))
    assert (decision.service, decision.rule) == ("msk-pain-mdt", "msk-pain-epidural")
    assert "[epidural-acute-sciatica]" in decision.reason and "does not say when the sciatica began" in decision.reason


def test_epidural_for_sciatica_not_recorded_as_severe_is_returned() -> None:
    moderate = {"coding": [{"system": "http://snomed.info/sct", "code": "6736007"}]}
    found = returned(referral(EPIDURAL, contained=sciatica(severity=moderate)))
    assert list(found) == ["epidural-severe-sciatica"]


def test_epidural_without_a_severity_goes_to_the_mdt() -> None:
    decision = triaged(referral(EPIDURAL, contained=sciatica(severity=None)))
    assert "[epidural-severe-sciatica]" in decision.reason


def test_epidural_is_not_repeated() -> None:
    previous = {
        "resourceType": "Procedure",
        "id": "previous-epidural",
        "status": "completed",
        "code": concept("231255002"),
        "subject": sciatica()[0]["subject"],
        "performedDateTime": "2026-09-01",
    }
    sr = referral(EPIDURAL, contained=[*sciatica(), previous], supportingInfo=[{"reference": "#previous-epidural"}])
    found = returned(sr)
    assert list(found) == ["epidural-not-repeated"]
    assert "is not repeated" in found["epidural-not-repeated"]


def test_an_epidural_that_was_not_done_is_no_previous_epidural() -> None:
    planned = {
        "resourceType": "Procedure",
        "id": "planned",
        "status": "not-done",
        "code": concept("231255002"),
        "subject": sciatica()[0]["subject"],
    }
    sr = referral(EPIDURAL, contained=[*sciatica(), planned], supportingInfo=[{"reference": "#planned"}])
    assert ROUTER.route(sr).service == "msk-pain-epidural"


def test_a_returned_referral_lists_every_criterion_it_failed() -> None:
    sr = referral(EPIDURAL, contained=sciatica(onsetDateTime="2024-01-01"), reasonCode=concepts("76107001"))
    assert sorted(returned(sr)) == ["epidural-acute-sciatica", "epidural-not-for-stenosis"]


# --- complex cases -------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", ["servicerequest-msk-pain.json", EPIDURAL, RF_DENERVATION])
def test_complex_cases_go_to_the_mdt_from_any_msk_pain_service(sample: str) -> None:
    sr = referral(sample)
    decision = triaged(referral(sample, category=[*(sr.model_dump()["category"]), *COMPLEX]))
    assert decision.service == "msk-pain-mdt"
    assert "[msk-complex-case-to-mdt]" in decision.reason


def test_a_criterion_that_returns_outweighs_one_that_triages() -> None:
    sr = referral(EPIDURAL, category=COMPLEX, reasonCode=concepts("76107001"))
    assert list(returned(sr)) == ["epidural-not-for-stenosis"]


def test_complex_cases_addressed_to_another_service_are_not_held_to_msk_criteria() -> None:
    decision = ROUTER.route(referral(performer=performer("NPH01"), category=COMPLEX))
    assert (decision.service, decision.triage) == ("physiotherapy-partner", False)


# --- radiofrequency denervation ------------------------------------------------------------------


def test_rf_denervation_after_a_successful_medial_branch_block_is_accepted() -> None:
    decision = ROUTER.route(referral(RF_DENERVATION))
    assert (decision.service, decision.triage) == ("msk-pain-rf-denervation", False)
    assert "rf-after-successful-medial-branch-block" in decision.reason


def test_rf_denervation_is_for_low_back_pain() -> None:
    found = returned(referral(RF_DENERVATION, reasonCode=concepts("81680005")))
    assert list(found) == ["rf-for-low-back-pain"]


@pytest.mark.parametrize("radicular", ["23056005", "72274001"], ids=["sciatica", "radiculopathy"])
def test_rf_denervation_is_for_non_radicular_pain(radicular: str) -> None:
    found = returned(referral(RF_DENERVATION, reasonCode=concepts("278860009", radicular)))
    assert list(found) == ["rf-non-radicular"]


def test_rf_denervation_without_a_medial_branch_block_is_returned() -> None:
    found = returned(referral(RF_DENERVATION, contained=None, supportingInfo=None))
    assert list(found) == ["rf-after-successful-medial-branch-block"]


def test_rf_denervation_after_an_unsuccessful_block_is_returned() -> None:
    unsuccessful = {"coding": [{"system": "http://snomed.info/sct", "code": "385671000"}]}
    found = returned(referral(RF_DENERVATION, contained=medial_branch_block(outcome=unsuccessful)))
    assert list(found) == ["rf-after-successful-medial-branch-block"]


def test_rf_denervation_when_the_block_outcome_is_not_given_goes_to_the_mdt() -> None:
    decision = triaged(referral(RF_DENERVATION, contained=medial_branch_block(outcome=None)))
    assert decision.service == "msk-pain-mdt" and "not its outcome" in decision.reason
    assert "[rf-after-successful-medial-branch-block]" in decision.reason


# --- IAPT Health and Wellbeing course ------------------------------------------------------------

COURSE = concept("living-well-back-pain-sciatica", f"{LOCAL}/service-type")


def test_the_back_pain_course_takes_people_with_back_pain() -> None:
    decision = ROUTER.route(referral(performer=performer("NQ1IA"), code=COURSE))
    assert (decision.service, decision.triage) == ("iapt-hwb-back-pain-course", False)
    assert "back-pain-course-for-back-pain" in decision.reason


def test_the_back_pain_course_sends_other_referrals_to_an_iapt_assessment() -> None:
    decision = triaged(referral(performer=performer("NQ1IA"), code=COURSE, reasonCode=concepts("35489007")))
    assert (decision.service, decision.rule) == ("iapt-core", "iapt-back-pain-course")
    assert "[back-pain-course-for-back-pain]" in decision.reason


# --- dates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "months"),
    [
        (date(2026, 5, 21), date(2026, 11, 20), 5),
        (date(2026, 5, 20), date(2026, 11, 20), 6),
        (date(2025, 12, 31), date(2026, 2, 28), 1),
        (date(2026, 1, 31), date(2026, 1, 31), 0),
    ],
)
def test_months_between_counts_whole_calendar_months(start: date, end: date, months: int) -> None:
    assert months_between(start, end) == months
