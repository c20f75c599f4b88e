"""What a physiotherapist (or patient) is told once a pad referral is accepted: its reference, the
service and topic it went to, and, when the risk screen was positive, what to do now.

Pure: read from the stored ServiceRequest and the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir.resources.R4B.servicerequest import ServiceRequest

from adapters.inbound.pad.rules import Variant
from gateway.canonical import referral, systems
from gateway.settings import PadSettings


@dataclass(frozen=True)
class Receipt:
    reference: str
    variant: Variant
    priority: str
    service_ods: str
    service_name: str
    pathway: str
    topic: str
    rule: str
    source_snomed: str | None
    source_iapt: str | None
    crisis_steps: tuple[str, ...]

    @property
    def urgent(self) -> bool:
        return self.priority != "routine"


def receipt(sr: ServiceRequest, topic: str, rule: str, settings: PadSettings) -> Receipt:
    snomed, iapt = _source_codes(sr)
    variant: Variant = "self" if snomed == systems.SOURCE_SELF_IAPT[0] else "physiotherapist"
    steps = settings.self_referral_crisis_steps if variant == "self" else settings.crisis_steps
    performer = sr.performer[0] if sr.performer else None
    return Receipt(
        reference=next((str(i.value) for i in sr.identifier or [] if i.system == systems.REFERRAL_ID), ""),
        variant=variant,
        priority=str(sr.priority or "routine"),
        service_ods=referral.performer_ods(sr) or "",
        service_name=str(performer.display)
        if performer is not None and performer.display
        else settings.iapt_service_name,
        pathway=str(sr.code.text) if sr.code and sr.code.text else "",
        topic=topic,
        rule=rule,
        source_snomed=snomed,
        source_iapt=iapt,
        crisis_steps=tuple(steps),
    )


def _source_codes(sr: ServiceRequest) -> tuple[str | None, str | None]:
    """The SNOMED CT source of referral and the IAPT Data Set's code beside it."""
    for ext in sr.extension or []:
        if ext.url == systems.EXT_SOURCE_OF_SERVICE_REQUEST and ext.valueCodeableConcept:
            codings = ext.valueCodeableConcept.coding or []
            snomed = next((str(c.code) for c in codings if c.system == systems.SNOMED_CT), None)
            other = next((str(c.code) for c in codings if c.system != systems.SNOMED_CT), None)
            return snomed, other
    return None, None
