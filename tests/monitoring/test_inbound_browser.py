"""The monitor's Inbound page in a real headless Chromium against a running gateway whose directory
points at a demo receiver: a refused HL7 v2 referral is searched for, shown with its issue at PID-3,
edited and resubmitted from the page, and reaches its receiver once. The screenshot goes to docs/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, ViewportSize, async_playwright, expect

from gateway.demo_receiver import DemoReceiver
from gateway.settings import DeliverySettings, MonitorSettings, Settings, StoreSettings
from tests.conftest import RunningGateway, sign_in
from tests.delivery.receivers import demo_receiver, eventually, schemas_for_receiver
from tests.monitoring.test_inbound_log import BAD_NHS_NUMBER, control_id, pas_message, send
from tests.pad.test_pad_browser import ARGS, CHROMIUM, screenshot
from tests.samples import valid_nhs_number

pytestmark = pytest.mark.browser

DESKTOP = ViewportSize(width=1440, height=1000)


@pytest.fixture
def store_settings() -> StoreSettings:
    return StoreSettings()


@pytest.fixture
async def receiver() -> AsyncIterator[DemoReceiver]:
    async with demo_receiver() as running:
        yield running


@pytest.fixture
def gateway_settings(gateway_settings: Settings, receiver: DemoReceiver, tmp_path: Path) -> Settings:
    """The directory's receivers are this test's demo receiver; this deployment lets its engineers
    see messages unmasked (they must, to edit one)."""
    schemas = schemas_for_receiver(tmp_path / "schemas", receiver.http_port, receiver.mllp_port)
    delivery = DeliverySettings(new_group_start="latest", backoff_base_s=0.1, backoff_max_s=0.2, max_attempts=2)
    monitor = MonitorSettings(unmasked_allowed=True)
    return gateway_settings.model_copy(update={"schemas_dir": schemas, "delivery": delivery, "monitor": monitor})


@pytest.fixture
async def page(running_gateway: RunningGateway) -> AsyncIterator[Page]:
    await running_gateway.runtime.delivery.joined()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context(viewport=DESKTOP, locale="en-GB")
        await sign_in(context, running_gateway, username="engineer")
        yield await context.new_page()
        await browser.close()


async def test_a_refused_message_is_found_shown_at_its_field_edited_and_resubmitted(
    running_gateway: RunningGateway, page: Page, receiver: DemoReceiver
) -> None:
    gateway = running_gateway
    text = pas_message(BAD_NHS_NUMBER, performer="NPH01")
    await send(gateway, text)

    await page.goto(f"{gateway.base_url}/monitor/inbound")
    await page.get_by_label("Sender").first.fill("A81001")
    await page.get_by_label("Outcome").select_option("refused")
    await page.get_by_label("Control / request id").fill(control_id(text))
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("#total")).to_contain_text("1 message matches")
    await page.locator("#messages tbody a").first.click()

    await expect(page.locator("#outcome")).to_have_text("refused (mapping)")
    pid = page.locator("#message li.has-issue")
    await expect(pid).to_contain_text("PID-3: the NHS number in PID-3")
    await expect(pid.locator("mark")).to_have_text("|***")  # masked until asked for
    await screenshot(page, "monitor-inbound.png")
    await page.get_by_role("link", name="Show unmasked").click()
    await expect(pid.locator("mark")).to_have_text(f"|{BAD_NHS_NUMBER}^^^NHS^NH")

    box = page.get_by_label("Edit the message")
    edited = (await box.input_value()).replace(BAD_NHS_NUMBER, good := valid_nhs_number())
    await box.fill(edited)
    await page.get_by_role("button", name="Resubmit", exact=True).click()

    await expect(page.locator(".flash.ok")).to_have_text("Resubmitted 1: 1 accepted.")
    await expect(page.locator("#outcome")).to_have_text("accepted")
    await expect(page.locator("#facts")).to_contain_text("Resubmission of")
    await expect(page.locator("#diff")).to_contain_text("+PID|1||***")  # the edit, masked as the message is
    await page.get_by_role("link", name="Show unmasked").click()
    await expect(page.locator("#diff")).to_contain_text(f"+PID|1||{good}")
    ubrn = text.split("RF1|")[1].split("|")[5]

    def hits() -> list[str]:
        return [h.outcome for h in receiver.ledger.hits if ubrn in h.identity]

    await eventually(lambda: hits() == ["created"], what="the resubmitted referral delivered")
