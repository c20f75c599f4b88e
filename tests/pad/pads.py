"""Pad submissions for tests: valid fields (a fresh NHS number each time, so tests sharing a broker
never collide) and the sample QuestionnaireResponse from schemas/samples."""

from __future__ import annotations

import copy
from typing import Any

from adapters.inbound.pad import questionnaire
from adapters.inbound.pad.questionnaire import Pad
from gateway.settings import SCHEMAS_DIR
from tests.samples import load, valid_nhs_number

CANONICAL = "https://referral-gateway.nhs.example/Questionnaire/iapt-prescription-pad"


def pad() -> Pad:
    return questionnaire.load(SCHEMAS_DIR)


def physio_fields(changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """A complete physiotherapist's pad as the JSON API takes it; `changes` by linkId (None removes)."""
    fields: dict[str, Any] = {
        "patient.nhs-number": valid_nhs_number(),
        "patient.given-name": "Sam",
        "patient.family-name": "Example",
        "patient.birth-date": "1971-03-14",
        "patient.address": "1 Example Street, Leeds",
        "patient.postcode": "LS1 4AP",
        "patient.phone": "0113 496 0000",
        "patient.safe-to-leave-message": True,
        "patient.contact-times": ["morning", "evening"],
        "referrer.name": "Alex Example",
        "referrer.hcpc": "PH123456",
        "referrer.organisation-ods": "NPH01",
        "referrer.setting": "community",
        "referrer.phone": "0113 496 0001",
        "difficulties.presenting": ["low-mood", "pain-distress"],
        "conditions.long-term": ["back-pain-sciatica"],
        "pathway.recommended": "living-well-back-pain-sciatica",
        "risk.self-harm-thoughts": False,
        "consent.referral": True,
        "consent.sharing": True,
        "notes": "Keen to try the back pain course.",
    }
    fields.update(changes or {})
    return {k: v for k, v in fields.items() if v is not None}


def self_fields(changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """A complete self-referral: no referrer section, the core service."""
    fields = {k: v for k, v in physio_fields().items() if not k.startswith("referrer.")}
    fields["pathway.recommended"] = "core"
    fields.update(changes or {})
    return {k: v for k, v in fields.items() if v is not None}


def sample_response(nhs_number: str | None = None) -> dict[str, Any]:
    """The sample QuestionnaireResponse; with a fresh NHS number unless one is given."""
    qr = copy.deepcopy(load("fhir/questionnaireresponse-iapt-pad.json"))
    answer(qr, "patient.nhs-number")[0]["valueString"] = nhs_number or valid_nhs_number()
    return qr


def answer(qr: dict[str, Any], link_id: str) -> list[dict[str, Any]]:
    """The answer list of an item anywhere in a QuestionnaireResponse (as JSON), to change in place."""
    item = find_item(qr["item"], link_id)
    assert item is not None, link_id
    answers: list[dict[str, Any]] = item["answer"]
    return answers


def find_item(items: list[dict[str, Any]], link_id: str) -> dict[str, Any] | None:
    for item in items:
        if item["linkId"] == link_id:
            return item
        found = find_item(item.get("item", []), link_id)
        if found is not None:
            return found
    return None


def remove_item(items: list[dict[str, Any]], link_id: str) -> None:
    for item in list(items):
        if item["linkId"] == link_id:
            items.remove(item)
            return
        remove_item(item.get("item", []), link_id)
