"""A whole running gateway (embedded broker, store, relay, MLLP listener) taking a PAS's REF^I12 with
no PRD segments (MSH, EVN, RF1 and PID only) over a real MLLP socket: from a sender configured in
`MLLP_SENDER_ORGANISATIONS` it is taken with the organisations of the setting and reaches its topic;
from any other sender, or with no setting, it is refused with the reason."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.hl7v2 import parser
from gateway.settings import Hl7SenderOrganisations, Settings
from tests.conftest import RunningGateway, serve, shutdown
from tests.hl7v2.messages import pas_ref_i12, with_field
from tests.kafka_reader import read_events
from tests.mllp.conftest import Sender
from tests.samples import valid_nhs_number

PAS = Hl7SenderOrganisations(
    sending_facility="RX1", receiving_facility="RX1PN", referring_ods="RX1", receiving_ods="RX1PN"
)


@pytest.fixture
async def configured_gateway(gateway_settings: Settings) -> AsyncIterator[RunningGateway]:
    mllp = gateway_settings.mllp.model_copy(update={"sender_organisations": [PAS]})
    gateway = await serve(gateway_settings.model_copy(update={"mllp": mllp}))
    yield gateway
    await shutdown(gateway)


async def answer(gateway: RunningGateway, text: str) -> tuple[str, str, str, str]:
    """MSA-1, MSA-3, and the first ERR's segment and field (ERR-1 in v2.4)."""
    sender = await Sender.open(gateway.runtime.mllp.port)
    ack = parser.parse(await sender.send(text))
    await sender.close()
    msa, err = ack.first("MSA"), ack.first("ERR")
    assert msa is not None
    return msa.text(1), msa.text(3), err.text(1, 1) if err else "", err.text(1, 3) if err else ""


async def test_a_configured_pas_sender_without_prd_is_taken_and_reaches_its_topic(
    configured_gateway: RunningGateway,
) -> None:
    nhs = valid_nhs_number()
    assert await answer(configured_gateway, pas_ref_i12(nhs, prd=False)) == ("CA", "", "", "")
    servers = configured_gateway.settings.kafka.servers
    (event,) = await asyncio.to_thread(read_events, servers, "referrals.msk-pain", 1, 15, match=lambda e: e.key == nhs)
    sr = event.value
    assert sr["requester"]["identifier"]["value"] == "RX1"
    assert sr["performer"][0]["identifier"]["value"] == "RX1PN"


async def test_another_receiving_facility_of_the_same_sender_is_still_refused(
    configured_gateway: RunningGateway,
) -> None:
    text = with_field(pas_ref_i12(valid_nhs_number(), prd=False), "MSH", 6, "NQ1IA")
    assert await answer(configured_gateway, text) == ("CR", "the message has no referring provider", "PRD", "")


async def test_without_the_setting_a_ref_i12_without_prd_is_refused_with_the_reason(
    running_gateway: RunningGateway,
) -> None:
    text = pas_ref_i12(valid_nhs_number(), prd=False)
    assert await answer(running_gateway, text) == ("CR", "the message has no referring provider", "PRD", "")
