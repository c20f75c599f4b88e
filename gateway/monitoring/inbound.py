"""A logged inbound message as an engineer reads it: its lines, each issue marked where it is.

    HL7 v2      one segment a line; an issue at `PID-3` marks PID's third field
    FHIR JSON   the resource pretty-printed, one element a line; an issue at a FHIRPath marks that
                element's line (or, for a missing element, the nearest one there is)
    a form      one field a line (`name = value`); an issue at a field's linkId marks it
    other       the text as it came

Masked (unless `monitoring.access` allows otherwise): the patient's segments (PID but its set id and
sex, NK1), FHIR patient details (observability/masking.py), every form value, and anything written
like an NHS number. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from gateway.canonical import nhs_number
from gateway.observability.masking import MASK, NHS_NUMBER_MASK, mask, scrub_text
from gateway.store.inbound import InboundQuery, LoggedMessage

#: Patient segments masked field by field, and the fields of each left readable.
_PATIENT_SEGMENTS = {"PID": {1, 8}, "NK1": {1}, "GT1": {1}, "IN1": {1}}
_HL7_LOCATION = re.compile(r"^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?-(\d+)")


@dataclass(frozen=True)
class Part:
    text: str
    marked: bool = False


@dataclass(frozen=True)
class Line:
    parts: tuple[Part, ...]
    issues: tuple[str, ...] = ()  # what is wrong here: "PID-3: the NHS number ..."

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts)


@dataclass(frozen=True)
class Shown:
    kind: str  # hl7v2, json, form, text
    lines: tuple[Line, ...]
    unplaced: tuple[str, ...]  # issues with no line of their own (a header, the request)
    masked: bool


def text_of(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def show(message: LoggedMessage, unmasked: bool = False) -> Shown:
    text = text_of(message.raw)
    issues = [(str(i.get("expression") or ""), str(i.get("diagnostics") or "")) for i in message.issues]
    if text.startswith("MSH"):
        lines, placed = _hl7(text, issues, unmasked)
        kind = "hl7v2"
    elif text.lstrip().startswith(("{", "[")) and _json(text) is not None:
        lines, placed = _fhir(_json(text), issues, unmasked)
        kind = "json"
    elif "form-urlencoded" in (message.content_type or ""):
        lines, placed = _form(text, issues, unmasked)
        kind = "form"
    else:
        lines, placed = [Line((Part(t if unmasked else scrub_text(t)),)) for t in text.splitlines()], set()
        kind = "text"
    unplaced = tuple(f"{where or 'message'}: {what}" for n, (where, what) in enumerate(issues) if n not in placed)
    return Shown(kind, tuple(lines), unplaced if unmasked else tuple(scrub_text(u) for u in unplaced), not unmasked)


def _hl7(text: str, issues: list[tuple[str, str]], unmasked: bool) -> tuple[list[Line], set[int]]:
    segments = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s]
    wanted = {n: m for n, (where, _) in enumerate(issues) if (m := _HL7_LOCATION.match(where))}
    seen: dict[str, int] = {}
    lines: list[Line] = []
    placed: set[int] = set()
    for segment in segments:
        name = segment[:3]
        seen[name] = seen.get(name, 0) + 1
        here = {
            n: int(m.group(3)) for n, m in wanted.items() if m.group(1) == name and int(m.group(2) or 1) == seen[name]
        }
        placed.update(here)
        fields = _hl7_fields(segment, unmasked)
        offset = 1 if name == "MSH" else 0  # MSH-1 is the field separator itself
        marked = {number - offset for number in here.values()}
        parts = [Part(("|" if i else "") + f, i in marked) for i, f in enumerate(fields)]
        notes = tuple(f"{issues[n][0]}: {_safe(issues[n][1], unmasked)}" for n in here)
        lines.append(Line(tuple(parts), notes))
    return lines, placed


def _hl7_fields(segment: str, unmasked: bool) -> list[str]:
    fields = segment.split("|")
    if unmasked:
        return fields
    readable = _PATIENT_SEGMENTS.get(fields[0])
    if readable is None:
        return [scrub_text(f) for f in fields]
    return [f if i == 0 or i in readable or not f else MASK for i, f in enumerate(fields)]


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _fhir(data: Any, issues: list[tuple[str, str]], unmasked: bool) -> tuple[list[Line], set[int]]:
    shown = data if unmasked else mask(data)
    root = shown.get("resourceType", "$") if isinstance(shown, dict) else "$"
    rows: list[tuple[str, str]] = []  # (path, text)
    _walk(shown, root, 0, None, rows, last=True)
    paths = [_plain(p) for p, _ in rows]
    notes: dict[int, list[str]] = {}
    placed: set[int] = set()
    for n, (where, what) in enumerate(issues):
        line = _nearest(paths, _plain(where)) if where else None
        if line is not None:
            notes.setdefault(line, []).append(f"{where}: {_safe(what, unmasked)}")
            placed.add(n)
    lines = [Line((Part(text, i in notes),), tuple(notes.get(i, ()))) for i, (_, text) in enumerate(rows)]
    return lines, placed


def _walk(node: Any, path: str, depth: int, key: str | None, rows: list[tuple[str, str]], last: bool) -> None:
    """Pretty-printed JSON, one element a line, each line with the FHIRPath of its element."""
    pad, label, comma = "  " * depth, f'"{key}": ' if key is not None else "", "" if last else ","
    if isinstance(node, dict) and node:
        rows.append((path, f"{pad}{label}{{"))
        for i, (k, v) in enumerate(node.items()):
            _walk(v, f"{path}.{k}", depth + 1, k, rows, i == len(node) - 1)
        rows.append((path, f"{pad}}}{comma}"))
    elif isinstance(node, list) and node:
        rows.append((path, f"{pad}{label}["))
        for i, item in enumerate(node):
            _walk(item, f"{path}[{i}]", depth + 1, None, rows, i == len(node) - 1)
        rows.append((path, f"{pad}]{comma}"))
    else:
        rows.append((path, f"{pad}{label}{json.dumps(node, ensure_ascii=False)}{comma}"))


def _plain(path: str) -> str:
    """A FHIRPath compared without first-item indices (`identifier[0]` and `identifier` are one)."""
    return path.replace("[0]", "")


def _nearest(paths: list[str], wanted: str) -> int | None:
    """The first line of the element at `wanted`, or of its nearest ancestor that is there."""
    while wanted:
        if wanted in paths:
            return paths.index(wanted)
        if "." not in wanted and "[" not in wanted:
            return None
        wanted = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", wanted)
    return None


def _form(text: str, issues: list[tuple[str, str]], unmasked: bool) -> tuple[list[Line], set[int]]:
    lines: list[Line] = []
    placed: set[int] = set()
    for key, value in parse_qsl(text, keep_blank_values=True):
        here = [n for n, (where, _) in enumerate(issues) if where and key in (where, where.split(".")[-1])]
        placed.update(here)
        shown = value if unmasked or key.startswith("_") else (MASK if value else "")
        notes = tuple(f"{issues[n][0]}: {_safe(issues[n][1], unmasked)}" for n in here)
        lines.append(Line((Part(f"{key} = {shown}", bool(here)),), notes))
    return lines, placed


def _safe(text: str, unmasked: bool) -> str:
    return text if unmasked else scrub_text(text)


def query(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    sender: str = "",
    nhs: str = "",
    **equals: str,
) -> InboundQuery:
    """A search from what a form or a command line gave (blank: any); an NHS number as typed."""
    given = {name: value.strip() for name, value in equals.items() if value and value.strip()}
    if nhs.strip():
        given["nhs_number"] = nhs_number.normalise(nhs)
    return InboundQuery(since, until, sender.strip() or None, given)


def masked_nhs_number(message: LoggedMessage, unmasked: bool) -> str:
    if not message.nhs_number:
        return ""
    return message.nhs_number if unmasked else NHS_NUMBER_MASK


def shown_diff(edit: str | None, unmasked: bool) -> str | None:
    """An edit's diff as shown: its HL7 lines masked as the message is (the markers kept)."""
    if edit is None or unmasked:
        return edit
    lines = []
    for line in edit.splitlines():
        marker, body = (line[:1], line[1:]) if line[:1] in "+- " and not line.startswith(("+++", "---")) else ("", line)
        lines.append(marker + "|".join(_hl7_fields(body, False)) if body[:3].isalnum() else scrub_text(line))
    return "\n".join(lines)
