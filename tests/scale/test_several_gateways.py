"""Three gateway processes share one PostgreSQL schema and one broker. Referrals go to all of them at
once, over FHIR HTTP and HL7 v2 MLLP, some FHIR ones to two gateways at the same moment; one gateway
is killed with SIGKILL mid-stream and its senders send again elsewhere. Every referral is then
stored once, with one event, and on its topic under one event id.

The outbox relay publishes at least once: a relay killed after Kafka acknowledged a batch but before
its marks committed leaves those rows to another process, which publishes them again under the same
`ce_id`. So the topic may hold such copies, never more than one relay batch of them; the store
records the one offset that counts for each event, and consumers drop the copies by event id.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Awaitable, Iterator
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition

from adapters.hl7v2.ref_i12 import CHANNEL as HL7_CHANNEL
from gateway.canonical.referral import referral_id_for
from tests.hl7v2.messages import MSK, fresh, sample
from tests.kafka_reader import Event, read_events
from tests.samples import service_request
from tests.scale.fleet import Answers, Fleet, OutboxRow, fleet, post_fhir, send_hl7, store_facts

GATEWAYS = 3
FHIR = 270  # each sent to one gateway
FHIR_TWICE = 30  # each sent to two gateways at the same moment
HL7 = 60  # each sent to one gateway over MLLP
RELAY_BATCH = 50
TOPIC = "referrals.msk-pain"  # where the FHIR and the HL7 samples are routed
BUDGET_S = 60  # the test as a whole stays well under this on two cores
UBRN_SYSTEM = service_request()["identifier"][0]["system"]

pytestmark = [pytest.mark.scale, pytest.mark.postgres]


@pytest.fixture
def gateways(tmp_path: Path, postgres_schema: str) -> Iterator[Fleet]:
    with fleet(tmp_path, postgres_schema, GATEWAYS, RELAY_BATCH_SIZE=str(RELAY_BATCH)) as running:
        yield running


async def send_everything(fleet: Fleet) -> tuple[Answers, set[str]]:
    """All referrals, 16 at a time, spread over the gateways; gateway 1 dies a third of the way."""
    answers, limit = Answers(), asyncio.Semaphore(16)
    clients = fleet.clients()
    once, twice = [service_request() for _ in range(FHIR)], [service_request() for _ in range(FHIR_TWICE)]

    async def limited(*sends: Awaitable[None]) -> None:
        async with limit:
            await asyncio.gather(*sends)
        # a third of the way, while requests to gateway 1 are under way: their senders must send again
        if answers.progress >= (FHIR + HL7) // 3 and not fleet.killed and fleet.in_flight[1]:
            fleet.kill(1)

    jobs = [limited(post_fhir(fleet, clients, answers, body, i)) for i, body in enumerate(once)]
    for i, body in enumerate(twice):  # the same referral to two gateways at once
        jobs.insert(i * FHIR // FHIR_TWICE, limited(*(post_fhir(fleet, clients, answers, body, i + n) for n in (0, 1))))
    for i in range(HL7):
        jobs.insert(i * len(jobs) // HL7, limited(send_hl7(fleet, answers, fresh(sample(MSK)), i)))
    try:
        await asyncio.gather(*jobs)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return answers, {b["identifier"][0]["value"] for b in twice}


def everything_on(servers: str, topic: str) -> list[Event]:
    consumer = KafkaConsumer(bootstrap_servers=servers)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        total = sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()
    return read_events(servers, topic, total, timeout=20)


async def test_three_gateways_one_killed_every_referral_stored_and_published_once(gateways: Fleet) -> None:
    async with asyncio.timeout(BUDGET_S):
        answers, sent_twice = await send_everything(gateways)
        assert gateways.killed == {1}, "gateway 1 had no request under way after the first third"
        assert answers.resent > 0, "no request was cut off by the kill"
        for index in set(range(GATEWAYS)) - gateways.killed:
            async with httpx.AsyncClient(base_url=gateways.urls[index], timeout=5) as client:  # public
                assert (await client.get("/readyz")).status_code == 200, f"gateway {index} is not ready"
        channels, outbox = await store_facts(gateways.schema, TOPIC)
        events = await asyncio.to_thread(everything_on, gateways.servers, TOPIC)
    fhir_ids = accepted_over_fhir(answers, sent_twice)
    accepted_over_hl7(answers)
    assert_stored_once(channels, outbox, fhir_ids)
    assert_published_once(events, outbox)


def accepted_over_fhir(answers: Answers, sent_twice: set[str]) -> set[str]:
    """Each referral under its deterministic id, created once whoever answered (a resend after the
    kill may only hear 200: the dead gateway had committed it)."""
    assert len(answers.fhir) == FHIR + FHIR_TWICE
    for ubrn, got in answers.fhir.items():
        assert {referral_id for _, referral_id in got} == {referral_id_for(UBRN_SYSTEM, ubrn)}
        assert [status for status, _ in got].count(201) <= 1, f"{ubrn} was created twice"
    assert all(len(answers.fhir[ubrn]) == 2 for ubrn in sent_twice)
    return {got[0][1] for got in answers.fhir.values()}


def accepted_over_hl7(answers: Answers) -> None:
    assert len(answers.hl7) == HL7
    assert all(codes == ["AA"] for codes in answers.hl7.values())


def assert_stored_once(channels: dict[str, str], outbox: list[OutboxRow], fhir_ids: set[str]) -> None:
    assert {r for r, channel in channels.items() if channel != HL7_CHANNEL} == fhir_ids
    assert Counter(channels.values())[HL7_CHANNEL] == HL7
    assert sorted(row.referral_id for row in outbox) == sorted(channels), "one event per referral"


def assert_published_once(events: list[Event], outbox: list[OutboxRow]) -> None:
    by_referral: dict[str, set[str]] = defaultdict(set)
    for event in events:
        by_referral[event.headers["ce_subject"].removeprefix("ServiceRequest/")].add(event.headers["ce_id"])
    assert by_referral == {row.referral_id: {row.event_id} for row in outbox}, "missing, or published as two events"
    recorded = {(row.partition, row.offset) for row in outbox}
    assert recorded <= {(e.partition, e.offset) for e in events}
    copies = [e for e in events if (e.partition, e.offset) not in recorded]
    assert len(copies) <= RELAY_BATCH, f"{len(copies)} copies: more than one relay batch was published twice"
