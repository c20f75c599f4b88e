"""BaRS `NHSD-Target-Identifier`: the receiving service a message is addressed to, as base64-encoded
JSON `{"system": ..., "value": ...}` (a DoS service id, or an Endpoint Catalogue id).

A system URI variant is read as its canonical form and reported as a warning, as in a body.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from gateway.canonical import uris
from gateway.errors import Issue, MalformedInput

HEADER = "NHSD-Target-Identifier"


@dataclass(frozen=True)
class Target:
    system: str
    value: str


def decode(header: str | None) -> tuple[Target | None, list[Issue]]:
    """The target the header names (None without the header) and any warnings; `MalformedInput` when
    it is not base64 JSON with a system and a value."""
    if header is None or not header.strip():
        return None, []
    try:
        data = json.loads(base64.b64decode(header.strip(), validate=True))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise _bad("it is not base64-encoded JSON") from exc
    system, value = (data.get("system"), data.get("value")) if isinstance(data, dict) else (None, None)
    if not isinstance(system, str) or not isinstance(value, str) or not system or not value:
        raise _bad("the JSON needs a string system and a string value")
    canonical = uris.canonical(system)
    warnings = (
        []
        if canonical == system
        else [Issue(f"system '{system}' was read as '{canonical}'", HEADER, "value", "warning")]
    )
    return Target(canonical, value.strip()), warnings


def encode(system: str, value: str) -> str:
    """The header value for a target (what a sender, or a test, puts in the header)."""
    return base64.b64encode(json.dumps({"system": system, "value": value}).encode()).decode()


def _bad(why: str) -> MalformedInput:
    return MalformedInput(
        f"{HEADER} must be base64-encoded JSON with a system and a value: {why}",
        Issue(f"{HEADER} cannot be read: {why}", HEADER, "value"),
    )
