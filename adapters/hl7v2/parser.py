"""A fast, tolerant HL7 v2 (ER7) reader: text to segments, fields, repetitions, components and
subcomponents, each split only when it is read.

Rules:
- The encoding characters are MSH-1 and MSH-2; nothing assumes |^~\\&.
- Segments end in CR, LF or CRLF; blank lines and stray whitespace between segments are skipped.
- Segments are kept in order, whatever their name: Z-segments and segments no mapping reads cost
  one string each and are never split.
- Escape sequences are decoded only in the leaf value read, after splitting, so an escaped
  separator never splits a field.
- HL7 numbers fields from 1 (`PID-3`); MSH-1 is the field separator itself, MSH-2 the encoding
  characters.

Must not: know any message structure, map to FHIR, validate, or do I/O. A text that is not HL7 v2
at all raises `MalformedInput`; everything else is read as far as it goes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from adapters.hl7v2.escapes import unescape
from gateway.errors import Issue, MalformedInput


@dataclass(frozen=True, slots=True)
class Encoding:
    """The separators of one message (MSH-1, MSH-2)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def msh_2(self) -> str:
        return f"{self.component}{self.repetition}{self.escape}{self.subcomponent}"

    @classmethod
    def of(cls, field: str, msh_2: str) -> Encoding:
        chars = msh_2[:4]
        if len(chars) < 4 or len({field, *chars}) != 5 or any(c.isalnum() or c.isspace() for c in field + chars):
            raise MalformedInput(
                "MSH-1 and MSH-2 do not declare five distinct encoding characters",
                Issue(f"MSH-2 is '{msh_2}'", "MSH-2", "structure"),
            )
        return cls(field, chars[0], chars[1], chars[2], chars[3])


STANDARD = Encoding()


class Composite:
    """One repetition of a field: components, each of subcomponents. Read with `get(c, s)`."""

    __slots__ = ("_components", "_enc", "raw")

    def __init__(self, raw: str, enc: Encoding) -> None:
        self.raw = raw
        self._enc = enc
        self._components: list[str] | None = None

    def __bool__(self) -> bool:
        return bool(self.raw)

    def get(self, component: int = 1, subcomponent: int = 1) -> str:
        """The decoded value at component (and subcomponent), numbered from 1; "" when absent."""
        if self._components is None:
            self._components = self.raw.split(self._enc.component)
        if component > len(self._components):
            return ""
        value = self._components[component - 1]
        if self._enc.subcomponent in value:
            parts = value.split(self._enc.subcomponent)
            value = parts[subcomponent - 1] if subcomponent <= len(parts) else ""
        elif subcomponent > 1:
            return ""
        return unescape(value, self._enc)

    def parts(self, count: int) -> list[str]:
        """Components 1..count decoded (the first subcomponent of each), "" where absent: one call
        for the data type builders that read most components."""
        if self._components is None:
            self._components = self.raw.split(self._enc.component)
        enc, found = self._enc, self._components[:count]
        out = [unescape(c.split(enc.subcomponent, 1)[0] if enc.subcomponent in c else c, enc) for c in found]
        return out + [""] * (count - len(out))

    def text(self) -> str:
        """The whole repetition decoded, separators kept: for text types (ST, TX, FT) a sender may not
        have escaped."""
        return unescape(self.raw, self._enc)


class Segment:
    """One segment; `raw(n)`, `repeats(n)`, `first(n)` and `text(n)` read SEG-n."""

    __slots__ = ("_enc", "_fields", "_repeats", "line", "name")

    def __init__(self, line: str, enc: Encoding) -> None:
        self.line = line
        self.name = line[:3]
        self._enc = enc
        self._fields: list[str] | None = None
        self._repeats: dict[int, list[Composite]] = {}  # a mapping reads some fields more than once

    def raw(self, n: int) -> str:
        """SEG-n as sent (still escaped, repetitions and components not split)."""
        if self._fields is None:
            self._fields = self.line.split(self._enc.field)
        if self.name == "MSH":
            if n == 1:
                return self._enc.field
            n -= 1
        return self._fields[n] if 0 < n < len(self._fields) else ""

    def repeats(self, n: int) -> list[Composite]:
        """Every non-empty repetition of SEG-n."""
        found = self._repeats.get(n)
        if found is None:
            raw = self.raw(n)
            if self.name == "MSH" and n == 2:
                found = [Composite(raw, self._enc)]
            else:
                found = [Composite(r, self._enc) for r in raw.split(self._enc.repetition) if r] if raw else []
            self._repeats[n] = found
        return found

    def first(self, n: int) -> Composite:
        """The first repetition of SEG-n (empty when absent)."""
        found = self.repeats(n)
        return found[0] if found else Composite("", self._enc)

    def text(self, n: int, component: int = 1, subcomponent: int = 1) -> str:
        """Decoded SEG-n.component.subcomponent of the first repetition; "" when absent."""
        return self.first(n).get(component, subcomponent)


class Message:
    """A parsed message: its encoding characters and its segments, in order."""

    __slots__ = ("encoding", "segments", "text")

    def __init__(self, text: str, encoding: Encoding, segments: list[Segment]) -> None:
        self.text = text
        self.encoding = encoding
        self.segments = segments

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def occurrence(self, segment: Segment) -> int:
        """Which occurrence of its name `segment` is, from 1 (ERR-2.2, the segment sequence)."""
        same = (s for s in self.segments if s.name == segment.name)
        return next(i for i, s in enumerate(same, start=1) if s is segment)

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)


def parse(text: str) -> Message:
    """Read one message. Raises `MalformedInput` when the text does not begin with an MSH segment."""
    body = text.lstrip("\ufeff \t\r\n\x0b")
    if not body.startswith("MSH") or len(body) < 8:
        raise MalformedInput(
            "not an HL7 v2 message: it does not begin with an MSH segment", Issue("", "MSH", "structure")
        )
    field = body[3]
    encoding = Encoding.of(field, body[4:].split(field, 1)[0])
    lines = body.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    segments = [Segment(line.strip() if line[:1].isspace() else line, encoding) for line in lines if line.strip()]
    return Message(text, encoding, segments)
