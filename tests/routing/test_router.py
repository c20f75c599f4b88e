"""Routing rules from schemas/routing: first match wins, every decision says which rule and why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.canonical import systems
from gateway.errors import UnroutableReferral
from gateway.routing import RouteDecision, load_router
from tests.routing.referrals import (
    EPIDURAL,
    LOCAL,
    RF_DENERVATION,
    concept,
    concepts,
    performer,
    referral,
    service_performer,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
ROUTER = load_router(SCHEMAS)
URGENT = {"priority": "urgent"}
SELF_REFERRAL = [
    {"url": systems.EXT_SOURCE_OF_SERVICE_REQUEST, "valueCodeableConcept": concept(systems.SOURCE_SELF_IAPT[0])}
]

#: One referral per rule in rules.json: (rule id, changes to a sample, expected service, topic).
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("iapt-urgent-risk", {"performer": performer("NQ1IA"), **URGENT}, "iapt-duty", "referrals.iapt"),
    (
        "iapt-chronic-pain-by-dos",
        {"performer": service_performer("NQ1IA", systems.DOS_SERVICE_ID, "2000070002")},
        "iapt-hwb-chronic-pain",
        "referrals.iapt",
    ),
    (
        "iapt-core-by-service",
        {"performer": service_performer("NQ1IA", systems.SERVICE_ID, "iapt-core"), "code": None},
        "iapt-core",
        "referrals.iapt",
    ),
    (
        "msk-pain-by-dos",
        {"performer": service_performer("RX1PN", systems.DOS_SERVICE_ID, "2000070010")},
        "msk-pain",
        "referrals.msk-pain",
    ),
    (
        "iapt-back-pain-course",
        {"performer": performer("NQ1IA"), "code": concept("living-well-back-pain-sciatica", f"{LOCAL}/service-type")},
        "iapt-hwb-back-pain-course",
        "referrals.iapt",
    ),
    (
        "iapt-chronic-pain-pathway",
        {"performer": performer("NQ1IA"), "code": concept("hwb-chronic-pain", f"{LOCAL}/service-type")},
        "iapt-hwb-chronic-pain",
        "referrals.iapt",
    ),
    (
        "iapt-chronic-pain-by-reason",
        {"performer": performer("NQ1IA"), "code": None, "reasonCode": concepts("82423001")},
        "iapt-hwb-chronic-pain",
        "referrals.iapt",
    ),
    (
        "iapt-by-performer",
        {"performer": performer("NQ1IA"), "code": None, "reasonCode": concepts("35489007")},
        "iapt-core",
        "referrals.iapt",
    ),
    (
        "msk-pain-advice-to-gp",
        {"category": concepts("advice-and-guidance", system=f"{LOCAL}/referral-category")},
        "msk-pain-gp-advice",
        "referrals.msk-pain",
    ),
    ("msk-pain-epidural", {"sample": EPIDURAL}, "msk-pain-epidural", "referrals.msk-pain"),
    ("msk-pain-rf-denervation", {"sample": RF_DENERVATION}, "msk-pain-rf-denervation", "referrals.msk-pain"),
    (
        "msk-pain-fpmp",
        {"code": concept("foundation-pain-management-programme", f"{LOCAL}/service-type")},
        "msk-pain-fpmp",
        "referrals.msk-pain",
    ),
    ("msk-pain-by-performer", {}, "msk-pain", "referrals.msk-pain"),
    (
        "physiotherapy-by-performer",
        {"performer": performer("NPH01")},
        "physiotherapy-partner",
        "referrals.physiotherapy",
    ),
    (
        "physiotherapy-eastbury-by-performer",
        {"performer": performer("NPH02")},
        "physiotherapy-eastbury",
        "referrals.physiotherapy",
    ),
    (
        "iapt-self-referral",
        {"performer": performer("X99999"), "code": None, "extension": SELF_REFERRAL},
        "iapt-core",
        "referrals.iapt",
    ),
    (
        "iapt-urgent-by-code",
        {"performer": performer("X99999"), "code": concept("1085781000000107"), **URGENT},
        "iapt-duty",
        "referrals.iapt",
    ),
    (
        "iapt-by-code",
        {"performer": performer("X99999"), "code": concept("1085781000000107")},
        "iapt-core",
        "referrals.iapt",
    ),
    ("msk-pain-by-code", {"performer": performer("X99999")}, "msk-pain", "referrals.msk-pain"),
]


def test_every_rule_in_the_rules_file_has_a_case() -> None:
    rules = [r["id"] for r in json.loads((SCHEMAS / "routing" / "rules.json").read_text())["rules"]]
    assert sorted(rules) == sorted(case[0] for case in CASES)


@pytest.mark.parametrize(("rule", "changes", "service", "topic"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_routes_its_referral(rule: str, changes: dict[str, Any], service: str, topic: str) -> None:
    decision = ROUTER.route(referral(**changes))
    assert (decision.rule, decision.service, decision.topic, decision.triage) == (rule, service, topic, False)


def test_the_reason_names_the_values_that_matched() -> None:
    decision = ROUTER.route(referral(performer=performer("NQ1IA")))
    assert decision.reason.startswith("Addressed to the NHS Talking Therapies (IAPT) service")
    assert "performer NQ1IA" in decision.reason


def test_decisions_carry_the_rules_and_criteria_versions() -> None:
    rules = json.loads((SCHEMAS / "routing" / "rules.json").read_text())["version"]
    criteria = json.loads((SCHEMAS / "routing" / "criteria.json").read_text())["version"]
    assert ROUTER.route(referral()).ruleset_version == f"rules {rules}, criteria {criteria}"


@pytest.mark.parametrize("priority", ["urgent", "asap", "stat"])
def test_risk_flagged_iapt_referral_reaches_iapt_as_urgent_whatever_it_asks_for(priority: str) -> None:
    course = concept("living-well-back-pain-sciatica", f"{LOCAL}/service-type")
    sr = referral(performer=performer("NQ1IA"), code=course, reasonCode=concepts("35489007"), priority=priority)
    decision: RouteDecision = ROUTER.route(sr)
    assert (decision.rule, decision.service, decision.topic, decision.triage) == (
        "iapt-urgent-risk",
        "iapt-duty",
        "referrals.iapt",
        False,
    )
    assert sr.priority == priority  # routing never rewrites the referral


def test_first_match_wins_the_performer_before_the_code() -> None:
    iapt_coded = referral(performer=performer("RX1PN"), code=concept("1085781000000107"))
    assert ROUTER.route(iapt_coded).rule == "msk-pain-by-performer"


def test_unknown_performer_is_unroutable_and_says_which() -> None:
    with pytest.raises(UnroutableReferral) as caught:
        ROUTER.route(referral(performer=performer("X99999"), code=None, reasonCode=None))
    issue = caught.value.issues[0]
    assert "no service takes performer X99999" in issue.diagnostics
    assert issue.expression == "ServiceRequest.performer.identifier.value"


def test_a_known_organisation_that_takes_no_referrals_is_named() -> None:
    with pytest.raises(UnroutableReferral) as caught:
        ROUTER.route(referral(performer=performer("A81002"), code=None))
    assert "Second Street Surgery (A81002) takes no referral like this one" in caught.value.issues[0].diagnostics


def test_a_dos_id_route_says_the_dos_id_matched() -> None:
    decision = ROUTER.route(referral(performer=service_performer("NQ1IA", systems.DOS_SERVICE_ID, "2000070002")))
    assert decision.rule == "iapt-chronic-pain-by-dos"
    assert "dos 2000070002" in decision.reason


def test_a_service_named_by_its_dos_id_is_matched_by_a_service_rule_too() -> None:
    decision = ROUTER.route(
        referral(performer=service_performer("NQ1IA", systems.DOS_SERVICE_ID, "2000070001"), code=None)
    )
    assert (decision.rule, decision.service) == ("iapt-core-by-service", "iapt-core")
    assert "service iapt-core" in decision.reason


def test_an_unknown_target_service_is_refused_not_guessed() -> None:
    with pytest.raises(UnroutableReferral) as caught:
        ROUTER.route(referral(performer=service_performer("NQ1IA", systems.DOS_SERVICE_ID, "999999")))
    (issue,) = caught.value.issues
    assert "does not list" in issue.diagnostics and "999999" in issue.diagnostics
    assert issue.expression == "ServiceRequest.performer"


def test_a_service_of_another_organisation_is_refused() -> None:
    with pytest.raises(UnroutableReferral, match="not known here") as caught:
        ROUTER.route(referral(performer=service_performer("RX1PN", systems.DOS_SERVICE_ID, "2000070002")))
    assert "provided by NQ1IA" in caught.value.issues[0].diagnostics
