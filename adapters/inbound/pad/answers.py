"""Read a QuestionnaireResponse's answers by linkId, wherever the item sits in the tree.

Pure. Must not: judge the answers (conformance.py and rules.py do).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir.resources.R4B.questionnaireresponse import (
    QuestionnaireResponse,
    QuestionnaireResponseItem,
    QuestionnaireResponseItemAnswer,
)

from gateway.canonical import primitives

#: The value[x] choices of an answer, in the order they are tried.
VALUE_FIELDS = (
    "valueBoolean",
    "valueDecimal",
    "valueInteger",
    "valueDate",
    "valueDateTime",
    "valueTime",
    "valueString",
    "valueUri",
    "valueAttachment",
    "valueCoding",
    "valueQuantity",
    "valueReference",
)


def value_field(answer: QuestionnaireResponseItemAnswer) -> str | None:
    """Which value[x] an answer carries, if any."""
    return next((name for name in VALUE_FIELDS if getattr(answer, name) is not None), None)


def plain_value(answer: QuestionnaireResponseItemAnswer) -> Any:
    """The answer as a Python value; a Coding becomes its code, so it compares with enableWhen."""
    name = value_field(answer)
    if name is None:
        return None
    value = getattr(answer, name)
    return value.code if name == "valueCoding" else value


def walk(items: list[QuestionnaireResponseItem]) -> Iterator[QuestionnaireResponseItem]:
    for item in items:
        yield item
        yield from walk(item.item or [])
        for answer in item.answer or []:
            yield from walk(answer.item or [])


@dataclass(frozen=True)
class Answers:
    by_link_id: dict[str, list[Any]]
    present: frozenset[str]  # every linkId that appears, groups included

    @classmethod
    def of(cls, qr: QuestionnaireResponse) -> Answers:
        found: dict[str, list[Any]] = {}
        present: set[str] = set()
        for item in walk(qr.item or []):
            present.add(str(item.linkId))
            values = [v for v in (plain_value(a) for a in item.answer or []) if v is not None]
            found.setdefault(str(item.linkId), []).extend(values)
        return cls(found, frozenset(present))

    def values(self, link_id: str) -> list[Any]:
        return self.by_link_id.get(link_id, [])

    def has(self, link_id: str) -> bool:
        return bool(self.values(link_id))

    def text(self, link_id: str) -> str | None:
        """The answer as a FHIR string (trimmed, no characters FHIR forbids); None when blank."""
        value = next(iter(self.values(link_id)), None)
        return primitives.string(str(value)) if value is not None else None

    def flag(self, link_id: str) -> bool | None:
        value = next(iter(self.values(link_id)), None)
        return value if isinstance(value, bool) else None

    def day(self, link_id: str) -> date | None:
        value = next(iter(self.values(link_id)), None)
        return value if isinstance(value, date) else None

    def codes(self, link_id: str) -> list[str]:
        return [str(v) for v in self.values(link_id)]
