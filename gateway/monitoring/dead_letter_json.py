"""A dead letter as people and scripts read it (the monitor's JSON API, its pages and `referral-gateway
dlq`): its facts, its state and, masked unless allowed, the event itself. Pure: no I/O.

Below both faces, so the CLI needs no HTTP module. Must not: decide who may see it unmasked
(`monitoring.access` does).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from gateway.monitoring.dead_letters import DeadLetter, Replayed
from gateway.observability.masking import mask, mask_key, scrub_text


def dead_letter_json(letter: DeadLetter, unmasked: bool, with_message: bool = True) -> dict[str, Any]:
    """A dead letter for people and scripts: its facts, its state, and (masked) the event itself."""
    data: dict[str, Any] = {
        "id": letter.id,
        "referral_id": letter.referral_id,
        "at": letter.at,
        "receiver": letter.receiver,
        "reason": letter.reason if unmasked else scrub_text(letter.reason),
        "details": letter.details if unmasked else scrub_text(letter.details),
        "attempts": letter.attempts,
        "event_id": letter.event_id,
        "event_type": letter.event_type,
        "original": letter.original,
        "state": letter.state,
        "delivery_status": letter.delivery_status,
        "actions": [asdict(a) for a in letter.actions],
    }
    if with_message:
        data["key"] = letter.key if unmasked else mask_key(letter.key)
        data["headers"] = letter.headers if unmasked else {k: scrub_text(v) for k, v in letter.headers.items()}
        data["value"] = _value(letter.value, unmasked)
        data["masked"] = not unmasked
    return data


def replay_summary(done: list[Replayed]) -> str:
    queued = sum(r.queued for r in done)
    before = len(done) - queued
    text = f"{queued} replay{'s' if queued != 1 else ''} queued for delivery"
    return text + (f"; {before} had been queued before (nothing more was sent)" if before else "")


def _value(raw: str, unmasked: bool) -> Any:
    try:
        value = json.loads(raw)
    except ValueError:
        return raw if unmasked else scrub_text(raw)
    return value if unmasked else mask(value)
