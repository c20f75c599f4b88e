"""Turn literal references (`Patient/123`, `urn:uuid:…`, `#contained`) into the canonical parties:
the subject's NHS number (or the contained untraced Patient), the requester's and performer's ODS
codes, with the individual and the service kept beside them (parties.py, performers.py).

UK Core examples reference a Patient resource; the canonical event names the patient by NHS number so
it stands on its own. A party that cannot be resolved is refused with the reason, every reason at once.
"""

from __future__ import annotations

from collections.abc import Iterable

from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.servicerequest import ServiceRequest

from adapters.inbound.fhir.parties import Context, Index, Resolved, Work
from adapters.inbound.fhir.performers import resolve_performers
from adapters.inbound.fhir.subject import resolve_subject
from gateway.errors import InvalidReferral, Issue

__all__ = ["Context", "Index", "Resolved", "canonicalise", "index", "resolve", "with_rules"]


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


def resolve(sr: ServiceRequest, context: Context) -> Resolved:
    """The canonical ServiceRequest, how each party was found, and every problem (not raised)."""
    work = Work(sr, context)
    resolve_subject(work)
    work.requester()
    resolve_performers(work)
    return work.result()


def with_rules(resolved: Resolved, broken: list[Issue]) -> list[Issue]:
    """The resolution's problems and the UK Core rules broken, without the rules' second word about a
    party the resolution already explained (an unresolved requester is not also "not an ODS code")."""
    explained = {_party(i.expression) for i in resolved.issues}
    return resolved.issues + [i for i in broken if _party(i.expression) not in explained]


def _party(expression: str | None) -> str:
    return ".".join((expression or "").split(".")[:2]).split("[")[0]


def canonicalise(sr: ServiceRequest, resources: Index) -> ServiceRequest:
    """`resolve` against `resources` alone, refusing with every problem at once."""
    resolved = resolve(sr, Context(resources=resources))
    if resolved.issues:
        raise InvalidReferral("the referral's parties cannot be resolved", *resolved.issues)
    return resolved.service_request
