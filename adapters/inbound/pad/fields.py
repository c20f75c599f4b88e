"""Form fields or a JSON object, keyed by the Questionnaire's linkIds, to a QuestionnaireResponse.

The web form posts strings (a ticked checkbox sends its value, an unticked one nothing); the JSON API
sends typed values. Both arrive here as a mapping from linkId to a value or a list of values. Values
are turned into answers of the item's type; what cannot be turned is reported against its linkId.

Must not: check whether required items are there or what answers mean (conformance.py, rules.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from fhir.resources.R4B.questionnaire import QuestionnaireItem
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from adapters.inbound.pad.questionnaire import ITEM_CONTROL, Pad, extension_text
from gateway.errors import Issue

_YES = {"true", "yes", "y", "on", "1"}
_NO = {"false", "no", "n", "off", "0"}
_DAY_MONTH_YEAR = re.compile(r"^(\d{1,2})[/.\- ](\d{1,2})[/.\- ](\d{4})$")


class _Unreadable(ValueError):
    """A value that cannot be an answer of the item's type; the message is for the person typing."""


def checkbox_items(pad: Pad) -> frozenset[str]:
    """Boolean items shown as one checkbox: on a web form, not ticked means no."""
    return frozenset(
        link_id
        for link_id, item in pad.items.items()
        if item.type == "boolean" and extension_text(item, ITEM_CONTROL) == "check-box"
    )


def response_from_fields(
    fields: Mapping[str, Any],
    pad: Pad,
    *,
    leave_out: Iterable[str] = (),
    unticked_is_no: frozenset[str] = frozenset(),
    authored: datetime | None = None,
) -> tuple[QuestionnaireResponse, list[Issue]]:
    """The QuestionnaireResponse the fields make and the fields that could not be read.

    `leave_out` names top-level groups the form does not show (the referrer on a self-referral);
    `unticked_is_no` names checkbox items whose absence is an answer of no.
    """
    skipped = set(leave_out)
    issues = [Issue("not an item of the pad", key, "structure") for key in fields if _unknown(key, pad, skipped)]
    answers: dict[str, list[dict[str, Any]]] = {}
    for link_id, item in pad.items.items():
        if item.type in {"group", "display"} or _under(link_id, pad, skipped):
            continue
        raw = fields.get(link_id)
        if raw is None and link_id in unticked_is_no:
            raw = False
        try:
            converted = _answers(raw, item, pad)
        except _Unreadable as exc:
            issues.append(Issue(str(exc), link_id, "value"))
            continue
        if converted:
            answers[link_id] = converted
    return _response(pad, answers, authored or datetime.now(UTC)), issues


def _unknown(key: str, pad: Pad, skipped: set[str]) -> bool:
    item = pad.items.get(key)
    return item is None or item.type == "group" or _under(key, pad, skipped)


def _under(link_id: str, pad: Pad, groups: set[str]) -> bool:
    parent: str | None = link_id
    while parent is not None:
        if parent in groups:
            return True
        parent = pad.parents.get(parent)
    return False


def _answers(raw: Any, item: QuestionnaireItem, pad: Pad) -> list[dict[str, Any]]:
    values = raw if isinstance(raw, list) else [raw]
    values = [v.strip() if isinstance(v, str) else v for v in values]
    values = [v for v in values if v is not None and v != ""]
    if len(values) > 1 and not item.repeats:
        raise _Unreadable("give one answer")
    return [_answer(v, item, pad) for v in values]


def _answer(value: Any, item: QuestionnaireItem, pad: Pad) -> dict[str, Any]:
    match item.type:
        case "boolean":
            return {"valueBoolean": _boolean(value)}
        case "date":
            return {"valueDate": _date(value).isoformat()}
        case "choice":
            return {"valueCoding": _coding(value, item, pad)}
        case "string" | "text":
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise _Unreadable("enter text")
            return {"valueString": str(value)}
    raise _Unreadable(f"items of type {item.type} are not taken from a form")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _YES | _NO:
        return value.lower() in _YES
    raise _Unreadable("answer yes or no")


def _date(value: Any) -> date:
    """ISO 8601 (the JSON API) or day/month/year as people write it in England (the web form)."""
    if isinstance(value, date):
        return value
    text = str(value).strip()
    parts = _DAY_MONTH_YEAR.fullmatch(text)
    try:
        if parts:
            day, month, year = (int(p) for p in parts.groups())
            return date(year, month, day)
        return date.fromisoformat(text)
    except ValueError as exc:
        raise _Unreadable("enter a real date, for example 27/03/1985") from exc


def _coding(value: Any, item: QuestionnaireItem, pad: Pad) -> dict[str, Any]:
    code = value.get("code") if isinstance(value, dict) else value
    for option in item.answerOption or []:
        coding = option.valueCoding
        if coding is not None and coding.code == code:
            return {"system": coding.system, "code": coding.code, "display": coding.display}
    choices = ", ".join(pad.option_codes(str(item.linkId)))
    raise _Unreadable(f"choose one of the options ({choices})")


def _response(pad: Pad, answers: dict[str, list[dict[str, Any]]], authored: datetime) -> QuestionnaireResponse:
    items = _tree(pad.questionnaire.item or [], answers)
    return QuestionnaireResponse.model_validate(
        {
            "resourceType": "QuestionnaireResponse",
            "questionnaire": f"{pad.questionnaire.url}|{pad.version}",
            "status": "completed",
            "authored": authored.isoformat(timespec="seconds"),
            **({"item": items} if items else {}),
        }
    )


def _tree(defined: list[QuestionnaireItem], answers: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Response items in the Questionnaire's order and nesting; a group with no answers is left out."""
    out = []
    for item in defined:
        if item.type == "group":
            children = _tree(item.item or [], answers)
            if children:
                out.append({"linkId": item.linkId, "text": item.text, "item": children})
        elif str(item.linkId) in answers:
            out.append({"linkId": item.linkId, "text": item.text, "answer": answers[str(item.linkId)]})
    return out
