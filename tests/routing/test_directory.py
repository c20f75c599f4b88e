"""The service directory in schemas/directory: valid FHIR R4 that round-trips, typed look-ups, and
routing configuration that refuses to load when it names what the directory does not hold."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from gateway.errors import NotFound
from gateway.routing import load_directory, load_router
from tests.routing.referrals import referral

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
BUNDLE: dict[str, Any] = json.loads((SCHEMAS / "directory" / "directory.json").read_text())
DIRECTORY = load_directory(SCHEMAS)


def test_the_directory_is_a_fhir_r4_collection_bundle() -> None:
    bundle = Bundle.model_validate(BUNDLE)
    assert bundle.type == "collection"
    kinds = {e.resource.get_resource_type() for e in bundle.entry or [] if e.resource}
    assert kinds == {"Organization", "HealthcareService", "Location", "Endpoint"}


@pytest.mark.parametrize(
    "entry", BUNDLE["entry"], ids=[f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in BUNDLE["entry"]]
)
def test_every_directory_resource_round_trips(entry: dict[str, Any]) -> None:
    model = get_fhir_model_class(entry["resource"]["resourceType"])
    first = model.model_validate(entry["resource"])
    again = model.model_validate_json(first.model_dump_json())
    assert again.model_dump() == first.model_dump()
    assert again.model_dump(mode="json", exclude_none=True) == entry["resource"]


def test_a_service_is_found_by_id_and_by_ods_code() -> None:
    service = DIRECTORY.service("msk-pain-epidural")
    assert (service.ods, service.organisation, service.tier) == ("RX1PN", "Integrated MSK and Pain Service", "Tier III")
    assert "msk-pain-epidural" in [s.id for s in DIRECTORY.by_ods("RX1PN")]
    assert DIRECTORY.organisation_name("NQ1IA") == "NHS Talking Therapies (IAPT)"


def test_an_unknown_service_is_not_found() -> None:
    assert DIRECTORY.find("nope") is None and DIRECTORY.by_ods("X99999") == []
    with pytest.raises(NotFound):
        DIRECTORY.service("nope")


def test_the_msk_and_pain_service_offers_its_tiers() -> None:
    tiers: dict[str | None, set[str]] = {}
    for service in DIRECTORY.by_ods("RX1PN"):
        tiers.setdefault(service.tier, set()).add(service.name)
    assert tiers["Tier I"] == {"Advice to the GP", "Community exercise partners", "Psychological wellbeing service"}
    assert len(tiers["Tier II"]) == 7 and "MDT meeting" in tiers["Tier II"]
    assert tiers["Tier III"] == {"Psychological medicine", "Radiofrequency denervation", "Epidural injection"}


def test_the_pain_management_programme_runs_in_groups_at_three_locations() -> None:
    assert len(DIRECTORY.service("msk-pain-fpmp").locations) == 3
    fpmp = next(e["resource"] for e in BUNDLE["entry"] if e["resource"]["id"] == "msk-pain-fpmp")
    assert fpmp["characteristic"] == [{"text": "Group programme: groups of 8 to 10 people"}]


def test_iapt_offers_its_health_and_wellbeing_pathways() -> None:
    pathways = [s.id for s in DIRECTORY.by_ods("NQ1IA") if s.tier == "Health and Wellbeing pathway"]
    assert pathways == ["iapt-hwb-chronic-pain", "iapt-hwb-back-pain-course"]


@pytest.mark.parametrize(
    ("service", "fmt", "address"),
    [
        ("msk-pain-mdt", "fhir-rest", "http://127.0.0.1:8090/fhir"),
        ("iapt-core", "fhir-messaging", "http://127.0.0.1:8090/fhir"),
        ("physiotherapy-partner", "hl7v2-mllp", "127.0.0.1:2576"),
        ("physiotherapy-eastbury", "kafka", "referrals.physiotherapy"),
    ],
)
def test_each_receiver_has_an_endpoint_delivery_can_use(service: str, fmt: str, address: str) -> None:
    endpoint = DIRECTORY.endpoint(service)
    assert (endpoint.format, endpoint.address) == (fmt, address)


def test_a_service_lists_every_format_its_endpoints_accept() -> None:
    service = DIRECTORY.service("iapt-duty")  # no endpoint of its own: the organisation's
    assert service.formats == ("fhir-messaging", "kafka")
    assert service.endpoints[0].mime_types == ("application/fhir+json",)


def test_every_service_a_rule_or_criterion_names_can_be_delivered_to() -> None:
    router = load_router(SCHEMAS)
    named = {r.service for r in router.rules.rules} | {p.triage for p in router.criteria.publishers}
    assert all(DIRECTORY.endpoint(service).address for service in named)


# --- a deployment's data that does not fit together is refused at load ---------------------------


def edited(tmp_path: Path, name: str, change: Callable[[dict[str, Any]], None]) -> Path:
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, schemas, ignore=shutil.ignore_patterns("samples"))
    data = json.loads((schemas / name).read_text())
    change(data)
    (schemas / name).write_text(json.dumps(data))
    return schemas


def test_a_replaced_directory_and_rules_route_without_code_changes(tmp_path: Path) -> None:
    def rename(data: dict[str, Any]) -> None:
        rule = next(r for r in data["rules"] if r["id"] == "msk-pain-by-performer")
        rule["service"] = "msk-pain-medications"

    router = load_router(edited(tmp_path, "routing/rules.json", rename))
    assert router.route(referral()).service == "msk-pain-medications"


@pytest.mark.parametrize(
    ("name", "change", "complaint"),
    [
        ("routing/rules.json", lambda d: d["rules"][0].update(service="nowhere"), "service 'nowhere'"),
        ("routing/rules.json", lambda d: d["rules"][0].update(topic="referrals.nowhere"), "topic 'referrals.nowhere'"),
        ("routing/rules.json", lambda d: d["rules"][0]["when"].update(performer=["Z00000"]), "performers Z00000"),
        ("routing/rules.json", lambda d: d["rules"][1].update(id=d["rules"][0]["id"]), "used more than once"),
        ("routing/criteria.json", lambda d: d["publishers"][0].update(triage="nowhere"), "service 'nowhere'"),
        ("routing/criteria.json", lambda d: d.update(triage_topic="nowhere"), "triage topic 'nowhere'"),
    ],
)
def test_routing_configuration_that_does_not_fit_the_directory_is_refused(
    tmp_path: Path, name: str, change: Callable[[dict[str, Any]], None], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        load_router(edited(tmp_path, name, change))


def test_an_endpoint_delivery_cannot_use_is_refused(tmp_path: Path) -> None:
    def fax(data: dict[str, Any]) -> None:
        data["entry"][0]["resource"]["connectionType"]["code"] = "secure-email"

    with pytest.raises(ValueError, match="connectionType 'secure-email'"):
        load_directory(edited(tmp_path, "directory/directory.json", fax))


def test_a_criteria_test_with_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    def typo(data: dict[str, Any]) -> None:
        data["publishers"][0]["criteria"][0]["require"]["test"] = "has-al"

    with pytest.raises(ValueError, match="has-al"):
        load_router(edited(tmp_path, "routing/criteria.json", typo))
