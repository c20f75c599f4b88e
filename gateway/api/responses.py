"""The synchronous response to $process-message: a `message` Bundle whose MessageHeader answers the
request (response.identifier = the request's X-Request-Id, code ok) and carries what it changed: the
referral for a request, its Task for a receiver's response."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from gateway.api import outcome
from gateway.canonical import systems
from gateway.canonical.referral import InboundReferral
from gateway.intake import Acceptance


def message_response(acceptance: Acceptance, inbound: InboundReferral) -> Bundle:
    """With warnings (what was read leniently), an OperationOutcome entry too, which
    MessageHeader.response.details names: how FHIR messaging carries the details of a response."""
    header_id = str(uuid.uuid4())
    sr_url = f"urn:uuid:{acceptance.referral_id}"
    bundle = _answer(header_id, inbound.message_id or header_id, sr_url, json.loads(acceptance.resource))
    if inbound.warnings:
        outcome_url = f"urn:uuid:{uuid.uuid4()}"
        details = outcome.accepted(acceptance.referral_id, inbound.warnings).model_dump(mode="json")
        bundle["entry"][0]["resource"]["response"]["details"] = {"reference": outcome_url}
        bundle["entry"].append({"fullUrl": outcome_url, "resource": details})
    return Bundle.model_validate(bundle)


def task_response(task: str, message_id: str) -> Bundle:
    """The answer to a `servicerequest-response`: the referral's Task as it now stands (FHIR JSON)."""
    resource = json.loads(task)
    return Bundle.model_validate(_answer(str(uuid.uuid4()), message_id, f"urn:uuid:{resource['id']}", resource))


def _answer(header_id: str, answers: str, focus_url: str, focus: dict[str, Any]) -> dict[str, Any]:
    """The message Bundle: a MessageHeader answering `answers` (ok), and the resource it focuses on."""
    return {
        "type": "message",
        "timestamp": datetime.now(UTC).isoformat(),
        "entry": [
            {
                "fullUrl": f"urn:uuid:{header_id}",
                "resource": {
                    "resourceType": "MessageHeader",
                    "id": header_id,
                    "eventCoding": {
                        "system": systems.BARS_MESSAGE_EVENTS,
                        "code": systems.BARS_EVENT_SERVICEREQUEST_RESPONSE,
                    },
                    "source": {"endpoint": "urn:referral-gateway"},
                    "response": {"identifier": answers, "code": "ok"},
                    "focus": [{"reference": focus_url}],
                },
            },
            {"fullUrl": focus_url, "resource": focus},
        ],
    }
