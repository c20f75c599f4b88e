"""The UK Core SourceOfServiceRequest extension: keep the sender's, or infer it where we safely can.

An English GP practice's ODS code is one letter and five digits (A81001); a referral whose requester
has that shape and carries no source is recorded as "referred by general practitioner".
"""

from __future__ import annotations

import re

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.canonical import referral, systems

_GP_PRACTICE = re.compile(r"^[A-Z]\d{5}$")


def with_source(sr: ServiceRequest, source: tuple[str, str]) -> ServiceRequest:
    """A copy of `sr` carrying `source` (SNOMED CT code, display), replacing any earlier one. Shallow
    and unvalidated, as in references.canonicalise: the extension is built valid."""
    ext = Extension(
        url=systems.EXT_SOURCE_OF_SERVICE_REQUEST,
        valueCodeableConcept=CodeableConcept(
            coding=[Coding(system=systems.SNOMED_CT, code=source[0], display=source[1])]
        ),
    )
    kept = [e for e in sr.extension or [] if e.url != systems.EXT_SOURCE_OF_SERVICE_REQUEST]
    return sr.model_copy(update={"extension": [*kept, ext]})


def inferred(sr: ServiceRequest) -> ServiceRequest:
    if referral.source_of_referral(sr) is not None:
        return sr
    requester = referral.requester_ods(sr)
    if requester and _GP_PRACTICE.fullmatch(requester):
        return with_source(sr, systems.SOURCE_GP)
    return sr
