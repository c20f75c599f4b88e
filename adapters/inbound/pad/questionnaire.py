"""The pad's Questionnaire, loaded from schemas/ into the fhir.resources R4B model, and the lookups
the other pad modules need (items by linkId, answer options).

Must not: know what any answer means (rules.py and mapping.py do).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fhir.resources.R4B.questionnaire import Questionnaire, QuestionnaireItem

CANONICAL_URL = "https://referral-gateway.nhs.example/Questionnaire/iapt-prescription-pad"
RELATIVE_PATH = Path("questionnaires") / "iapt-prescription-pad.json"
ENTRY_FORMAT = "http://hl7.org/fhir/StructureDefinition/entryFormat"
ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"


@dataclass(frozen=True)
class Pad:
    """The Questionnaire with its items indexed by linkId (and each item's parent group)."""

    questionnaire: Questionnaire
    items: dict[str, QuestionnaireItem]
    parents: dict[str, str | None]

    @property
    def version(self) -> str:
        return str(self.questionnaire.version)

    def accepts(self, canonical: str | None) -> bool:
        """A QuestionnaireResponse may name the pad with or without `|version`. A minor version only
        adds optional items or relaxes a requirement, so a response to an earlier version of the same
        major version still fits (1.0.0 responses fit 1.1.0, which made the NHS number optional)."""
        url, _, version = (canonical or "").partition("|")
        return url == CANONICAL_URL and (not version or version.split(".")[0] == self.version.split(".")[0])

    def option_codes(self, link_id: str) -> list[str]:
        item = self.items[link_id]
        return [str(o.valueCoding.code) for o in item.answerOption or [] if o.valueCoding is not None]

    def option_display(self, link_id: str, code: str) -> str:
        for option in self.items[link_id].answerOption or []:
            if option.valueCoding is not None and option.valueCoding.code == code:
                return str(option.valueCoding.display or code)
        return code


@cache
def load(schemas_dir: Path) -> Pad:
    data = json.loads((schemas_dir / RELATIVE_PATH).read_text())
    questionnaire = Questionnaire.model_validate(data)
    items: dict[str, QuestionnaireItem] = {}
    parents: dict[str, str | None] = {}
    for item, parent in walk(questionnaire.item or [], None):
        items[str(item.linkId)] = item
        parents[str(item.linkId)] = parent
    return Pad(questionnaire, items, parents)


def walk(items: list[QuestionnaireItem], parent: str | None) -> Iterator[tuple[QuestionnaireItem, str | None]]:
    """Every item, depth first, with its parent's linkId."""
    for item in items:
        yield item, parent
        yield from walk(item.item or [], str(item.linkId))


def extension_text(item: QuestionnaireItem, url: str) -> str | None:
    """An item's entryFormat hint or itemControl code."""
    for ext in item.extension or []:
        if ext.url == url:
            if ext.valueString:
                return str(ext.valueString)
            if ext.valueCodeableConcept and ext.valueCodeableConcept.coding:
                return str(ext.valueCodeableConcept.coding[0].code)
    return None
