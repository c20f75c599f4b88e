"""The audit trail stores each AuditEvent as the JSON `audit_json` builds, without a fhir.resources
model per record: every kind of record must be a valid R4 AuditEvent that dumps to that very JSON."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from gateway.audit.context import ACTOR_SYSTEMS, Actor
from gateway.audit.events import FAILED, INTERACTIONS, REFUSED, SUCCESS, AuditRecord, Entity, audit_event, audit_json

REFERRAL = Entity("ServiceRequest/7d1b3f0e-0000-4000-8000-000000000001", "A81001", "R1A14")
TASK = Entity("Task/7d1b3f0e-0000-4000-8000-000000000002", "A81001", None)
SEARCH = Entity("ServiceRequest", query="patient=9434765919&status=active")
ACTORS = [
    Actor("REFERRAL-APP^A81001", "hl7-sender", None, "127.0.0.1"),
    Actor("partner-client", "client", "A81001", "10.0.0.7"),
    Actor("dev", "person", "R1A14"),
    Actor("referral-gateway", "system"),
    Actor("anonymous", "unknown", None, "::1"),
]
ENTITIES = [(), (REFERRAL,), (TASK, REFERRAL), (SEARCH, REFERRAL), (Entity("AuditEvent", query=""),)]


def record(interaction: str, actor: Actor, entities: tuple[Entity, ...], **more: object) -> AuditRecord:
    at = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)
    return AuditRecord(str(uuid.uuid4()), at, interaction, SUCCESS, actor, entities, **more)  # type: ignore[arg-type]


@pytest.mark.parametrize("interaction", sorted(INTERACTIONS))
@pytest.mark.parametrize("actor", ACTORS, ids=lambda a: a.kind)
def test_every_kind_of_record_is_a_valid_audit_event_dumping_to_its_json(interaction: str, actor: Actor) -> None:
    for entities in ENTITIES:
        rec = record(interaction, actor, entities, description="accepted", recipient="msk-pain")
        assert json.loads(audit_event(rec).model_dump_json()) == audit_json(rec)


@pytest.mark.parametrize("outcome", [SUCCESS, REFUSED, FAILED])
def test_outcomes_and_empty_descriptions_are_valid(outcome: str) -> None:
    at = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
    for description in (None, "", "MSH-4 'X' is not in MLLP_SENDERS"):
        rec = AuditRecord(str(uuid.uuid4()), at, "hl7-intake", outcome, ACTORS[0], (REFERRAL,), description)
        assert json.loads(audit_event(rec).model_dump_json()) == audit_json(rec)


def test_the_actor_and_what_the_event_is_about_are_in_it() -> None:
    data = audit_json(record("hl7-intake", ACTORS[0], (REFERRAL,), description="accepted"))
    who = data["agent"][0]["who"]["identifier"]
    assert (who["system"], who["value"]) == (ACTOR_SYSTEMS["hl7-sender"], "REFERRAL-APP^A81001")
    assert data["agent"][0]["network"]["address"] == "127.0.0.1"
    assert data["entity"][0]["what"]["reference"] == REFERRAL.reference
    assert data["recorded"] == "2026-11-23T10:00:00.123456Z"
