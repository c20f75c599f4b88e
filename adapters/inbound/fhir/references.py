"""Turn literal references (`Patient/123`, `urn:uuid:…`, `#contained`) into the canonical logical
references by identifier: the subject's NHS number, the requester's and performers' ODS codes.

UK Core examples reference a Patient resource; the canonical event names the patient by NHS number so
it stands on its own. A subject that cannot be resolved to an NHS number is rejected with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable

from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.canonical import systems
from gateway.errors import InvalidReferral, Issue

Index = dict[str, Resource]


def index(entries: Iterable[tuple[str | None, Resource]]) -> Index:
    """Resources by every name a reference may use: fullUrl, Type/id and the fullUrl's tail."""
    found: Index = {}
    for full_url, resource in entries:
        if full_url:
            found[full_url] = resource
        if getattr(resource, "id", None):
            found[f"{resource.get_resource_type()}/{resource.id}"] = resource
            if full_url and full_url.endswith(f"/{resource.get_resource_type()}/{resource.id}"):
                found[full_url] = resource
    return found


def canonicalise(sr: ServiceRequest, resources: Index) -> ServiceRequest:
    """A copy of `sr` whose subject, requester and performers are identifier references. Shallow, and
    unvalidated (`model_copy(update=...)`): the new values are valid models already, and nothing
    shared with `sr` is changed."""
    local = {**resources, **{f"#{c.id}": c for c in sr.contained or [] if c.id}}
    update: dict[str, object] = {}
    if sr.subject is not None:  # a missing subject is reported by the UK Core rules, not here
        update["subject"] = _resolve(sr.subject, local, _nhs_number, "ServiceRequest.subject", "an NHS number")
    if sr.requester is not None:
        update["requester"] = _resolve(sr.requester, local, _ods_code, "ServiceRequest.requester", "an ODS code")
    if sr.performer:
        update["performer"] = [
            _resolve(p, local, _ods_code, f"ServiceRequest.performer[{i}]", "an ODS code")
            for i, p in enumerate(sr.performer)
        ]
    return sr.model_copy(update=update)


def _resolve(ref: Reference, local: Index, pick: object, where: str, what: str) -> Reference:
    if ref.identifier is not None or ref.reference is None:
        return ref  # already logical (or empty: UK Core rules report that)
    target = local.get(ref.reference)
    ident = pick(target, local) if target is not None else None  # type: ignore[operator]
    if ident is None:
        raise InvalidReferral(
            f"{where} '{ref.reference}' cannot be resolved to {what}",
            Issue(
                f"'{ref.reference}' is not in the Bundle or contained resources, or has no {what}",
                f"{where}.reference",
                "not-found",
            ),
        )
    return Reference(identifier=ident, display=ref.display)


def _identifier(resource: Resource, system: str) -> Identifier | None:
    for ident in getattr(resource, "identifier", None) or []:
        if ident.system == system and ident.value:
            return Identifier(system=system, value=ident.value)
    return None


def _nhs_number(resource: Resource, _: Index) -> Identifier | None:
    return _identifier(resource, systems.NHS_NUMBER) if resource.get_resource_type() == "Patient" else None


def _ods_code(resource: Resource, local: Index) -> Identifier | None:
    """An Organization's ODS code, or that of the organisation behind a role or service."""
    kind = resource.get_resource_type()
    if kind == "Organization":
        return _identifier(resource, systems.ODS_CODE) or _identifier(resource, systems.ODS_SITE_CODE)
    owner = {"PractitionerRole": "organization", "HealthcareService": "providedBy"}.get(kind)
    ref = getattr(resource, owner, None) if owner else None
    if ref is None:
        return None
    if ref.identifier is not None and ref.identifier.system == systems.ODS_CODE:
        return Identifier(system=systems.ODS_CODE, value=ref.identifier.value)
    target = local.get(ref.reference) if ref.reference else None
    return _ods_code(target, local) if target is not None else None
