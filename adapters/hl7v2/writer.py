"""Writing HL7 v2 (ER7): segments from plain values, escaped for the message's encoding characters.

A field value is one of:

    None or ""            an empty field
    "text"                one value (escaped)
    ("a", "b", ...)       components; a component that is itself a tuple holds subcomponents
    [v1, v2, ...]         repetitions, each a value as above

Trailing empty components and fields are left out, as HL7 recommends. Must not: know any message
structure (ack.py and the outbound encoder decide what goes where).
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.hl7v2.escapes import escape
from adapters.hl7v2.parser import STANDARD, Encoding

Component = str | None | tuple[str | None, ...]
Repetition = str | None | tuple[Component, ...]
Value = Repetition | list[Repetition]


def segment(
    name: str, fields: Sequence[Value], enc: Encoding = STANDARD, formatted: frozenset[int] = frozenset()
) -> str:
    """One segment; `fields[0]` is SEG-1. Fields numbered in `formatted` are text (FT, TX): line breaks
    are written as \\.br\\."""
    parts = [_field(v, enc, i + 1 in formatted) for i, v in enumerate(fields)]
    return enc.field.join([name, *parts]).rstrip(enc.field)


def msh(fields: Sequence[Value], enc: Encoding = STANDARD) -> str:
    """The MSH segment; `fields[0]` is MSH-3 (MSH-1 and MSH-2 come from `enc`)."""
    rest = enc.field.join(_field(v, enc, False) for v in fields).rstrip(enc.field)
    return f"MSH{enc.field}{enc.msh_2}{enc.field}{rest}"


def message(segments: Sequence[str]) -> str:
    return "\r".join(segments) + "\r"


def _field(value: Value, enc: Encoding, formatted: bool) -> str:
    if isinstance(value, list):
        return enc.repetition.join(_repetition(v, enc, formatted) for v in value)
    return _repetition(value, enc, formatted)


def _repetition(value: Repetition, enc: Encoding, formatted: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return escape(value, enc, formatted)
    return enc.component.join(_component(c, enc, formatted) for c in value).rstrip(enc.component)


def _component(value: Component, enc: Encoding, formatted: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return escape(value, enc, formatted)
    return enc.subcomponent.join(escape(s or "", enc, formatted) for s in value).rstrip(enc.subcomponent)
