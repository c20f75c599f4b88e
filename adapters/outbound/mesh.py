"""MESH out: the referral, or its Task back to the referrer, as the file a receiver's workflow takes,
and what MESH's tracking says of a sent message. Translation only.

    payload    referral                                 status change (Task)
    bars-json  BaRS servicerequest-request Bundle        BaRS servicerequest-response Bundle with the Task
    bars-xml   the same Bundle as FHIR XML               the same as FHIR XML
    hl7v2      REF^I12                                   RRI^I12

Every copy of one event is the same file: the Bundle id is the event id and MSH-10 is derived from
it, as over HTTP and MLLP, and `Mex-LocalID` carries the event id, so a receiver can tell a resend
from a new referral. Tracking: `acknowledged` is downloaded (delivered); `undeliverable` or `error`
(expired unread, or refused by MESH) fails, retriable; anything else is still on its way.
Must not: talk to MESH, retry, record or commit anything (gateway/mesh/outbox.py does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from adapters.hl7v2 import encode as hl7v2
from adapters.hl7v2.tables import Hl7Tables
from adapters.outbound import fhir_http
from adapters.outbound.hl7v2_mllp import control_id
from adapters.outbound.receipt import Outgoing, Receipt
from gateway.errors import DeliveryFailed

FORMAT = "mesh"
_MEDIA_TYPES = {
    "bars-json": "application/fhir+json",
    "bars-xml": "application/fhir+xml",
    "hl7v2": "x-application/hl7-v2+er7",
}
DELIVERED, FAILED = {"acknowledged"}, {"undeliverable", "error"}


@dataclass(frozen=True)
class File:
    body: bytes
    content_type: str
    filename: str


def encode(outgoing: Outgoing, payload: str, mailbox: str, hl7: Hl7Tables) -> File:
    """The file for one event, in the receiver's payload format."""
    if payload == "hl7v2":
        msh_10 = control_id(outgoing.event_id)
        if outgoing.is_status:
            assert outgoing.referral is not None
            text = hl7v2.encode_rri_i12(outgoing, json.loads(outgoing.referral), msh_10, hl7)
        else:
            text = hl7v2.encode_ref_i12(outgoing, msh_10, hl7)
        return File(text.encode(), _MEDIA_TYPES[payload], f"{msh_10}.hl7")
    if payload not in ("bars-json", "bars-xml"):
        raise DeliveryFailed(f"MESH payload '{payload}' is not one this gateway writes", retriable=False)
    destination = f"urn:nhs-mesh:{mailbox}"
    if outgoing.is_status:
        bundle = fhir_http.task_message(outgoing, destination)
    else:
        bundle = fhir_http.message_bundle(_for_receiver(outgoing), destination)
    extension = "xml" if payload == "bars-xml" else "json"
    return File(_serialised(bundle, payload), _MEDIA_TYPES[payload], f"{outgoing.event_id}.{extension}")


def referral_id(outgoing: Outgoing) -> str | None:
    """The referral an event is (or, for a Task change, is about): a receiver's answer names the event."""
    resource = json.loads(outgoing.referral if outgoing.is_status and outgoing.referral else outgoing.resource)
    found = resource.get("id")
    return str(found) if found else None


def _for_receiver(outgoing: Outgoing) -> Outgoing:
    """The ServiceRequest as a receiver gets it: our referral id as an identifier, so it can name it back."""
    sr = fhir_http.for_receiver(outgoing.resource)
    sr["id"] = json.loads(outgoing.resource).get("id")
    return Outgoing(
        resource=json.dumps(sr),
        event_id=outgoing.event_id,
        reason=outgoing.reason,
        correlation_id=outgoing.correlation_id,
        sent_at=outgoing.sent_at,
    )


def _serialised(bundle: dict[str, Any], payload: str) -> bytes:
    if payload == "bars-xml":
        xml: object = Bundle.model_validate(bundle).model_dump_xml()  # bytes, though typed as str
        return xml if isinstance(xml, bytes) else str(xml).encode()
    return json.dumps(bundle, separators=(",", ":"), ensure_ascii=False).encode()


def tracked(tracking: dict[str, Any], recipient: str) -> Receipt | None:
    """What MESH's tracking of a sent message means: delivered, failed (raised), or None: not yet."""
    status = str(tracking.get("status") or "").lower()
    if status in DELIVERED:
        when = tracking.get("status_timestamp") or ""
        return Receipt(f"MESH {tracking.get('message_id')} downloaded by {recipient} {when}".strip())
    if status in FAILED:
        why = tracking.get("status_description") or status
        raise DeliveryFailed(f"MESH reports message {tracking.get('message_id')} to {recipient} {status}: {why}")
    return None
