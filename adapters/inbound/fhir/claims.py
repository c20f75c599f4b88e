"""The BaRS access headers to what they claim: `NHSD-End-User-Organisation` (a base64-encoded FHIR
Organization as JSON) and `NHSD-Requesting-Practitioner` (a PractitionerRole, or a Practitioner).

Each header, when sent, must decode to a valid resource of its kind that names an ODS code (the
Organization's identifier; the PractitionerRole's organization). Every problem with either header is
reported at once, at the header's name. Must not: decide whether the caller may claim what a header
says (the API checks that against the token).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, cast

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from gateway.canonical import systems
from gateway.errors import InvalidHeader, Issue

END_USER_ORGANISATION = "NHSD-End-User-Organisation"
REQUESTING_PRACTITIONER = "NHSD-Requesting-Practitioner"
_KINDS = {END_USER_ORGANISATION: ("Organization",), REQUESTING_PRACTITIONER: ("PractitionerRole", "Practitioner")}
HEADERS = tuple(_KINDS)


@dataclass(frozen=True)
class Claims:
    """What the headers say: the end user's organisation and the requesting practitioner's, by ODS
    code, and the practitioner's own identifier (SDS user id or professional number), where given."""

    end_user_organisation: str | None = None
    practitioner_organisation: str | None = None
    practitioner: str | None = None

    @property
    def organisations(self) -> dict[str, str]:
        """Each claimed ODS code by the header that claimed it."""
        found = {
            END_USER_ORGANISATION: self.end_user_organisation,
            REQUESTING_PRACTITIONER: self.practitioner_organisation,
        }
        return {header: ods for header, ods in found.items() if ods}

    def recorded(self) -> dict[str, str]:
        """What the referral's history keeps of the claims: each header's organisation, and the
        practitioner's identifier with theirs."""
        kept = dict(self.organisations)
        if self.practitioner and REQUESTING_PRACTITIONER in kept:
            kept[REQUESTING_PRACTITIONER] = f"{self.practitioner} at {kept[REQUESTING_PRACTITIONER]}"
        elif self.practitioner:
            kept[REQUESTING_PRACTITIONER] = self.practitioner
        return kept


def read(headers: dict[str, str | None]) -> Claims:
    """The claims of the headers present, by header name as in `HEADERS` (values as sent)."""
    issues: list[Issue] = []
    resources: dict[str, Resource] = {}
    for name, kinds in _KINDS.items():
        value = headers.get(name)
        if value:
            resource = _decode(name, value, kinds, issues)
            if resource is not None:
                resources[name] = resource
    claims = Claims(
        end_user_organisation=_organisation(resources.get(END_USER_ORGANISATION), END_USER_ORGANISATION, issues),
        practitioner_organisation=_practitioner_organisation(resources.get(REQUESTING_PRACTITIONER), issues),
        practitioner=_practitioner(resources.get(REQUESTING_PRACTITIONER)),
    )
    if issues:
        raise InvalidHeader("the BaRS access headers cannot be read", *issues)
    return claims


def _decode(name: str, value: str, kinds: tuple[str, ...], issues: list[Issue]) -> Resource | None:
    try:
        data: Any = json.loads(base64.b64decode(value + "=" * (-len(value) % 4), validate=False))
    except (binascii.Error, ValueError) as exc:
        issues.append(Issue(f"not base64-encoded JSON: {exc}", name, "structure"))
        return None
    kind = data.get("resourceType") if isinstance(data, dict) else None
    if kind not in kinds:
        issues.append(Issue(f"must be a FHIR {' or '.join(kinds)}, not {kind or 'a bare value'}", name, "structure"))
        return None
    try:
        resource = cast(Resource, get_fhir_model_class(kind).model_validate(data))
    except ValidationError as exc:
        issues.append(Issue(f"not a valid {kind}: {exc.errors()[0]['msg']}", name, "structure"))
        return None
    return resource


def _organisation(resource: Resource | None, name: str, issues: list[Issue]) -> str | None:
    if resource is None:
        return None
    code = _ods(getattr(resource, "identifier", None) or [])
    if code is None:
        issues.append(Issue("the Organization names no ODS code", f"{name}.identifier", "required"))
    return code


def _practitioner_organisation(resource: Resource | None, issues: list[Issue]) -> str | None:
    if resource is None or resource.get_resource_type() != "PractitionerRole":
        return None  # a Practitioner names no organisation; the end user's header may
    organization = getattr(resource, "organization", None)
    ident = getattr(organization, "identifier", None)
    if ident is None or ident.system != systems.ODS_CODE or not ident.value:
        where = f"{REQUESTING_PRACTITIONER}.organization.identifier"
        issues.append(Issue("the PractitionerRole's organization names no ODS code", where, "required"))
        return None
    return str(ident.value)


def _practitioner(resource: Resource | None) -> str | None:
    if resource is None:
        return None
    if resource.get_resource_type() == "PractitionerRole":
        practitioner = getattr(resource, "practitioner", None)
        ident = getattr(practitioner, "identifier", None)
        return str(ident.value) if ident is not None and ident.value else None
    identifiers = getattr(resource, "identifier", None) or []
    return str(identifiers[0].value) if identifiers and identifiers[0].value else None


def _ods(identifiers: list[Any]) -> str | None:
    for ident in identifiers:
        if ident.system == systems.ODS_CODE and ident.value:
            return str(ident.value)
    return None
