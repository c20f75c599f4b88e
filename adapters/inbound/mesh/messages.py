"""MESH messages to the canonical model, and the answers a refused one is given: translation only.

    workflow format  the message's body                            what comes out
    bars-json / xml  a BaRS message Bundle, servicerequest-request   → InboundReferral (the BaRS rules)
                     on `_ACK`: servicerequest-response with a Task  → that Task
                     on `_ACK`: a refusal (response.code fatal-error) → the message refused, the reasons
    hl7v2            an HL7 v2 file: REF^I12                         → InboundReferral (the REF^I12 mapping)
                     on `_ACK`: RRI^I12                              → a status report (the RRI^I12 mapping)

The MESH message id, with the mailbox that sent it, becomes the referral's message id, so the store's
processed-messages check takes a message fetched a second time (the gateway stopped after the commit,
before MESH heard the acknowledgement) as the referral it already made.
A refusal goes back as the workflow's own format: a BaRS response message (MessageHeader with
`response.code` fatal-error, then an OperationOutcome with every issue), or HL7 ACKs with ERR segments.
Must not: call the intake, store, send or acknowledge anything (gateway/mesh does).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.messageheader import MessageHeader
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task

from adapters.hl7v2 import ack, parser, ref_i12
from adapters.hl7v2.header import Header
from adapters.hl7v2.parser import Message
from adapters.hl7v2.tables import Hl7Tables, MessageType
from adapters.inbound.fhir import messaging
from adapters.inbound.fhir.parse import parse
from gateway.canonical import systems
from gateway.canonical.referral import InboundReferral
from gateway.errors import GatewayError, Issue, MalformedInput
from gateway.settings import Hl7SenderOrganisations

log = logging.getLogger(__name__)
CHANNEL = "mesh"
FHIR_JSON, FHIR_XML, HL7_V2 = "application/fhir+json", "application/fhir+xml", "x-application/hl7-v2+er7"
Format = Literal["bars-json", "bars-xml", "hl7v2"]
MEDIA_TYPES: dict[str, str] = {"bars-json": FHIR_JSON, "bars-xml": FHIR_XML, "hl7v2": HL7_V2}
BARS_ERROR_CODES = "https://fhir.nhs.uk/CodeSystem/http-error-codes"
_ANSWER_NAMESPACE = uuid.UUID("3b0f5a52-3f0e-4f7e-9a61-1f2d7c9e4a10")


def message_key(sender_mailbox: str, message_id: str) -> str:
    """The processed-messages key of one MESH message: the same on every fetch of it."""
    return f"mesh:{sender_mailbox}:{message_id}"


def bars_referral(body: bytes, fmt: Format, key: str, correlation_id: str) -> InboundReferral:
    inbound = messaging.from_bundle(body, fhir_media_type(body, fmt), key, correlation_id)
    return replace(inbound, channel=CHANNEL)


def fhir_media_type(body: bytes, fmt: Format) -> str:
    """The workflow's FHIR format, unless the body plainly is the other one (read it, and say so)."""
    first = body.lstrip()[:1]
    found = FHIR_XML if first == b"<" else FHIR_JSON if first in (b"{", b"[") else MEDIA_TYPES[fmt]
    if found != MEDIA_TYPES[fmt]:
        log.warning("MESH %s workflow carried %s; read as that", fmt, found)
    return found


def hl7_message(body: bytes) -> Message:
    """An HL7 v2 file's one message; files written on other systems end segments with LF or CRLF."""
    text = body.decode("utf-8", errors="replace").replace("\r\n", "\r").replace("\n", "\r").strip()
    return parser.parse(text)


def hl7_referral(
    message: Message,
    head: Header,
    kind: MessageType,
    hl7: Hl7Tables,
    key: str,
    correlation_id: str,
    organisations: Hl7SenderOrganisations | None = None,
) -> InboundReferral:
    """A REF^I12 whose header the caller read and checked; `organisations`: the sender's, for one without PRD."""
    inbound = ref_i12.to_referral(message, head, kind, hl7, organisations, correlation_id)
    return replace(inbound, channel=CHANNEL, message_id=key)


@dataclass(frozen=True)
class BarsAnswer:
    """A receiver's BaRS response: its Task, or a refusal of the message it answers (fatal-error)."""

    task: Task | None
    answering: str | None = None  # MessageHeader.response.identifier: the id of the message answered
    refusal: str | None = None  # the refusal's reasons, from its OperationOutcome


def bars_answer(body: bytes, fmt: Format) -> BarsAnswer:
    """The Task a BaRS servicerequest-response carries, or the refusal it says (response.code fatal-error)."""
    bundle = cast(Bundle, parse(body, fhir_media_type(body, fmt), Bundle))
    resources = [e.resource for e in bundle.entry or [] if e.resource is not None]
    task = next((cast(Task, r) for r in resources if r.get_resource_type() == "Task"), None)
    if task is not None:
        return BarsAnswer(task)
    header = next((cast(MessageHeader, r) for r in resources if r.get_resource_type() == "MessageHeader"), None)
    response = header.response if header else None
    if response is not None and response.code == "fatal-error":
        outcomes = [cast(OperationOutcome, r) for r in resources if r.get_resource_type() == "OperationOutcome"]
        reasons = [i.diagnostics or (i.details.text if i.details else None) for o in outcomes for i in o.issue or []]
        refusal = "; ".join(r for r in reasons if r) or "refused by the receiver"
        return BarsAnswer(None, str(response.identifier), refusal)
    raise MalformedInput(
        "a BaRS response message must carry the Task it changes, or refuse the message it answers",
        Issue("no Task entry, and MessageHeader.response.code is not fatal-error", "Bundle.entry.resource", "required"),
    )


def task_referral(task: Task) -> str | None:
    """The gateway's referral id a receiver's Task names: our identifier on its focus, else basedOn."""
    focus = task.focus
    ident = getattr(focus, "identifier", None) if focus else None
    if ident is not None and ident.system == systems.REFERRAL_ID and ident.value:
        return str(ident.value)
    for ref in [focus, *(task.basedOn or [])]:
        text = str(getattr(ref, "reference", "") or "")
        if text.startswith("ServiceRequest/"):
            return text.removeprefix("ServiceRequest/")
    return None


def operation_outcome(error: GatewayError) -> OperationOutcome:
    """Every issue of a refusal at its FHIRPath, with the BaRS error code saying whose fault it is
    (the same shape as the HTTP surface's OperationOutcome)."""
    details = {"coding": [{"system": BARS_ERROR_CODES, "code": error.bars_code}], "text": error.message}
    issues = [
        {
            "severity": issue.severity,
            "code": issue.code or error.issue_code,
            "details": details,
            "diagnostics": issue.diagnostics,
            **({"expression": [issue.expression]} if issue.expression else {}),
        }
        for issue in error.issues
    ]
    return OperationOutcome.model_validate({"resourceType": "OperationOutcome", "issue": issues})


def bars_refusal(fmt: Format, answering: str, error: GatewayError) -> bytes:
    """A BaRS response message refusing the message MESH knows as `answering` (its MESH message id)."""
    outcome = operation_outcome(error)
    header_id = str(uuid.uuid5(_ANSWER_NAMESPACE, answering))
    header: dict[str, Any] = {
        "resourceType": "MessageHeader",
        "id": header_id,
        "eventCoding": {"system": systems.BARS_MESSAGE_EVENTS, "code": systems.BARS_EVENT_SERVICEREQUEST_RESPONSE},
        "source": {"endpoint": "urn:referral-gateway"},
        "response": {"identifier": answering, "code": "fatal-error", "details": {"reference": "urn:uuid:outcome"}},
    }
    bundle = Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "id": header_id,
            "type": "message",
            "entry": [
                {"fullUrl": f"urn:uuid:{header_id}", "resource": header},
                {"fullUrl": "urn:uuid:outcome", "resource": outcome.model_dump(mode="json")},
            ],
        }
    )
    if fmt == "bars-xml":
        return xml_bytes(bundle)
    return json.dumps(bundle.model_dump(mode="json"), separators=(",", ":")).encode()


def hl7_accepted(head: Header, hl7: Hl7Tables) -> bytes | None:
    """The AA (or CA) for a committed HL7 v2 referral; None when an enhanced-mode sender asked for none."""
    answers = ack.accepted(head, hl7)
    return "\r".join(answers).encode() if answers else None


def hl7_refusal(error: GatewayError, head: Header | None, hl7: Hl7Tables) -> bytes:
    """HL7 ACKs with ERR segments; an AR with no MSA-2 when the file was not HL7 at all."""
    answers = ack.failed(head, error, hl7) if head is not None else [ack.unreadable(error, hl7)]
    if not answers:  # an enhanced-mode sender that asked for no ACKs is still told of a refusal over MESH
        answers = [ack.unreadable(error, hl7)]
    return "\r".join(answers).encode()


def xml_bytes(resource: Resource) -> bytes:
    """FHIR XML of a model (fhir.resources returns bytes, typed as str)."""
    xml: object = resource.model_dump_xml()
    return xml if isinstance(xml, bytes) else str(xml).encode()
