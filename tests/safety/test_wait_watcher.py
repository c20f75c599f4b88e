"""The wait watcher through a running gateway: an urgent pad referral (a positive risk screen) goes to
NHS Talking Therapies' duty team, whose receiver (a demo receiver that never moves Tasks) takes it and
says nothing more. When its 2 working hours at `requested` have passed (the watcher's clock is moved
on, not slept through) the breach is raised: stored, on the dashboard, as metrics, on referrals.status
and in the trace; a copy marked as an escalation goes to the crisis duty line (a second demo
receiver), once, and the duty team is not sent the referral again. When the Task moves, it clears.

Real HTTP, broker and store (SQLite, and PostgreSQL where a server answers); the receivers are real servers on loopback.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from gateway.demo_receiver import DemoReceiver
from gateway.safety import watcher as watcher_module
from gateway.safety.notices import ESCALATION_EXTENSION
from gateway.settings import DeliverySettings, Settings, WatcherSettings
from tests.conftest import RunningGateway
from tests.delivery.receivers import eventually, schemas_for_receiver
from tests.kafka_reader import read_events
from tests.pad.pads import physio_fields

PATCH = {"content-type": "application/json-patch+json"}
LABELS = {"service": "iapt-duty", "priority": "urgent", "status": "requested"}


@pytest.fixture
async def duty_team() -> AsyncIterator[DemoReceiver]:
    demo = DemoReceiver()  # no mover: takes referrals, never moves their Tasks
    await demo.start()
    yield demo
    await demo.stop()


@pytest.fixture
async def crisis_line() -> AsyncIterator[DemoReceiver]:
    demo = DemoReceiver()
    await demo.start()
    yield demo
    await demo.stop()


@pytest.fixture
def gateway_settings(
    gateway_settings: Settings, duty_team: DemoReceiver, crisis_line: DemoReceiver, tmp_path: Path
) -> Settings:
    """Every receiver is the duty team's demo receiver, except the crisis duty line, which has its own."""
    schemas = schemas_for_receiver(tmp_path / "schemas", duty_team.http_port, duty_team.mllp_port)
    path = schemas / "directory" / "directory.json"
    directory = json.loads(path.read_text())
    for entry in directory["entry"]:
        if entry["resource"]["id"] == "RXT-fhir":
            entry["resource"]["address"] = crisis_line.fhir_base_url
    path.write_text(json.dumps(directory))
    delivery = DeliverySettings(new_group_start="latest", backoff_base_s=0.2, backoff_max_s=1.0, max_attempts=3)
    watcher = WatcherSettings(interval_s=0.2)
    return gateway_settings.model_copy(update={"schemas_dir": schemas, "delivery": delivery, "watcher": watcher})


@pytest.fixture
async def gateway(running_gateway: RunningGateway) -> RunningGateway:
    await running_gateway.runtime.delivery.joined()
    return running_gateway


def received(receiver: DemoReceiver, reference: str) -> list[Any]:
    return [r for identity, r in receiver.ledger.referrals.items() if reference in identity]


def hits(receiver: DemoReceiver, reference: str) -> list[Any]:
    return [h for h in receiver.ledger.hits if reference in h.identity]


def open_gauge() -> float | None:
    return REGISTRY.get_sample_value("gateway_wait_breaches_open", LABELS)


async def steps(gateway: RunningGateway, referral_id: str) -> list[str]:
    return [h.step for h in await gateway.runtime.store.history(referral_id)]


async def test_an_urgent_pad_referral_nobody_picks_up_breaches_escalates_once_and_clears_when_the_task_moves(
    gateway: RunningGateway, duty_team: DemoReceiver, crisis_line: DemoReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watcher_module, "_PAGE", 1)  # a pass walks the Tasks a page at a time: here one each
    runtime = gateway.runtime
    async with gateway.client() as client:
        posted = await client.post("/pad", json=physio_fields({"risk.self-harm-thoughts": True}))
    assert posted.status_code == 201, posted.text
    body = posted.json()
    referral_id, reference = body["referralId"], body["reference"]
    assert (body["priority"], body["rule"]) == ("urgent", "iapt-urgent-risk")
    await eventually(lambda: received(duty_team, reference), what="the referral at the duty team")
    total_before = REGISTRY.get_sample_value("gateway_wait_breaches_total", LABELS) or 0.0

    await asyncio.sleep(0.6)  # several passes within the limit: nothing is raised
    assert [b for b in await runtime.watcher.breaches.open() if b.referral_id == referral_id] == []

    later = datetime.now(UTC) + timedelta(days=7)  # far past 2 working hours, whatever the day
    runtime.watcher.clock = lambda: later

    async def breach() -> Any:
        return next((b for b in await runtime.watcher.breaches.open() if b.referral_id == referral_id), None)

    await eventually(breach, what="the wait breach raised")
    raised = await breach()
    assert (raised.service, raised.priority, raised.status) == ("iapt-duty", "urgent", "requested")
    assert (raised.wait_limit, raised.escalated_to) == ("2 working hours", "crisis-duty-line")

    # the escalation: a copy at the crisis line, marked, exactly once; the duty team is not sent it again
    await eventually(lambda: received(crisis_line, reference), what="the escalated copy at the crisis line")
    await asyncio.sleep(1.0)  # five more passes
    (copy,) = received(crisis_line, reference)
    sr = json.loads(copy.body)
    (marker,) = [e for e in sr["extension"] if e["url"] == ESCALATION_EXTENSION]
    parts = {e["url"]: e for e in marker["extension"]}
    assert (parts["originalService"]["valueString"], parts["waitedAtStatus"]["valueCode"]) == ("iapt-duty", "requested")
    assert datetime.fromisoformat(parts["breachedAt"]["valueDateTime"]) == later
    assert "not picked up by iapt-duty within 2 working hours" in parts["reason"]["valueString"]
    assert sr["priority"] == "urgent" and "Escalated" in sr["note"][-1]["text"]
    assert [h.outcome for h in hits(crisis_line, reference)] == ["created"]
    assert [h.outcome for h in hits(duty_team, reference)] == ["created"]
    deliveries = await runtime.delivery.ledger.for_referral(referral_id)
    assert sorted((d.receiver, d.status) for d in deliveries) == [
        ("crisis-duty-line", "delivered"),
        ("iapt-duty", "delivered"),
    ]

    # everywhere a person or a system looks: dashboard, metrics, status topic, trace
    async with gateway.client() as client:
        overview = (await client.get("/monitor/api/overview")).json()
    shown = [b for b in overview["breaches"] if b["referral_id"] == referral_id]
    assert [(b["service"], b["status"], b["escalated_to"]) for b in shown] == [
        ("iapt-duty", "requested", "crisis-duty-line")
    ]
    async with gateway.client() as client:
        page = await client.get("/monitor")
    assert page.status_code == 200, page.text
    row = page.text[page.text.index('id="wait-breaches"') :].split("</table>")[0]
    assert referral_id in row and "crisis-duty-line" in row and "2 working hours" in row
    assert open_gauge() == 1.0
    assert REGISTRY.get_sample_value("gateway_wait_breaches_total", LABELS) == total_before + 1
    (event,) = await asyncio.to_thread(
        read_events,
        gateway.settings.kafka.servers,
        "referrals.status",
        1,
        match=lambda e: e.headers.get("breach_id") == raised.id and e.headers["ce_type"].endswith("wait-breached"),
    )
    assert (event.headers["breach_service"], event.headers["escalated_to"]) == ("iapt-duty", "crisis-duty-line")
    assert event.value["resourceType"] == "Task" and event.value["status"] == "requested"
    assert [s for s in await steps(gateway, referral_id) if s in ("wait-breached", "escalated")] == [
        "wait-breached",
        "escalated",
    ]

    # the duty team picks it up: the breach clears, and nothing is raised for the new status yet
    runtime.watcher.clock = lambda: datetime.now(UTC)
    task_id = raised.task_id
    async with gateway.client() as client:
        ops = [{"op": "replace", "path": "/status", "value": "received"}]
        moved = await client.patch(f"/fhir/Task/{task_id}", content=json.dumps(ops), headers=PATCH)
    assert moved.status_code == 200, moved.text

    async def cleared() -> bool:
        return "wait-breach-cleared" in await steps(gateway, referral_id)

    await eventually(cleared, what="the breach cleared")
    assert [b for b in await runtime.watcher.breaches.open() if b.referral_id == referral_id] == []
    assert open_gauge() == 0.0
    (event,) = await asyncio.to_thread(
        read_events,
        gateway.settings.kafka.servers,
        "referrals.status",
        1,
        match=lambda e: e.headers.get("breach_id") == raised.id and e.headers["ce_type"].endswith("wait-cleared"),
    )
    assert event.value["status"] == "received"
    assert [h.outcome for h in hits(crisis_line, reference)] == ["created"]  # still the one copy

    # a note alone is not a move: the clock at `received` runs from when the Task came to it
    (at_received,) = [w for w in await runtime.watcher.breaches.waiting({"received"}) if w.task_id == task_id]
    async with gateway.client() as client:
        ops = [{"op": "add", "path": "/businessStatus", "value": {"text": "Duty clinician to call back"}}]
        noted = await client.patch(f"/fhir/Task/{task_id}", content=json.dumps(ops), headers=PATCH)
    assert noted.status_code == 200 and noted.json()["meta"]["versionId"] == "3", noted.text
    (still,) = [w for w in await runtime.watcher.breaches.waiting({"received"}) if w.task_id == task_id]
    assert still.since == at_received.since


async def test_the_watcher_starts_and_stops_idempotently(gateway: RunningGateway) -> None:
    watcher = gateway.runtime.watcher
    await watcher.start()  # started by the Runtime already: a second start adds nothing
    await watcher.stop()
    await watcher.stop()
    await watcher.start()
    assert (await watcher.check()).raised == ()
