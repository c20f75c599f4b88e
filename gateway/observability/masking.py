"""Masking patient identifiers in what integration engineers see: `mask(resource_json) -> json`.

What is masked, in any FHIR resource (a ServiceRequest, a Task, a Bundle, their contained resources):
- NHS numbers: every identifier in the NHS number system, and any run of ten digits in free text
  (also written 3-3-4 with spaces or hyphens);
- names, addresses, phone numbers and e-mail addresses (`telecom`), birth dates and photos of a
  Patient or RelatedPerson, and every identifier and contact of them;
- the display text of a reference to the patient (`subject`, `patient`, `for`, `beneficiary`);
- free-text and date answers of a QuestionnaireResponse (the IAPT pad's carry the patient's details).

Clinical content (codes, reasons, priorities), organisations and routing facts stay readable: they are
what an engineer debugs. Pure: no I/O, and the input is never changed.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from gateway.canonical import systems

MASK = "***"
NHS_NUMBER_MASK = "**********"

#: Ten digits standing alone, or 3-3-4 with spaces or hyphens: how NHS numbers are written.
_NHS_NUMBER_TEXT = re.compile(r"(?<![\w-])\d{3}[ -]?\d{3}[ -]?\d{4}(?![\w-])")
_PEOPLE = {"Patient", "RelatedPerson"}
_PERSON_DETAILS = ("name", "telecom", "address", "birthDate", "photo", "contact", "identifier")
_PATIENT_REFERENCES = {"subject", "patient", "for", "beneficiary"}
_FREE_ANSWERS = ("valueString", "valueDate", "valueDateTime", "valueTime", "valueAttachment", "valueReference")


def mask(resource: Any) -> Any:
    """A copy of `resource` (FHIR JSON: dicts, lists, strings) with patient identifiers masked."""
    return _masked(copy.deepcopy(resource))


def scrub_text(text: str) -> str:
    """`text` with anything written like an NHS number masked (for error messages and log lines)."""
    return _NHS_NUMBER_TEXT.sub(NHS_NUMBER_MASK, text)


def mask_key(key: str) -> str:
    """A Kafka record key (the gateway keys events by NHS number)."""
    return scrub_text(key)


def _masked(node: Any) -> Any:
    if isinstance(node, dict):
        return _masked_object(node)
    if isinstance(node, list):
        return [_masked(item) for item in node]
    if isinstance(node, str):
        return scrub_text(node)
    return node


def _masked_object(node: dict[str, Any]) -> dict[str, Any]:
    if node.get("resourceType") in _PEOPLE:
        _mask_person(node)
    if node.get("resourceType") == "QuestionnaireResponse":
        _mask_answers(node.get("item", []))
    if node.get("system") == systems.NHS_NUMBER and "value" in node:
        node["value"] = NHS_NUMBER_MASK
    for key, value in node.items():
        if key in _PATIENT_REFERENCES and isinstance(value, dict) and "display" in value:
            value["display"] = MASK
        node[key] = _masked(value)
    return node


def _mask_person(person: dict[str, Any]) -> None:
    for detail in _PERSON_DETAILS:
        if detail in person:
            person[detail] = MASK


def _mask_answers(items: list[dict[str, Any]]) -> None:
    for item in items:
        for answer in item.get("answer", []):
            for kind in _FREE_ANSWERS:
                if kind in answer:
                    answer[kind] = MASK
            _mask_answers(answer.get("item", []))
        _mask_answers(item.get("item", []))
