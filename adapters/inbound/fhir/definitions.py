"""The BaRS messages the gateway takes, as FHIR MessageDefinitions (schemas/messaging/
message-definitions.json): loaded once into fhir.resources models and checked at load, searched by
`GET /fhir/MessageDefinition`, listed by the CapabilityStatement, and used to check that a message
carries the resources its definition requires (each `focus` with its min..max), every miscount at once.

Which definition a message answers to: the one its `MessageHeader.definition` names, if it is one of
these; else the first for its event. Must not: know what the resources mean (the messaging and
response adapters do).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import cast

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.messagedefinition import MessageDefinition

from adapters.inbound.fhir.messaging import EVENTS, Message
from gateway.errors import InvalidReferral, Issue

PATH = Path("messaging") / "message-definitions.json"


@cache
def load(schemas_dir: Path) -> tuple[MessageDefinition, ...]:
    """Every definition, validated: a broken file fails the gateway's start, not a sender's message."""
    bundle = Bundle.model_validate(json.loads((schemas_dir / PATH).read_text()))
    found = tuple(cast(MessageDefinition, e.resource) for e in bundle.entry or [])
    if any(d.get_resource_type() != "MessageDefinition" or not d.id or not d.url for d in found):
        raise ValueError(f"{PATH} must hold MessageDefinitions, each with an id and a url")
    missing = set(EVENTS) - {event_of(d) for d in found}
    if missing:
        raise ValueError(f"{PATH} defines no message for {', '.join(sorted(missing))}")
    return found


def event_of(definition: MessageDefinition) -> str:
    return str(getattr(definition.eventCoding, "code", ""))


def contexts(definition: MessageDefinition) -> set[str]:
    """The use cases a definition serves, as `code` and `system|code`."""
    found: set[str] = set()
    for use in definition.useContext or []:
        for coding in getattr(use.valueCodeableConcept, "coding", None) or []:
            found.update({str(coding.code), f"{coding.system}|{coding.code}"})
    return found


def search(definitions: Iterable[MessageDefinition], criteria: list[tuple[str, str]]) -> list[MessageDefinition]:
    """Those matching every criterion: context (use case), event, url, name, status; a value may
    list alternatives with commas, as FHIR token searches do."""
    return [d for d in definitions if all(_matches(d, name, value.split(",")) for name, value in criteria)]


def _matches(definition: MessageDefinition, name: str, values: list[str]) -> bool:
    if name == "context":
        return bool(contexts(definition) & set(values))
    if name == "event":
        event = event_of(definition)
        system = getattr(definition.eventCoding, "system", "")
        return any(v in (event, f"{system}|{event}") for v in values)
    return str(getattr(definition, name, "")) in values


def check(message: Message, definitions: tuple[MessageDefinition, ...]) -> MessageDefinition:
    """The definition the message answers to; `InvalidReferral` naming each resource it has too few
    or too many of."""
    definition = _for(message, definitions)
    counts = Counter(e.resource.get_resource_type() for e in message.bundle.entry or [] if e.resource)
    found = [
        _miscount(definition, str(f.code), f.min or 0, f.max or "*", counts[str(f.code)])
        for f in definition.focus or []
    ]
    issues = [issue for issue in found if issue is not None]
    if issues:
        raise InvalidReferral(f"the message does not carry what {definition.url} requires", *issues)
    return definition


def _miscount(definition: MessageDefinition, kind: str, least: int, most: str, count: int) -> Issue | None:
    if least <= count and (most == "*" or count <= int(most)):
        return None
    return Issue(
        f"a {event_of(definition)} message carries {least}..{most} {kind}; this one has {count}",
        "Bundle.entry",
        "required" if count < least else "structure",
    )


def _for(message: Message, definitions: tuple[MessageDefinition, ...]) -> MessageDefinition:
    named = message.header.definition
    for definition in definitions:
        if named and definition.url == named and event_of(definition) == message.event:
            return definition
    return next(d for d in definitions if event_of(d) == message.event)
