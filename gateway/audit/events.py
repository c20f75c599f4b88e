"""One audit record as a FHIR R4 AuditEvent (fhir.resources R4B, validated on construction).

    type       audit-event-type `rest` for the FHIR API; DICOM 110107 Import for HL7 v2 intake,
               110106 Export for a delivery, 110114 User Authentication for tokens and sign-in
    subtype    restful-interaction (create, read, vread, update, patch, search-type, ...) or the
               gateway's own action codes (delivery, replay, resubmit, token, sign-in, hl7-intake)
    action     C / R / U / D / E; outcome 0 success, 4 refused (the caller's doing), 8 failed (ours)
    agent      who (client id, user, HL7 sender; their organisation's ODS code), requestor, network address;
               for a delivery also the receiving service
    entity     what: the resource reference (ServiceRequest/..., Task/...), or the search query

`audit_json` builds the event as FHIR JSON, written as fhir.resources writes it; the trail stores that
directly: every record passes here, and one model build and dump per record cost more than the rest of
the audit write. `audit_event` is the same event as a validated fhir.resources AuditEvent, and the
tests hold the two together for every kind of record (tests/trust/test_audit_events.py). Values are
never empty strings (FHIR forbids them): an empty optional value is left out.

Pure: no I/O. Must not: decide whether to record (the spines do) or store (trail.py).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent

from gateway.audit.context import ACTOR_SYSTEMS, Actor
from gateway.canonical import systems

SUCCESS, REFUSED, FAILED = "0", "4", "8"
REST_INTERACTIONS = "http://hl7.org/fhir/restful-interaction"
GATEWAY_ACTIONS = "https://referral-gateway.nhs.example/CodeSystem/audit-action"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
_TYPES = {
    "rest": ("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "RESTful Operation"),
    "import": (DCM, "110107", "Import"),
    "export": (DCM, "110106", "Export"),
    "authentication": (DCM, "110114", "User Authentication"),
}
#: interaction → (event type, FHIR action code, subtype system)
INTERACTIONS: dict[str, tuple[str, str, str]] = {
    "create": ("rest", "C", REST_INTERACTIONS),
    "read": ("rest", "R", REST_INTERACTIONS),
    "vread": ("rest", "R", REST_INTERACTIONS),
    "history-instance": ("rest", "R", REST_INTERACTIONS),
    "search-type": ("rest", "E", REST_INTERACTIONS),
    "update": ("rest", "U", REST_INTERACTIONS),
    "patch": ("rest", "U", REST_INTERACTIONS),
    "delete": ("rest", "D", REST_INTERACTIONS),
    "operation": ("rest", "E", REST_INTERACTIONS),
    "hl7-intake": ("import", "C", GATEWAY_ACTIONS),
    "delivery": ("export", "R", GATEWAY_ACTIONS),
    "replay": ("rest", "E", GATEWAY_ACTIONS),
    "resubmit": ("rest", "E", GATEWAY_ACTIONS),
    "token": ("authentication", "E", GATEWAY_ACTIONS),
    "sign-in": ("authentication", "E", GATEWAY_ACTIONS),
}


@dataclass(frozen=True)
class Entity:
    """What an event is about, with the referral's organisations (who may read the event)."""

    reference: str  # ServiceRequest/<id>, Task/<id>, AuditEvent, ...
    requester: str | None = None
    performer: str | None = None
    query: str | None = None  # a search's query string


@dataclass(frozen=True)
class AuditRecord:
    id: str
    recorded: datetime
    interaction: str  # a key of INTERACTIONS
    outcome: str  # SUCCESS, REFUSED, FAILED
    actor: Actor
    entities: tuple[Entity, ...] = ()
    description: str | None = None
    recipient: str | None = None  # a delivery's receiving service


def audit_event(record: AuditRecord) -> AuditEvent:
    return AuditEvent.model_validate(audit_json(record))


def audit_json(record: AuditRecord) -> dict[str, Any]:
    kind, action, subtype_system = INTERACTIONS[record.interaction]
    system, code, display = _TYPES[kind]
    data: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": record.id,
        "type": {"system": system, "code": code, "display": display},
        "subtype": [{"system": subtype_system, "code": record.interaction}],
        "action": action,
        "recorded": record.recorded.isoformat().replace("+00:00", "Z"),
        "outcome": record.outcome,
        "outcomeDesc": record.description,
        "agent": _agents(record),
        "source": {
            "site": "referral-gateway",
            "observer": {"display": "Referral Gateway"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}],
        },
        "entity": [_entity(e) for e in record.entities] or None,
    }
    return {k: v for k, v in data.items() if v}


def _agents(record: AuditRecord) -> list[dict[str, Any]]:
    actor = record.actor
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
        "who": {"identifier": {"system": ACTOR_SYSTEMS[actor.kind], "value": actor.id}, "display": actor.id},
        "requestor": True,
    }
    if actor.address:
        agent["network"] = {"address": actor.address, "type": "2"}
    agents = [agent]
    if actor.ods:
        agents.append(_organisation(actor.ods))
    if record.recipient:
        agents.append(
            {
                "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
                "who": {"identifier": {"system": ACTOR_SYSTEMS["system"], "value": record.recipient}},
                "requestor": False,
            }
        )
    return agents


def _organisation(ods: str) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass", "code": "PROV"}]},
        "who": {"identifier": {"system": systems.ODS_CODE, "value": ods}},
        "requestor": False,
    }


def _entity(entity: Entity) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
    }
    if entity.query is not None:
        if entity.query:
            data["query"] = base64.b64encode(entity.query.encode()).decode()
        data["description"] = entity.reference
    else:
        data["what"] = {"reference": entity.reference}
    return data
