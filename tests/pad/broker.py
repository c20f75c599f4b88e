"""Reading a pad referral's event back from the broker (kafka-python, no gateway code)."""

from __future__ import annotations

import asyncio

from gateway.canonical import systems
from tests.conftest import RunningGateway
from tests.kafka_reader import Event, read_events

IAPT_TOPIC = "referrals.iapt"
IAPT_SOURCE_SYSTEM = "https://referral-gateway.nhs.example/CodeSystem/nhs-talking-therapies-source-of-referral"


async def events_for(gateway: RunningGateway, referral_id: str, count: int = 1, timeout: float = 10) -> list[Event]:
    def ours(event: Event) -> bool:
        return event.headers.get("ce_subject") == f"ServiceRequest/{referral_id}"

    return await asyncio.to_thread(read_events, gateway.settings.kafka.servers, IAPT_TOPIC, count, timeout, ours)


async def events_about(gateway: RunningGateway, nhs_number: str, timeout: float = 3) -> list[Event]:
    """Every event on referrals.iapt keyed by this NHS number (to show that nothing was sent)."""

    def ours(event: Event) -> bool:
        return event.key == nhs_number

    return await asyncio.to_thread(read_events, gateway.settings.kafka.servers, IAPT_TOPIC, 1, timeout, ours)


def source_codes(event: Event) -> dict[str, str]:
    """The source-of-referral codings of the event's ServiceRequest, by code system."""
    (ext,) = [e for e in event.value.get("extension", []) if e["url"] == systems.EXT_SOURCE_OF_SERVICE_REQUEST]
    return {c["system"]: c["code"] for c in ext["valueCodeableConcept"]["coding"]}


def physiotherapist_source() -> dict[str, str]:
    return {systems.SNOMED_CT: "185370009", IAPT_SOURCE_SYSTEM: "A3"}


def self_referral_source() -> dict[str, str]:
    return {systems.SNOMED_CT: "1036481000000106", IAPT_SOURCE_SYSTEM: "B1"}
