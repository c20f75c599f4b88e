"""The referral's FHIR Task: created with the referral, moved along by its receiver.

Pure rules: the initial Task for a ServiceRequest, and whether a proposed Task is an allowed next
step (schemas/task-lifecycle.json). Only the receiver-owned elements may change; what the Task is
about (focus, for, requester, owner) may not.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.task import Task
from pydantic import BaseModel

from gateway.canonical import patient, systems
from gateway.errors import Conflict, InvalidReferral, Issue

_TASK_NAMESPACE = uuid.UUID("b3a0f0d6-40a5-4c8e-9f0e-6ad1f4b2c9a7")
#: Elements a receiver moves; everything else stays as the gateway created it.
MUTABLE = ("status", "statusReason", "businessStatus", "executionPeriod", "note", "output", "lastModified", "meta")


class Lifecycle(BaseModel):
    version: str
    initial: str
    transitions: dict[str, list[str]]
    reason_required: list[str]


@cache
def lifecycle(schemas_dir: Path) -> Lifecycle:
    return Lifecycle.model_validate(json.loads((schemas_dir / "task-lifecycle.json").read_text()))


def task_id_for(referral_id: str) -> str:
    return str(uuid.uuid5(_TASK_NAMESPACE, referral_id))


def initial_task(sr: dict[str, Any], status: str) -> dict[str, Any]:
    """The new Task for a stored ServiceRequest (its FHIR JSON), built as JSON: this runs on every
    accepted referral, and every element is copied from the already-validated ServiceRequest."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds")
    focus = {"reference": f"ServiceRequest/{sr['id']}"}
    task = {
        "resourceType": "Task",
        "id": task_id_for(sr["id"]),
        "meta": {"versionId": "1", "lastUpdated": at},
        "identifier": sr.get("identifier"),
        "basedOn": [focus],
        "status": status,
        "intent": "order",
        "priority": sr.get("priority"),
        "focus": focus,
        "for": _subject(sr),
        "authoredOn": at,
        "lastModified": at,
        "requester": sr.get("requester"),
        "owner": (sr.get("performer") or [None])[0],
    }
    return {k: v for k, v in task.items() if v is not None}


def _subject(sr: dict[str, Any]) -> dict[str, Any]:
    """The Task's `for`: the ServiceRequest's subject, except that a `#contained` Patient (one still to
    be traced) means nothing outside the ServiceRequest, so the Task names it by its untraced key."""
    subject: dict[str, Any] = sr["subject"]
    if not str(subject.get("reference", "")).startswith("#"):
        return subject
    key = {"system": systems.UNTRACED_PATIENT, "value": patient.untraced_key(sr["id"])}
    return {"type": "Patient", "identifier": key}


def next_version(current: Task, proposed: Task, rules: Lifecycle) -> Task:
    """The Task after the receiver's change, or `Conflict` / `InvalidReferral` saying why not."""
    _check_fixed(current, proposed)
    if proposed.status != current.status:
        allowed = rules.transitions.get(str(current.status), [])
        if proposed.status not in allowed:
            raise Conflict(
                f"a {current.status} Task cannot become {proposed.status}",
                Issue(f"allowed next: {', '.join(allowed) or 'none (final)'}", "Task.status", "business-rule"),
            )
        if proposed.status in rules.reason_required and proposed.statusReason is None:
            raise InvalidReferral(
                f"a {proposed.status} Task needs a statusReason",
                Issue("give the reason", "Task.statusReason", "required"),
            )
    updated = current.model_copy(deep=True)
    for name in MUTABLE:
        setattr(updated, name, getattr(proposed, name))
    updated.lastModified = datetime.now(UTC)
    updated.meta = Meta(
        versionId=str(int(current.meta.versionId if current.meta and current.meta.versionId else 1) + 1),
        lastUpdated=datetime.now(UTC),
    )
    return updated


def _check_fixed(current: Task, proposed: Task) -> None:
    fixed = ("focus", "for_fhir", "requester", "owner", "intent")
    for name in fixed:
        mine, theirs = getattr(current, name), getattr(proposed, name)
        if theirs is not None and _dump(theirs) != _dump(mine):
            element = "for" if name == "for_fhir" else name
            raise Conflict(
                f"Task.{element} cannot change",
                Issue("only the status elements may change", f"Task.{element}", "business-rule"),
            )


def receiver_state(task: Task) -> dict[str, object]:
    """The elements a receiver moves, for telling a real change from a repeat."""
    return {name: _dump(getattr(task, name)) for name in MUTABLE if name not in ("lastModified", "meta")}


def _dump(value: object) -> object:
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value.model_dump(exclude_none=True) if isinstance(value, BaseModel) else value
