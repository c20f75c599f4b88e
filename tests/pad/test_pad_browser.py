"""The pad in a real headless Chromium on a tablet-sized screen: a physiotherapist fills it in and
sees the reference; fixes the errors the server reports; gets the crisis steps on a positive risk
screen; and a patient refers themselves with the keyboard alone. Each referral is read back from the
broker. Screenshots of the pages go to docs/ for review."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.conftest import RunningGateway, sign_in
from tests.pad.broker import events_for, physiotherapist_source, self_referral_source, source_codes
from tests.samples import valid_nhs_number

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TABLET = {"width": 820, "height": 1180}  # a 10.9-inch tablet held upright
DOCS = Path(__file__).resolve().parents[2] / "docs"
REFERENCE = re.compile(r"PAD-[0-9A-Z]{4}-[0-9A-Z]{4}")


@pytest.fixture
def chromium() -> str:
    assert Path(CHROMIUM).exists(), "Chromium is missing: run scripts/install-browser.sh"
    return CHROMIUM


@pytest.fixture
async def page(chromium: str, running_gateway: RunningGateway) -> AsyncIterator[Page]:
    """A signed-in physiotherapist's tablet."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=ARGS)
        context = await browser.new_context(viewport=TABLET, has_touch=True, locale="en-GB")
        await sign_in(context, running_gateway)
        yield await context.new_page()
        await browser.close()


async def screenshot(page: Page, name: str) -> None:
    DOCS.mkdir(exist_ok=True)
    await page.screenshot(path=str(DOCS / name), full_page=True)


async def fill_patient(page: Page, nhs_number: str) -> None:
    await page.get_by_label("NHS number", exact=True).fill(nhs_number)
    await page.get_by_label("First name", exact=True).fill("Sam")
    await page.get_by_label("Last name", exact=True).fill("Example")
    await page.get_by_label("Date of birth", exact=True).fill("14/03/1971")
    await page.get_by_label("Address", exact=True).fill("1 Example Street\nLeeds")
    await page.get_by_label("Postcode", exact=True).fill("LS1 4AP")
    await page.get_by_label("Phone number", exact=True).fill("0113 496 0000")
    await page.get_by_role("group", name="Is it safe to leave a voicemail or text message?").get_by_label("Yes").check()
    await page.get_by_label("Morning (9am to 12pm)").check()


async def fill_physiotherapist(page: Page) -> None:
    await page.get_by_label("Your name", exact=True).fill("Alex Example")
    await page.get_by_label("HCPC registration number", exact=True).fill("PH123456")
    await page.get_by_label("Your organisation's ODS code").fill("NPH01")
    await page.get_by_label("Community or GP practice (primary care)").check()
    await page.get_by_label("Your contact phone number").fill("0113 496 0001")


async def fill_clinical(page: Page, risk: str) -> None:
    await page.get_by_label("Low mood").check()
    await page.get_by_label("Distress related to pain").check()
    await page.get_by_label("Back pain with sciatica").check()
    await page.get_by_label("Health and Wellbeing: Living Well with Back Pain and Sciatica (5-week course)").check()
    risk_screen = page.get_by_role("group", name="Does the patient have current thoughts of self-harm or suicide?")
    await risk_screen.get_by_label(risk).check()


async def consent(page: Page) -> None:
    await page.get_by_label("The patient consents to this referral to NHS Talking Therapies").check()
    await page.get_by_label("The patient consents to their information being shared with NHS Talking Therapies").check()


async def sent_reference(page: Page) -> str:
    await expect(page.locator("#reference")).to_have_text(REFERENCE)
    return await page.locator("#reference").inner_text()


def referral_id(page: Page) -> str:
    return page.url.split("?")[0].rsplit("/", 1)[-1]


async def test_physiotherapist_fills_the_pad_and_sees_the_reference(
    running_gateway: RunningGateway, page: Page
) -> None:
    nhs_number = valid_nhs_number()
    await page.goto(f"{running_gateway.base_url}/pad")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Refer a patient to NHS Talking Therapies")
    await fill_patient(page, nhs_number)
    await fill_physiotherapist(page)
    await fill_clinical(page, "No")
    await consent(page)
    await page.get_by_label("Notes for NHS Talking Therapies").fill("Keen to try the back pain course.")
    await screenshot(page, "pad-form.png")
    await page.get_by_role("button", name="Send referral").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text("Referral sent")
    reference = await sent_reference(page)
    await expect(page.locator("#service")).to_have_text("NHS Talking Therapies (NQ1IA)")
    await expect(page.locator("#topic")).to_have_text("referrals.iapt")
    await expect(page.locator(".crisis")).to_have_count(0)
    await screenshot(page, "pad-confirmation.png")

    (event,) = await events_for(running_gateway, referral_id(page))
    assert event.key == nhs_number
    assert event.value["identifier"][0]["value"] == reference
    assert event.value["priority"] == "routine"
    assert source_codes(event) == physiotherapist_source()


async def test_errors_are_shown_by_the_fields_and_fixed(running_gateway: RunningGateway, page: Page) -> None:
    nhs_number = valid_nhs_number()
    await page.goto(f"{running_gateway.base_url}/pad")
    await fill_patient(page, "943 476 5918")  # wrong check digit
    await fill_physiotherapist(page)
    await page.get_by_label("HCPC registration number", exact=True).fill("123456")
    await page.get_by_label("Low mood").check()
    await page.get_by_label("Core NHS Talking Therapies (IAPT)").check()
    await page.get_by_role("button", name="Send referral").click()  # no risk screen, no consent

    summary = page.get_by_role("alert")
    await expect(summary).to_contain_text("There is a problem")
    await expect(summary).to_contain_text("not consented")
    await expect(summary.get_by_role("link")).to_have_text(
        [
            re.compile("NHS number: this is not a valid NHS number"),
            re.compile("HCPC registration number: a physiotherapist's HCPC"),
            "Does the patient have current thoughts of self-harm or suicide: answer yes or no.",
            re.compile("The patient consents to this referral"),
            re.compile("The patient consents to their information"),
        ]
    )
    assert await page.evaluate("document.activeElement.id") == "error-summary"
    await expect(page.locator("#patient-nhs-number-error")).to_contain_text("not a valid NHS number")
    await expect(page.get_by_label("First name", exact=True)).to_have_value("Sam")  # what was typed is kept
    await expect(page.get_by_label("Low mood")).to_be_checked()
    await screenshot(page, "pad-errors.png")

    await summary.get_by_role("link", name=re.compile("NHS number")).click()
    assert page.url.endswith("#patient-nhs-number")
    await expect(page.get_by_label("NHS number", exact=True)).to_be_in_viewport()

    await page.get_by_label("NHS number", exact=True).fill(nhs_number)
    await page.get_by_label("HCPC registration number", exact=True).fill("PH123456")
    await (
        page.get_by_role("group", name="Does the patient have current thoughts of self-harm or suicide?")
        .get_by_label("No")
        .check()
    )
    await consent(page)
    await page.get_by_role("button", name="Send referral").click()

    reference = await sent_reference(page)
    (event,) = await events_for(running_gateway, referral_id(page))
    assert event.key == nhs_number
    assert event.value["identifier"][0]["value"] == reference
    assert source_codes(event) == physiotherapist_source()


async def test_positive_risk_screen_shows_what_to_do_now(running_gateway: RunningGateway, page: Page) -> None:
    await page.goto(f"{running_gateway.base_url}/pad")
    await fill_patient(page, valid_nhs_number())
    await fill_physiotherapist(page)
    await fill_clinical(page, "Yes")
    await consent(page)
    await page.get_by_role("button", name="Send referral").click()

    crisis = page.get_by_role("alert")
    await expect(crisis).to_contain_text("Positive risk screen: act now")
    await expect(crisis.locator("li")).to_have_count(len(running_gateway.settings.pad.crisis_steps))
    await expect(crisis).to_contain_text("call 999")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Urgent referral sent")
    await expect(page.locator("#priority")).to_have_text("Urgent, for the duty team")
    await sent_reference(page)
    await screenshot(page, "pad-urgent.png")

    (event,) = await events_for(running_gateway, referral_id(page))
    assert event.value["priority"] == "urgent"
    assert event.headers["routing_rule"] == "iapt-urgent-risk"
    assert "6471006" in {c["code"] for r in event.value["reasonCode"] for c in r.get("coding", [])}


async def tab_to(page: Page, name: str, value: str | None = None) -> None:
    """Press Tab until the control named `name` (and `value`, for an option) has the focus."""
    for _ in range(80):
        await page.keyboard.press("Tab")
        focused = await page.evaluate("[document.activeElement.name, document.activeElement.value]")
        if focused[0] == name and (value is None or focused[1] == value):
            return
    raise AssertionError(f"{name} cannot be reached with the Tab key")


async def type_into(page: Page, name: str, text: str) -> None:
    await tab_to(page, name)
    await page.keyboard.type(text)


async def test_a_patient_refers_themselves_with_the_keyboard_alone(running_gateway: RunningGateway, page: Page) -> None:
    nhs_number = valid_nhs_number()
    await page.goto(f"{running_gateway.base_url}/pad/self-referral")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Refer yourself to NHS Talking Therapies")
    await expect(page.get_by_text("Referring physiotherapist")).to_have_count(0)

    await type_into(page, "patient.nhs-number", nhs_number)
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the keyboard focus can be seen
    await type_into(page, "patient.given-name", "Sam")
    await type_into(page, "patient.family-name", "Example")
    await type_into(page, "patient.birth-date", "14/03/1971")
    await type_into(page, "patient.address", "1 Example Street, Leeds")
    await type_into(page, "patient.postcode", "LS1 4AP")
    await type_into(page, "patient.phone", "07700 900000")
    await tab_to(page, "patient.safe-to-leave-message")
    await page.keyboard.press("ArrowRight")  # "No": arrow keys move between and select radios
    await tab_to(page, "difficulties.presenting", "anxiety")
    await page.keyboard.press("Space")
    await tab_to(page, "pathway.recommended")
    await page.keyboard.press("Space")  # the first option: core NHS Talking Therapies
    await tab_to(page, "risk.self-harm-thoughts")
    await page.keyboard.press("ArrowRight")  # No
    await tab_to(page, "consent.referral")
    await page.keyboard.press("Space")
    await tab_to(page, "consent.sharing")
    await page.keyboard.press("Space")
    await tab_to(page, "notes")
    await screenshot(page, "pad-self-referral.png")
    await page.keyboard.press("Tab")  # to the button
    await page.keyboard.press("Enter")

    await expect(page.get_by_role("heading", level=1)).to_have_text("Referral sent")
    reference = await sent_reference(page)
    (event,) = await events_for(running_gateway, referral_id(page))
    assert event.key == nhs_number
    assert event.value["identifier"][0]["value"] == reference
    assert source_codes(event) == self_referral_source()
    safe = [n["text"] for n in event.value["note"] if n["text"].startswith("Contact")]
    assert safe == ["Contact: safe to leave a message: no; best times: any."]
