"""A BaRS `servicerequest-response` message (the receiver answering the referrer, roles reversed) to
the Task change it asks for, and the names of the referral it answers.

Which referral: the MessageHeader's focus.
- a ServiceRequest (BaRS): its `identifier`s (the referral's business identifier, or the gateway's
  own id under `systems.REFERRAL_ID`, which delivery adds) and its `basedOn` (`ServiceRequest/<id>`,
  or a logical reference by identifier);
- a Task (what this gateway itself sends back): its `basedOn`, `focus` and `identifier`s.

What became of it, the first that applies (BaRS carries the outcome in the resources, not in a code):
1. a Task in the Bundle: its status, businessStatus and statusReason, as they are;
2. an Appointment with status `noshow`: did not attend, so the Task is `cancelled`, its statusReason
   the appointment status `noshow` ("Did not attend");
3. an Encounter whose reasonCode is a BaRS rejected reason: `rejected`, with that reason;
4. the ServiceRequest's status: `revoked` is cancelled by the receiver, `completed`, `on-hold`, and
   `active` (taken on) is accepted.

Must not: look the referral up or decide whether the move is allowed (the status spine does both).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.resource import Resource

from adapters.inbound.fhir.messaging import Message, sender
from gateway.canonical import systems
from gateway.canonical.response import InboundResponse, Outcome
from gateway.errors import InvalidReferral, Issue

REJECTED_REASONS = "https://fhir.nhs.uk/CodeSystem/rejected-reasons-bars"
APPOINTMENT_STATUS = "http://hl7.org/fhir/appointmentstatus"
_BY_SERVICE_REQUEST_STATUS = {
    "revoked": "cancelled",
    "completed": "completed",
    "on-hold": "on-hold",
    "active": "accepted",
}
_DID_NOT_ATTEND = CodeableConcept(
    coding=[Coding(system=APPOINTMENT_STATUS, code="noshow", display="No Show")], text="Did not attend"
)


def from_message(message: Message, request_id: str, digest: str | None = None) -> InboundResponse:
    focus = _focus(message)
    ids, identifiers = _names(focus)
    if not ids and not identifiers:
        raise InvalidReferral(
            "the response names no referral",
            Issue("give the ServiceRequest's identifier or basedOn", "MessageHeader.focus[0].reference", "required"),
        )
    return InboundResponse(
        referral_ids=tuple(ids),
        identifiers=tuple(identifiers),
        outcome=_outcome(message, focus),
        sender=sender(message.header),
        message_id=request_id,
        digest=digest,
        names=[*(f"ServiceRequest/{i}" for i in ids), *(f"{s}|{v}" for s, v in identifiers)],
    )


def _focus(message: Message) -> Resource:
    ref = message.header.focus[0].reference if message.header.focus else None
    target = message.entries.get(ref) if ref else None
    if target is None or target.get_resource_type() not in ("ServiceRequest", "Task"):
        raise InvalidReferral(
            "MessageHeader.focus must reference the ServiceRequest (or Task) this response is about",
            Issue(
                f"focus '{ref}' does not resolve to one in this Bundle", "MessageHeader.focus[0].reference", "not-found"
            ),
        )
    return target


def _names(focus: Resource) -> tuple[list[str], list[tuple[str, str]]]:
    """The gateway ids and the business identifiers a focus resource names its referral by: its own
    identifiers (a Task carries its referral's) and those its basedOn / focus references give."""
    data: dict[str, Any] = focus.model_dump(mode="json", by_alias=True)
    refs = [*data.get("basedOn", []), *([data["focus"]] if isinstance(data.get("focus"), dict) else [])]
    ids = [r["reference"].split("/_history/")[0].rsplit("/", 1)[-1] for r in refs if _is_service_request(r)]
    identifiers: list[tuple[str, str]] = []
    for ident in [*data.get("identifier", []), *(r["identifier"] for r in refs if "identifier" in r)]:
        if ident.get("system") == systems.REFERRAL_ID and ident.get("value"):
            ids.append(ident["value"])
        elif ident.get("system") and ident.get("value"):
            identifiers.append((ident["system"], ident["value"]))
    return list(dict.fromkeys(ids)), list(dict.fromkeys(identifiers))


def _is_service_request(ref: dict[str, Any]) -> bool:
    target = str(ref.get("reference") or "").split("/_history/")[0]
    return "ServiceRequest/" in target


def _outcome(message: Message, focus: Resource) -> Outcome:
    task = focus if focus.get_resource_type() == "Task" else next(_resources(message, "Task"), None)
    if task is not None:
        data = cast(Any, task)
        return Outcome(str(data.status), data.businessStatus, data.statusReason, "the Task in the response")
    if any(getattr(a, "status", None) == "noshow" for a in _resources(message, "Appointment")):
        return Outcome("cancelled", reason=_DID_NOT_ATTEND, how="an Appointment with status noshow")
    rejected = _rejected_reason(message)
    if rejected is not None:
        return Outcome("rejected", None, rejected, "an Encounter with a BaRS rejected reason")
    return _by_service_request(focus)


def _rejected_reason(message: Message) -> CodeableConcept | None:
    for encounter in _resources(message, "Encounter"):
        for concept in getattr(encounter, "reasonCode", None) or []:
            if any(c.system == REJECTED_REASONS for c in concept.coding or []):
                return cast(CodeableConcept, concept)
    return None


def _by_service_request(focus: Resource) -> Outcome:
    status = str(getattr(focus, "status", None))
    mapped = _BY_SERVICE_REQUEST_STATUS.get(status)
    if mapped is None:
        raise InvalidReferral(
            "the response says nothing the referral's Task can show",
            Issue(
                f"no Task, no noshow Appointment, no rejected reason, and ServiceRequest.status '{status}'",
                "ServiceRequest.status",
                "value",
            ),
        )
    reason = CodeableConcept(text="Revoked by the receiving service") if mapped == "cancelled" else None
    return Outcome(mapped, None, reason, f"the ServiceRequest's status {status}")


def _resources(message: Message, kind: str) -> Iterator[Resource]:
    seen: set[int] = set()
    for resource in message.entries.values():
        if resource.get_resource_type() == kind and id(resource) not in seen:
            seen.add(id(resource))
            yield resource
