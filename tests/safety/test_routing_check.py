"""Configuration changes are safe: `referral-gateway routing check NEW_DIR` replays the referrals a
running gateway accepted through a candidate ruleset, prints every one whose destination would change
and sends nothing; a candidate that does not fit together is refused. Loading a configuration records
its versions and who loaded it in the audit trail.

Real HTTP and store (SQLite on disk, the gateway's own file); the command runs in this process
(`gateway.cli.main`) with the gateway's settings in its environment.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.audit.events import INTERACTIONS
from gateway.canonical import systems
from gateway.cli import main
from gateway.settings import SCHEMAS_DIR, DeliverySettings, Settings, StoreSettings
from gateway.store.audit import AuditQuery
from gateway.store.tables import history, outbox
from tests.conftest import RunningGateway
from tests.delivery.receivers import eventually
from tests.samples import service_request

FHIR_JSON = {"content-type": "application/fhir+json"}


@pytest.fixture
def store_settings() -> StoreSettings:
    return StoreSettings()


@pytest.fixture
def gateway_settings(gateway_settings: Settings) -> Settings:
    """No delivery: the referrals stay as accepted, so the store changes only when something writes."""
    return gateway_settings.model_copy(update={"delivery": DeliverySettings(enabled=False)})


def to(ods: str) -> dict[str, Any]:
    return service_request(performer=[{"identifier": {"system": systems.ODS_CODE, "value": ods}}])


def candidate(tmp_path: Path, services: dict[str, str]) -> Path:
    """A NEW_DIR holding only routing/rules.json: the rules in force with `services` (rule id → service)."""
    rules = json.loads((SCHEMAS_DIR / "routing" / "rules.json").read_text())
    rules["version"] = "2026.12.candidate"
    for rule in rules["rules"]:
        rule["service"] = services.get(rule["id"], rule["service"])
    new_dir = tmp_path / "candidate"
    (new_dir / "routing").mkdir(parents=True)
    (new_dir / "routing" / "rules.json").write_text(json.dumps(rules))
    return new_dir


async def run(monkeypatch: pytest.MonkeyPatch, gateway: RunningGateway, *argv: str) -> tuple[int, str, str]:
    """The command as a user runs it, on a thread of its own (it runs its own event loop)."""
    monkeypatch.setenv("DATA_DIR", str(gateway.settings.data_dir))
    return await asyncio.to_thread(_run, *argv)


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), pytest.raises(SystemExit) as exited:
        main(list(argv))
    code = exited.value.code
    return (code if isinstance(code, int) else 1), out.getvalue(), err.getvalue()


async def _published(gateway: RunningGateway) -> bool:
    return await gateway.runtime.store.outbox_backlog() == 0


async def sent_and_traced(gateway: RunningGateway) -> tuple[int, int]:
    async with gateway.runtime.store.door.read() as conn:
        events = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
        steps = (await conn.execute(select(func.count()).select_from(history))).scalar_one()
    return int(events), int(steps)


async def test_the_dry_run_prints_each_referral_whose_destination_would_change_and_sends_nothing(
    running_gateway: RunningGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    accepted = {}
    async with running_gateway.client() as client:
        for ods in ("RX1PN", "NPH01", "NQ1IA"):
            response = await client.post("/fhir/ServiceRequest", content=json.dumps(to(ods)), headers=FHIR_JSON)
            assert response.status_code == 201, response.text
            accepted[ods] = response.json()["id"]
    await eventually(lambda: _published(running_gateway), what="every event published")
    before = await sent_and_traced(running_gateway)
    new_dir = candidate(
        tmp_path, {"msk-pain-by-performer": "msk-pain-mdt", "physiotherapy-by-performer": "physiotherapy-eastbury"}
    )

    code, out, _ = await run(monkeypatch, running_gateway, "routing", "check", str(new_dir), "--days", "1", "--json")

    assert code == 1  # some destinations would change
    result = json.loads(out)
    assert result["replayed"] >= 3 and "rules 2026.12.candidate" in result["candidate"]
    moved = {c["referral_id"]: (c["before"], c["after"]) for c in result["changed"]}
    assert moved[accepted["RX1PN"]] == (
        "msk-pain (referrals.msk-pain, rule msk-pain-by-performer)",
        "msk-pain-mdt (referrals.msk-pain, rule msk-pain-by-performer)",
    )
    assert moved[accepted["NPH01"]] == (
        "physiotherapy-partner (referrals.physiotherapy, rule physiotherapy-by-performer)",
        "physiotherapy-eastbury (referrals.physiotherapy, rule physiotherapy-by-performer)",
    )
    assert accepted["NQ1IA"] not in moved  # its rule did not change
    assert await sent_and_traced(running_gateway) == before  # nothing published, nothing written

    code, out, _ = await run(monkeypatch, running_gateway, "routing", "check", str(candidate(tmp_path / "same", {})))
    assert code == 0 and "0 would go elsewhere" in out


async def test_a_referral_the_candidate_cannot_route_is_reported_as_unroutable_with_why(
    running_gateway: RunningGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_gateway.client() as client:
        response = await client.post("/fhir/ServiceRequest", content=json.dumps(to("NPH02")), headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    rules = json.loads((SCHEMAS_DIR / "routing" / "rules.json").read_text())
    dropped = {"physiotherapy-eastbury-by-performer", "msk-pain-by-code"}  # nothing else takes it then
    rules["rules"] = [r for r in rules["rules"] if r["id"] not in dropped]
    new_dir = tmp_path / "candidate"
    (new_dir / "routing").mkdir(parents=True)
    (new_dir / "routing" / "rules.json").write_text(json.dumps(rules))

    code, out, _ = await run(monkeypatch, running_gateway, "routing", "check", str(new_dir), "--days", "1")

    assert code == 1
    line = out[out.index(response.json()["id"]) :]
    assert "would go to: unroutable: Eastbury Physio Ltd (NPH02) takes no referral like this one" in line


async def test_a_candidate_directory_that_breaks_a_rule_is_refused_before_anything_is_replayed(
    running_gateway: RunningGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_dir = tmp_path / "candidate"
    shutil.copytree(SCHEMAS_DIR / "directory", new_dir / "directory")
    path = new_dir / "directory" / "directory.json"
    directory = json.loads(path.read_text())
    directory["entry"] = [e for e in directory["entry"] if e["resource"]["id"] != "msk-pain-epidural"]
    path.write_text(json.dumps(directory))

    code, _, err = await run(monkeypatch, running_gateway, "routing", "check", str(new_dir))

    assert code == 2
    assert "msk-pain-epidural" in err and "does not load" in err


async def test_loading_the_configuration_records_its_versions_and_who_loaded_it(
    running_gateway: RunningGateway,
) -> None:
    assert "configuration-load" in INTERACTIONS
    loaded = running_gateway.runtime.configuration.loaded
    found = await running_gateway.runtime.audit.log.search(AuditQuery(entity="Bundle/service-directory"))
    events = [json.loads(e) for e in found if "configuration-load" in e]
    assert len(events) == 1
    (event,) = events
    assert event["subtype"][0]["code"] == "configuration-load"
    router = running_gateway.runtime.router
    assert f"rules {router.rules.version}" in event["outcomeDesc"]
    assert f"directory {router.directory.version}" in event["outcomeDesc"] and "wait limits" in event["outcomeDesc"]
    assert "routing/rules.json: " in event["outcomeDesc"]
    assert event["agent"][0]["who"]["identifier"]["value"] == loaded.by and "@" in loaded.by
