"""The monitor in a real headless Chromium against a running gateway with a demo receiver on loopback:
the dashboard's offsets move while referrals flow (no reload); a trace shows every hop of an HL7 v2
referral from MLLP in to its receiver and each Task change back; and a dead letter is replayed from
its page once the receiver is fixed, and delivered. Screenshots go to docs/ for the README."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, ViewportSize, async_playwright, expect

from gateway.demo_receiver import Behaviour, DemoReceiver
from gateway.monitoring import trace
from gateway.settings import DeliverySettings, MonitorSettings, Settings, StoreSettings
from tests.conftest import RunningGateway, sign_in
from tests.delivery.receivers import demo_receiver, eventually, schemas_for_receiver
from tests.delivery.test_closed_loop import FHIR_JSON, patch, send_mllp
from tests.hl7v2.messages import IAPT, fresh, sample, with_field
from tests.kafka_reader import Event, read_events
from tests.pad.test_pad_browser import ARGS, CHROMIUM, screenshot
from tests.samples import service_request

pytestmark = pytest.mark.browser

DESKTOP = ViewportSize(width=1440, height=900)
GP_TAKING_HL7 = "A81001"  # an example practice the directory reaches over MLLP (the demo receiver)


@pytest.fixture
def store_settings() -> StoreSettings:
    return StoreSettings()


@pytest.fixture
async def receiver() -> AsyncIterator[DemoReceiver]:
    async with demo_receiver() as running:
        yield running


@pytest.fixture
def gateway_settings(gateway_settings: Settings, receiver: DemoReceiver, tmp_path: Path) -> Settings:
    """Every receiver in the directory is this test's demo receiver; the dashboard samples four times
    a second; a failing delivery is dead-lettered after its second attempt."""
    schemas = schemas_for_receiver(tmp_path / "schemas", receiver.http_port, receiver.mllp_port)
    delivery = DeliverySettings(new_group_start="latest", backoff_base_s=0.1, backoff_max_s=0.2, max_attempts=2)
    return gateway_settings.model_copy(
        update={"schemas_dir": schemas, "delivery": delivery, "monitor": MonitorSettings(sample_interval_s=0.25)}
    )


@pytest.fixture
async def gateway(running_gateway: RunningGateway) -> RunningGateway:
    await running_gateway.runtime.delivery.joined()
    await eventually(lambda: running_gateway.runtime.sampler.snapshot is not None, what="the first sample")
    return running_gateway


@pytest.fixture
async def page(gateway: RunningGateway) -> AsyncIterator[Page]:
    """An integration engineer signed in at a desktop browser."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context(viewport=DESKTOP, locale="en-GB")
        await sign_in(context, gateway, username="engineer")
        yield await context.new_page()
        await browser.close()


async def post_referral(client: httpx.AsyncClient) -> dict[str, Any]:
    created = await client.post("/fhir/ServiceRequest", content=json.dumps(service_request()), headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def test_the_dashboard_shows_end_offsets_moving_while_referrals_flow(gateway: RunningGateway, page: Page) -> None:
    await page.goto(f"{gateway.base_url}/monitor")
    written = page.locator('[data-k="topic referrals.msk-pain end"]')
    accepted = page.locator('[data-k="adapter in fhir-rest accepted"]')  # this process's, since it started
    before, accepted_before = int(await written.inner_text()), int(await accepted.inner_text())
    ends_before = await partition_ends(page, "referrals.msk-pain")
    await page.evaluate("window.notReloaded = true")

    async with gateway.client() as client:
        for _ in range(3):
            await post_referral(client)

    await expect(written).to_have_text(str(before + 3), timeout=10_000)
    await expect(page.locator("#live")).to_have_text("live")  # the page's last poll was answered
    ends = await partition_ends(page, "referrals.msk-pain")
    assert sum(ends.values()) == before + 3, "the partitions' end offsets add up to what was written"
    await expect(accepted).to_have_text(str(accepted_before + 3))
    await expect(page.locator('[data-k="adapter out fhir-rest delivered"]')).to_have_text("3")
    msk = "receiver Integrated MSK and Pain Service FHIR API"
    await expect(page.locator(f'[data-k="{msk} delivered"]')).to_have_text("3")
    await expect(page.locator(f'[data-k="{msk} health"]')).to_have_text("healthy")
    await expect(page.locator(f'[data-k="{msk} last_delivered"]')).not_to_have_text("\N{EN DASH}")
    await expect(page.locator('[data-k="backlog"]')).to_have_text("0")
    group = f"{gateway.settings.kafka.consumer_group_prefix}-delivery"
    for p in (p for p, end in ends.items() if end > ends_before[p]):  # delivery read to the end where they went
        committed = page.locator(f'[data-k="group {group} referrals.msk-pain p{p}"]')
        await expect(committed).to_have_text(f"{ends[p]}/{ends[p]}")
    assert await page.evaluate("window.notReloaded === true"), "the figures changed without a reload"
    await screenshot(page, "monitor-dashboard.png")


async def partition_ends(page: Page, topic: str) -> dict[int, int]:
    """The end offset of each of the topic's partitions, as the dashboard shows them now."""
    cells = page.locator(f'#topics tr[data-topic="{topic}"] .partitions [data-k]')
    shown = await cells.evaluate_all("cells => cells.map(c => [c.dataset.k, c.textContent])")
    return {int(key.split(" p")[-1].removesuffix(" end")): int(text) for key, text in shown}


def iapt_referral_from_a_gp_taking_hl7() -> str:
    """The REF^I12 to NHS Talking Therapies, sent by a practice that hears status back over MLLP."""
    text = with_field(fresh(sample(IAPT)), "MSH", 4, GP_TAKING_HL7)
    return with_field(text, "PRD", 7, f"{GP_TAKING_HL7}^ODS~G8234567^GMP")


async def test_a_trace_shows_every_hop_from_mllp_in_to_the_task_changes_back(
    gateway: RunningGateway, receiver: DemoReceiver, page: Page
) -> None:
    text = iapt_referral_from_a_gp_taking_hl7()
    control_id = text.split("\r")[0].split("|")[9]
    ((code, _, _),) = await asyncio.to_thread(send_mllp, gateway.settings.mllp.port, text)
    assert code == "AA"
    (found,) = (await trace.find(gateway.runtime.store, control_id)).items
    await eventually(lambda: any(found.id in r.body for r in receiver.ledger.referrals.values()), what="delivery")
    async with gateway.client() as client:
        tasks = (await client.get("/fhir/Task", params={"focus": f"ServiceRequest/{found.id}"})).json()
        task_id = tasks["entry"][0]["resource"]["id"]
        await patch(client, task_id, "received")
        await patch(client, task_id, "accepted")

    async def three_deliveries() -> bool:  # the referral, and each Task change back to the GP
        shown = await trace.trace(gateway.runtime.store, found.id)
        return shown is not None and [h.step for h in shown.hops].count("delivered") == 3

    await eventually(three_deliveries, what="the referral and both Task changes delivered")
    referral, changes = await asyncio.to_thread(events_about, gateway, found.id, task_id)
    service = referral.headers["routing_service"]

    await page.goto(f"{gateway.base_url}/monitor/trace")
    await page.get_by_label("Referral id, identifier, NHS number or correlation id").fill(control_id)
    await page.get_by_role("button", name="Trace").click()

    await expect(page.get_by_role("heading", level=2)).to_have_text("11 hops")
    shown = await page.locator("#hops > li").evaluate_all(
        "hops => hops.map(h => [h.dataset.step, h.querySelector('.title').textContent])"
    )
    assert [tuple(h) for h in shown[:5]] == [
        ("received", f"Received by the hl7v2-mllp adapter from SystmOne^{GP_TAKING_HL7}"),
        ("validated", "Validated against UK Core"),
        ("routed", f"Routed by rule {referral.headers['routing_rule']} to {service}"),
        ("published", published(referral)),
        ("delivered", f"Delivered to {service} (fhir-messaging)"),
    ]
    back = f"Delivered to gp-{GP_TAKING_HL7} (hl7v2-mllp)"  # each change, as an RRI^I12 to the GP
    statuses = [("status", "Task status changed to received"), ("status", "Task status changed to accepted")]
    assert sorted(tuple(h) for h in shown[5:]) == sorted(
        [*statuses, *(("published", published(e)) for e in changes), ("delivered", back), ("delivered", back)]
    )
    assert [tuple(h) for h in shown if h[0] == "status"] == statuses, "the Task changes in the order they were made"
    nhs = text.split("PID|1||")[1].split("^")[0]
    assert nhs not in await page.content(), "the NHS number is masked on the trace page"
    await screenshot(page, "monitor-trace.png")


def events_about(gateway: RunningGateway, referral_id: str, task_id: str) -> tuple[Event, list[Event]]:
    """The referral's event on its topic and its Task's two events on referrals.status, from the broker."""
    servers = gateway.settings.kafka.servers
    (referral,) = read_events(servers, "referrals.iapt", 1, 10, lambda e: subject(e, f"ServiceRequest/{referral_id}"))
    changes = read_events(servers, "referrals.status", 2, 10, lambda e: subject(e, f"Task/{task_id}"))
    assert len(changes) == 2
    return referral, changes


def subject(event: Event, of: str) -> bool:
    return event.headers.get("ce_subject") == of


def published(event: Event) -> str:
    return f"Published to {event.topic} partition {event.partition} offset {event.offset}"


async def test_a_dead_letter_replayed_from_its_page_is_delivered(
    gateway: RunningGateway, receiver: DemoReceiver, page: Page
) -> None:
    receiver.ledger.behaviour = Behaviour(http_status=503)
    async with gateway.client() as client:
        sr = await post_referral(client)
    letters = gateway.runtime.dead_letters

    async def dead_lettered() -> bool:
        return any(d.referral_id == sr["id"] for d in await letters.search(state="open"))

    (identifier,) = sr["identifier"]
    identity = f"{identifier['system']}|{identifier['value']}"

    def outcomes() -> list[str]:
        """What became of this referral's requests at the receiver."""
        return [h.outcome for h in receiver.ledger.hits if h.identity == identity]

    await eventually(dead_lettered, what="the referral dead-lettered")
    assert outcomes() == ["failed: 503", "failed: 503"]
    receiver.ledger.behaviour = Behaviour()  # the receiver is fixed

    await page.goto(f"{gateway.base_url}/monitor/dead-letters")
    row = page.locator("#dead-letters tbody tr").filter(has=page.locator(f'a[href="/monitor/trace?q={sr["id"]}"]'))
    await expect(row.locator(".state")).to_have_text("open")
    await row.get_by_role("link").first.click()
    await expect(page.locator("#state")).to_have_text("open")
    await page.locator("#replay").get_by_role("button", name="Replay").click()
    await expect(page.get_by_role("status")).to_have_text("1 replay queued for delivery")
    await expect(page.locator("#state")).to_have_text("replayed")

    await eventually(lambda: outcomes() == ["failed: 503", "failed: 503", "created"], what="the replay taken")
    await page.reload()
    await expect(page.locator("#delivery-status")).to_have_text("delivered")
