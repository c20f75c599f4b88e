"""The performer of a referral: the organisation (ODS code) and the service (HealthcareService).

Looked for in this order: each performer reference's identifier; the Organization it references;
the HealthcareService it references (its `providedBy`, else the directory's entry for its DoS id);
the service `NHSD-Target-Identifier` names; each MessageHeader.destination.receiver. The canonical
performer list holds the organisation first (what every reader of `performer[0]` expects) and then
the service, contained so the event stands on its own.

Pure. Must not: decide whether the named service takes the referral (the router does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.inbound.fhir.parties import Work, first_identifier, identifier_value
from adapters.inbound.fhir.targets import HEADER
from gateway.canonical import systems
from gateway.errors import Issue

_ORG_SYSTEMS = (systems.ODS_CODE, systems.ODS_SITE_CODE)
_SERVICE_SYSTEMS = (systems.DOS_SERVICE_ID, systems.SERVICE_ID)
_SERVICE_ELEMENTS = ("identifier", "name", "type", "specialty", "telecom")


@dataclass
class _Service:
    where: str
    how: str
    resource: dict[str, Any]
    owner: str | None = None
    owner_how: str = ""

    @property
    def identifiers(self) -> list[dict[str, Any]]:
        return [i for i in self.resource.get("identifier", []) if i.get("system") and i.get("value")]

    def names(self, system: str, value: str) -> bool:
        return any(i["system"] == system and i["value"] == value for i in self.identifiers)

    def label(self) -> str:
        ident = _primary(self.identifiers)
        return f"{_short(ident['system'])} {ident['value']}" if ident else str(self.resource.get("name", "unnamed"))


@dataclass
class _Performer:
    orgs: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # ODS → (display, how)
    services: list[_Service] = field(default_factory=list)


def resolve_performers(work: Work) -> None:
    refs = work.data.get("performer") or []
    found = _Performer()
    for i, ref in enumerate(refs):
        _from_reference(work, ref, f"ServiceRequest.performer[{i}]", found)
    _from_target(work, found)
    for service in found.services:
        _owner(work, service)
    if not found.orgs:
        _from_services_or_receivers(work, found)
    _check_agreement(work, found)
    if not found.orgs:
        if refs or found.services or work.context.receivers:
            work.issues.append(_unresolved(found))
        return
    _write(work, found)


def _from_reference(work: Work, ref: dict[str, Any], where: str, found: _Performer) -> None:
    ident = ref.get("identifier") or {}
    if (code := identifier_value(ident, _ORG_SYSTEMS)) is not None:
        found.orgs.setdefault(code, (ref.get("display"), f"{where}.identifier"))
        return
    if identifier_value(ident, _SERVICE_SYSTEMS) is not None:
        resource = {"resourceType": "HealthcareService", "identifier": [ident], "name": ref.get("display")}
        found.services.append(_Service(where, f"{where}.identifier", {k: v for k, v in resource.items() if v}))
        return
    target = work.find(ref)
    kind = target["resourceType"] if target else None
    if target is not None and kind == "Organization":
        code = first_identifier(target, _ORG_SYSTEMS)
        if code:
            found.orgs.setdefault(code, (target.get("name"), f"the Organization {where} references"))
    elif target is not None and kind == "HealthcareService":
        kept = {k: v for k, v in target.items() if k in _SERVICE_ELEMENTS}
        service = _Service(where, f"the HealthcareService {where} references", {"resourceType": kind, **kept})
        service.owner, how = work.organisation_of(target.get("providedBy"))
        service.owner_how = f"the providedBy of that HealthcareService ({how})" if service.owner else ""
        found.services.append(service)
    elif target is not None and kind == "PractitionerRole":
        code, how = work.organisation_of(target.get("organization"))
        if code:
            found.orgs.setdefault(code, (None, f"the organization of the PractitionerRole {where} references"))


def _from_target(work: Work, found: _Performer) -> None:
    target = work.context.target
    if target is None:
        return
    if not found.services:
        resource = {
            "resourceType": "HealthcareService",
            "identifier": [{"system": target.system, "value": target.value}],
        }
        found.services.append(_Service(HEADER, HEADER, resource))
    elif not any(s.names(target.system, target.value) for s in found.services):
        named = ", ".join(s.label() for s in found.services)
        work.issues.append(
            Issue(
                f"{HEADER} names the service {_short(target.system)} {target.value}, but the ServiceRequest's "
                f"performer is the service {named}: they must be the same service",
                HEADER,
                "business-rule",
            )
        )


def _owner(work: Work, service: _Service) -> None:
    """A service without providedBy: its organisation from the directory, by DoS id or directory id."""
    lookup = work.context.service_owner
    if service.owner is not None or lookup is None:
        return
    for ident in service.identifiers:
        owner = lookup(ident["system"], ident["value"])
        if owner:
            service.owner = owner
            service.owner_how = f"the service directory's entry for {_short(ident['system'])} {ident['value']}"
            return


def _from_services_or_receivers(work: Work, found: _Performer) -> None:
    for service in found.services:
        if service.owner:
            found.orgs.setdefault(service.owner, (None, f"{service.owner_how}, the service {service.how} names"))
            return
    for i, receiver in enumerate(work.context.receivers):
        code, how = work.organisation_of(receiver)
        if code:
            found.orgs.setdefault(code, (None, f"MessageHeader.destination[{i}].receiver ({how})"))


def _check_agreement(work: Work, found: _Performer) -> None:
    if not found.orgs:
        return
    orgs = ", ".join(found.orgs)
    for service in found.services:
        if service.owner and service.owner not in found.orgs:
            work.issues.append(
                Issue(
                    f"the service {service.label()} is provided by {service.owner} ({service.owner_how}), but the "
                    f"performer organisation is {orgs}: they must agree",
                    service.where,
                    "business-rule",
                )
            )
    for i, receiver in enumerate(work.context.receivers):
        code, _ = work.organisation_of(receiver)
        if code and code not in found.orgs:
            work.issues.append(
                Issue(
                    f"MessageHeader.destination[{i}].receiver is {code}, but the performer organisation is {orgs}: "
                    "they must agree",
                    f"MessageHeader.destination[{i}].receiver",
                    "business-rule",
                )
            )


def _unresolved(found: _Performer) -> Issue:
    unknown = [s.label() for s in found.services if s.owner is None]
    if unknown:
        return Issue(
            f"the performer cannot be resolved to an ODS code: the service directory does not list the service "
            f"{', '.join(unknown)}, and no Organization, providedBy or MessageHeader.destination.receiver names one",
            "ServiceRequest.performer",
            "not-found",
        )
    return Issue(
        "the performer cannot be resolved to an ODS code: not in its identifier, an Organization, a "
        f"HealthcareService's providedBy, {HEADER} or MessageHeader.destination.receiver",
        "ServiceRequest.performer",
        "not-found",
    )


def _write(work: Work, found: _Performer) -> None:
    performers: list[dict[str, Any]] = []
    for code, (display, _) in found.orgs.items():
        org: dict[str, Any] = {"identifier": {"system": systems.ODS_CODE, "value": code}}
        performers.append({**org, "display": display} if display else org)
    first = next(iter(found.orgs))
    work.how["performer"] = f"{first}: {found.orgs[first][1]}"
    for service in found.services:
        owner = service.owner or first
        resource = {**service.resource, "providedBy": {"identifier": {"system": systems.ODS_CODE, "value": owner}}}
        local_id = work.add_contained(resource, "performer-service")
        ref: dict[str, Any] = {"reference": f"#{local_id}", "type": "HealthcareService"}
        if (ident := _primary(service.identifiers)) is not None:
            ref["identifier"] = {"system": ident["system"], "value": ident["value"]}
        if service.resource.get("name"):
            ref["display"] = service.resource["name"]
        performers.append(ref)
        work.how["performer-service"] = f"{service.label()}: {service.how}, contained #{local_id}"
    work.data["performer"] = performers


def _primary(identifiers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The identifier routing reads: a DoS id, else the directory's id, else the first."""
    for system in _SERVICE_SYSTEMS:
        for ident in identifiers:
            if ident["system"] == system:
                return ident
    return identifiers[0] if identifiers else None


def _short(system: str) -> str:
    return system.rstrip("/").rsplit("/", 1)[-1]
