"""FHIR primitive values from text a mapping has read: what every builder of the HL7 v2 and pad
mappings writes, so the JSON they build is valid by construction.

    string   no characters FHIR forbids (controls; whitespace other than space, tab, CR, LF: a
             no-break space becomes a space), trimmed; empty or blank is no value (None)
    code     a string with no leading, trailing or repeated whitespace ("a  b" -> "a b")
    uri      trimmed, any whitespace or control inside percent-encoded ("urn:x:a b" -> "urn:x:a%20b")
    decimal  a finite number, as an int when it is a whole number a float holds exactly

Each is liberal: it normalises what it can and returns None for what holds no value; the mapping
decides whether a missing value drops the element or refuses the message. Must not: log values
(they may be patient details).
"""

from __future__ import annotations

import math
import re
from urllib.parse import quote

#: What a FHIR string may not hold: controls, and whitespace other than space, tab, CR and LF.
_FORBIDDEN = re.compile(r"[^\S \t\r\n]|[\x00-\x08\x0e-\x1f\x7f]")
_URI_GAPS = re.compile(r"[\s\x00-\x1f\x7f]")
_EXACT = 2**53  # the whole numbers a float (and so a JSON reader) holds exactly


def string(text: str | None) -> str | None:
    if not text:
        return None
    if not _plain(text):
        text = _FORBIDDEN.sub(" ", text)
    return text.strip() or None


def code(text: str | None) -> str | None:
    cleaned = string(text)
    if cleaned is None:
        return None
    return cleaned if _plain(cleaned) and "  " not in cleaned else " ".join(cleaned.split())


def uri(text: str | None) -> str | None:
    if not text:
        return None
    if _plain(text) and " " not in text:
        return text
    return _URI_GAPS.sub(lambda gap: quote(gap.group(), safe=""), text.strip()) or None


def _plain(text: str) -> bool:
    """Printable ASCII (no controls, no whitespace but the space): most values, checked without a regex."""
    return text.isascii() and text.isprintable()


def decimal(number: str) -> int | float | None:
    """An HL7 NM or a form's number as a FHIR decimal; None when it is not a finite number."""
    try:
        value = float(number)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    whole = value.is_integer() and "." not in number and abs(value) < _EXACT
    return int(value) if whole else value
