"""HL7 v2 escape sequences, both ways, for whatever encoding characters a message declares.

    \\F\\ \\S\\ \\T\\ \\R\\ \\E\\   field, component, subcomponent, repetition separator, escape character
    \\Xhh..\\              bytes in hex (decoded as UTF-8, else Latin-1)
    \\.br\\ \\.sp\\          line breaks in formatted text: a newline
    \\H\\ \\N\\ \\.xx\\ \\C..\\ \\M..\\ \\Z..\\   highlighting, other formatting, character sets, local: dropped

An escape character with no closing one, or a sequence not listed, is kept as written: a sender
that forgot to escape a backslash loses nothing. Must not: split on separators (the parser does,
before decoding, so an escaped separator never splits).
"""

from __future__ import annotations

from typing import Protocol

_FORMATTING_BREAKS = {".br", ".sp"}
_MLLP_BLOCKS = ("\x0b", "\x1c")


class Separators(Protocol):
    @property
    def field(self) -> str: ...
    @property
    def component(self) -> str: ...
    @property
    def repetition(self) -> str: ...
    @property
    def escape(self) -> str: ...
    @property
    def subcomponent(self) -> str: ...


def unescape(text: str, enc: Separators) -> str:
    """Decode every escape sequence in one leaf value."""
    esc = enc.escape
    if esc not in text:
        return text
    out: list[str] = []
    at = 0
    while (start := text.find(esc, at)) >= 0:
        end = text.find(esc, start + 1)
        if end < 0:
            break
        decoded = _sequence(text[start + 1 : end], enc)
        out.append(text[at:start])
        out.append(decoded if decoded is not None else text[start : end + 1])
        at = end + 1
    out.append(text[at:])
    return "".join(out)


def _sequence(seq: str, enc: Separators) -> str | None:
    """The text one escape sequence stands for; None when it is not an escape sequence."""
    simple = {"F": enc.field, "S": enc.component, "T": enc.subcomponent, "R": enc.repetition, "E": enc.escape}
    if seq in simple:
        return simple[seq]
    if seq in ("H", "N"):
        return ""
    head = seq[:1]
    if head == "X":
        return _hex(seq[1:])
    if head == ".":
        return "\n" if seq[:3] in _FORMATTING_BREAKS else ""
    if head in ("C", "M", "Z") and len(seq) > 1:
        return ""
    return None


def _hex(digits: str) -> str | None:
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def escape(text: str, enc: Separators, formatted: bool = False) -> str:
    """Encode one leaf value. Line breaks become \\.br\\ in formatted text (FT, TX), else \\X0A\\; the
    MLLP block characters VT and FS become \\X0B\\ and \\X1C\\."""
    esc = enc.escape
    if esc in text:
        text = text.replace(esc, f"{esc}E{esc}")
    for char, code in (
        (enc.field, "F"),
        (enc.component, "S"),
        (enc.subcomponent, "T"),
        (enc.repetition, "R"),
    ):
        if char in text:
            text = text.replace(char, f"{esc}{code}{esc}")
    for block in _MLLP_BLOCKS:
        if block in text:  # a VT or FS would end or restart the MLLP frame that carries the message
            text = text.replace(block, f"{esc}X{ord(block):02X}{esc}")
    if "\n" in text or "\r" in text:
        newline = f"{esc}.br{esc}" if formatted else f"{esc}X0A{esc}"
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", newline)
    return text
