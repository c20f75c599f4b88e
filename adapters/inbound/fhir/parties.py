"""Who the parties of a referral are: the patient, the requester and the performer, resolved from the
shapes NHS systems send (BaRS, UK Core) into the canonical ServiceRequest.

    subject    the NHS number; or, with none, the contained Patient (name, birth date, postcode or
               address) flagged "NHS number to be traced" (gateway/canonical/patient.py)
    requester  the organisation's ODS code; the individual (Practitioner: SDS user id, GMC, GMP, NMC,
               HCPC) and their role kept as a contained PractitionerRole and Practitioner, named by
               the `requesting-practitioner` extension
    performer  the organisation's ODS code first; the service (HealthcareService: DoS id or the
               directory's id) after it, as a contained HealthcareService

The requester's organisation is looked for in this order, the first that gives one wins: the
reference's own identifier; the Organization it references; the PractitionerRole's organization; a
PractitionerRole in the Bundle for the Practitioner it references; MessageHeader.sender. The
performer's: the reference's identifier; the Organization; the HealthcareService's providedBy (or
the directory's entry for the service); the service `NHSD-Target-Identifier` names; each
MessageHeader.destination.receiver. How each party was found is returned for the referral's history.
Two sources that both name an organisation and disagree are refused, never chosen between.

Pure: the directory is asked only through `Context.service_owner`. The performer is resolved in
performers.py, the subject in subject.py; references.resolve runs the three. Must not: route (the router
decides what a named service means), or report one problem when there are several.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from adapters.inbound.fhir.parse import invalid
from adapters.inbound.fhir.targets import Target
from gateway.canonical import systems
from gateway.errors import Issue

Index = dict[str, Resource]
#: (system, value) of a service → the ODS code of the organisation that provides it, from the directory.
ServiceOwner = Callable[[str, str], str | None]
_ORG_SYSTEMS = (systems.ODS_CODE, systems.ODS_SITE_CODE)
_COPIED = {
    "Practitioner": ("identifier", "name", "telecom", "qualification"),
    "PractitionerRole": ("identifier", "code", "specialty", "telecom"),
}


@dataclass(frozen=True)
class Context:
    """What besides the ServiceRequest may name a party: the Bundle, the MessageHeader, the headers."""

    resources: Index = field(default_factory=dict)
    sender: Reference | None = None  # MessageHeader.sender
    receivers: tuple[Reference, ...] = ()  # MessageHeader.destination[].receiver
    target: Target | None = None  # NHSD-Target-Identifier
    service_owner: ServiceOwner | None = None


@dataclass(frozen=True)
class Resolved:
    service_request: ServiceRequest
    how: dict[str, str]  # party → how it was found (for the referral's history; no patient details)
    issues: list[Issue]  # every problem found; the caller refuses when there is any
    sender: str | None  # the ODS code MessageHeader.sender names, if it names one


@dataclass
class _Found:
    ods: str | None = None
    how: str = ""
    display: str | None = None
    practitioner: dict[str, Any] | None = None
    role: dict[str, Any] | None = None


class Work:
    """One resolution: the ServiceRequest as FHIR JSON, changed in place, and what was learned."""

    def __init__(self, sr: ServiceRequest, context: Context) -> None:
        self.data: dict[str, Any] = sr.model_dump(mode="json", exclude_none=True)
        self._sr, self._before = sr, json.dumps(self.data, sort_keys=True)
        self.context = context
        self.local: Index = {**context.resources, **{f"#{c.id}": c for c in sr.contained or [] if c.id}}
        self.how: dict[str, str] = {}
        self.issues: list[Issue] = []
        self.sender_ods, self.sender_how = self.organisation_of(context.sender)

    # -- look-ups ------------------------------------------------------------------------------
    def find(self, reference: Any) -> dict[str, Any] | None:
        text = reference.get("reference") if isinstance(reference, dict) else None
        found = self.local.get(text) if text else None
        return found.model_dump(mode="json", exclude_none=True) if found is not None else None

    def organisation_of(self, ref: Reference | dict[str, Any] | None, via_role: bool = True) -> tuple[str | None, str]:
        """The ODS code a reference to an Organization (or a PractitionerRole's) gives, and how. One
        PractitionerRole deep: a role whose organization is a role again names no organisation."""
        data = ref.model_dump(mode="json", exclude_none=True) if isinstance(ref, Reference) else ref
        if not data:
            return None, ""
        code = identifier_value(data.get("identifier"), _ORG_SYSTEMS)
        if code:
            return code, "its identifier"
        target = self.find(data)
        if target is None:
            return None, ""
        if target["resourceType"] == "Organization":
            code = first_identifier(target, _ORG_SYSTEMS)
            return (code, "the Organization it references") if code else (None, "")
        if target["resourceType"] == "PractitionerRole" and via_role:
            code, _ = self.organisation_of(target.get("organization"), via_role=False)
            return (code, "the organization of the PractitionerRole it references") if code else (None, "")
        return None, ""

    def add_contained(self, resource: dict[str, Any], wanted: str) -> str:
        contained = self.data.setdefault("contained", [])
        taken = {c.get("id") for c in contained}
        local_id, n = wanted, 1
        while local_id in taken:
            n += 1
            local_id = f"{wanted}-{n}"
        contained.append({**resource, "id": local_id})
        return local_id

    # -- requester -----------------------------------------------------------------------------
    def requester(self) -> None:
        found = _Found()
        ref = self.data.get("requester")
        if ref:
            self._requester_from(ref, found)
        if found.ods is None and self.sender_ods:
            found.ods, found.how = self.sender_ods, f"MessageHeader.sender ({self.sender_how})"
        elif found.ods and self.sender_ods and found.ods != self.sender_ods:
            self.issues.append(
                Issue(
                    f"the requester's organisation is {found.ods} ({found.how}) but MessageHeader.sender is "
                    f"{self.sender_ods}: they must be the same organisation",
                    "MessageHeader.sender",
                    "business-rule",
                )
            )
        if found.ods is None:
            if ref or self.context.sender is not None:
                self.issues.append(
                    Issue(
                        "the requester cannot be resolved to an ODS code: not in its identifier, an Organization, "
                        "a PractitionerRole's organization, or MessageHeader.sender",
                        "ServiceRequest.requester",
                        "not-found",
                    )
                )
            return
        self._write_requester(found, ref or {})

    def _requester_from(self, ref: dict[str, Any], found: _Found) -> None:
        ident = ref.get("identifier") or {}
        if ident.get("system") in _ORG_SYSTEMS and ident.get("value"):
            found.ods, found.how, found.display = (
                ident["value"],
                "ServiceRequest.requester.identifier",
                ref.get("display"),
            )
            return
        if ident.get("system") in systems.PRACTITIONER_SYSTEMS:
            found.practitioner = {"resourceType": "Practitioner", "identifier": [ident]}
            self._role_for(found, "the Practitioner ServiceRequest.requester.identifier names", None)
            return
        target = self.find(ref)
        kind = target["resourceType"] if target else None
        if target is not None and kind == "Organization":
            found.ods = first_identifier(target, _ORG_SYSTEMS)
            found.how, found.display = "the Organization ServiceRequest.requester references", target.get("name")
        elif target is not None and kind == "PractitionerRole":
            found.role = target
            found.practitioner = self.find(target.get("practitioner")) or _logical(target.get("practitioner"))
            found.ods, _ = self.organisation_of(target.get("organization"))
            found.how = "the organization of the PractitionerRole ServiceRequest.requester references"
        elif target is not None and kind == "Practitioner":
            found.practitioner = target
            self._role_for(found, "the Practitioner ServiceRequest.requester references", ref.get("reference"))

    def _role_for(self, found: _Found, named: str, reference: str | None) -> None:
        """A PractitionerRole in the Bundle whose practitioner is this one (the same entry, or the same
        identifier): its organization."""
        mine = {(i.get("system"), i.get("value")) for i in (found.practitioner or {}).get("identifier", [])}
        same = self.local.get(reference) if reference else None
        roles = {id(r): r for r in self.local.values() if r.get_resource_type() == "PractitionerRole"}
        for resource in roles.values():
            role = resource.model_dump(mode="json", exclude_none=True)
            theirs_ref = (role.get("practitioner") or {}).get("reference")
            theirs = self.find(role.get("practitioner")) or _logical(role.get("practitioner")) or {}
            by_entry = same is not None and theirs_ref is not None and self.local.get(theirs_ref) is same
            if by_entry or mine & {(i.get("system"), i.get("value")) for i in theirs.get("identifier", [])}:
                ods, _ = self.organisation_of(role.get("organization"))
                if ods:
                    found.role, found.ods = role, ods
                    found.how = f"a PractitionerRole in the Bundle for {named}"
                    return

    def _write_requester(self, found: _Found, ref: dict[str, Any]) -> None:
        org: dict[str, Any] = {"identifier": {"system": systems.ODS_CODE, "value": found.ods}}
        display = ref.get("display") if found.practitioner is None else found.display
        if display or found.display:
            org["display"] = display or found.display
        self.data["requester"] = org
        self.how["requester"] = f"{found.ods}: {found.how}"
        if found.practitioner is None:
            return
        practitioner_id = self.add_contained(_copy(found.practitioner, "Practitioner"), "requester-practitioner")
        role = _copy(found.role or {}, "PractitionerRole")
        role |= {
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": f"#{practitioner_id}", "type": "Practitioner"},
            "organization": {"identifier": {"system": systems.ODS_CODE, "value": found.ods}},
        }
        role_id = self.add_contained(role, "requester")
        extension = {
            "url": systems.EXT_REQUESTING_PRACTITIONER,
            "valueReference": {"reference": f"#{role_id}", "type": "PractitionerRole"},
        }
        self.data["extension"] = [*self.data.get("extension", []), extension]
        named = ", ".join(
            f"{_system_name(i.get('system'))} {i.get('value')}" for i in found.practitioner.get("identifier", [])
        )
        self.how["requester"] += f"; individual: Practitioner ({named or 'no identifier'}), contained #{role_id}"

    def result(self) -> Resolved:
        """The canonical ServiceRequest, validated once more: the parsed model may lack a required
        element that a model dump and validation then miss (`subject: null`), a 422 at its path."""
        if json.dumps(self.data, sort_keys=True) == self._before and self._complete():
            return Resolved(self._sr, self.how, self.issues, self.sender_ods)  # canonical already: no second model
        try:
            sr = ServiceRequest.model_validate(self.data)
        except ValidationError as exc:
            raise invalid(exc, "ServiceRequest") from exc
        return Resolved(sr, self.how, self.issues, self.sender_ods)

    def _complete(self) -> bool:
        """The required elements a parsed model may lack without pydantic saying so."""
        return all(self.data.get(name) is not None for name in ("status", "intent", "subject"))


def identifier_value(ident: Any, wanted: tuple[str, ...]) -> str | None:
    if isinstance(ident, dict) and ident.get("system") in wanted and ident.get("value"):
        return str(ident["value"])
    return None


def first_identifier(resource: dict[str, Any], wanted: tuple[str, ...]) -> str | None:
    for system in wanted:  # in the order asked for: an organisation code before a site code
        for ident in resource.get("identifier") or []:
            if ident.get("system") == system and ident.get("value"):
                return str(ident["value"])
    return None


def _logical(ref: Any) -> dict[str, Any] | None:
    """A logical reference to a Practitioner (identifier only) as a Practitioner resource."""
    if isinstance(ref, dict) and isinstance(ref.get("identifier"), dict):
        return {"resourceType": "Practitioner", "identifier": [ref["identifier"]]}
    return None


def _copy(resource: dict[str, Any], kind: str) -> dict[str, Any]:
    kept = {k: v for k, v in resource.items() if k in _COPIED[kind]}
    return {"resourceType": kind, **kept}


def _system_name(system: str | None) -> str:
    return str(system or "").rstrip("/").rsplit("/", 1)[-1]
