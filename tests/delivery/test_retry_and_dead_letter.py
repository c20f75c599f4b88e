"""Back-off, the retry record and the dead-letter record: pure functions over one decoded event."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord

from gateway.delivery import envelope
from gateway.delivery.dead_letter import dead_letter_record, replay
from gateway.delivery.retry import GiveUp, RetryAt, RetryPolicy, retry_record
from gateway.errors import DeliveryFailed, MalformedInput
from gateway.settings import DeliverySettings

HEADERS = {
    "ce_id": "0b7c5a52-6f43-4f43-9b0c-8f8e2a1b3c4d",
    "ce_type": "uk.nhs.referral.servicerequest.created",
    "ce_subject": "ServiceRequest/ref-1",
    "ce_time": "2026-11-23T10:00:00.000+00:00",
    "correlation_id": "corr-1",
    "routing_service": "msk-pain",
}


def record(topic: str, offset: int, headers: dict[str, str], partition: int = 2) -> ConsumerRecord:
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"9434765919",
        value=b'{"resourceType":"ServiceRequest","id":"ref-1"}',
        checksum=None,
        serialized_key_size=10,
        serialized_value_size=46,
        headers=tuple((k, v.encode()) for k, v in headers.items()),
    )


def policy(**changes: float) -> RetryPolicy:
    settings = DeliverySettings(max_attempts=4, backoff_base_s=2.0, backoff_max_s=10.0, **changes)
    return RetryPolicy(settings, random.Random(7))


def test_back_off_doubles_up_to_the_cap_with_jitter_inside_each_step() -> None:
    retry = policy(backoff_jitter=0.5)
    for attempts, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 10.0), (60, 10.0)]:
        delays = [retry.delay(attempts) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 5, "the delays are spread, not one value"


def test_without_jitter_the_delay_is_exact() -> None:
    assert policy(backoff_jitter=0.0).delay(3) == 8.0


def test_retriable_failures_are_retried_until_the_last_attempt() -> None:
    at = datetime(2026, 11, 23, tzinfo=UTC)
    retry = policy()
    assert isinstance(retry.after_failure(DeliveryFailed("503"), 3, at), RetryAt)
    last = retry.after_failure(DeliveryFailed("503 again"), 4, at)
    assert isinstance(last, GiveUp) and "4 of 4" in last.reason and "503 again" in last.reason


def test_a_refusal_is_not_retried() -> None:
    decision = policy().after_failure(DeliveryFailed("400 bad", retriable=False), 1, datetime.now(UTC))
    assert isinstance(decision, GiveUp) and "refused" in decision.reason


def test_a_retry_record_carries_the_hop_and_the_original_event() -> None:
    delivery = envelope.decode(record("referrals.msk-pain", 41, HEADERS))
    due = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    retry = retry_record(delivery, topic="referrals.retry", attempts=1, due=due, last_error="503 Service Unavailable")
    assert retry.topic == "referrals.retry" and retry.key == "9434765919" and retry.value == delivery.value
    assert retry.headers["ce_id"] == HEADERS["ce_id"], "the event keeps its id: receivers de-duplicate on it"
    assert retry.headers["retry_attempts"] == "1" and retry.headers["retry_receiver"] == "msk-pain"
    assert (
        retry.headers["retry_original_topic"],
        retry.headers["retry_original_partition"],
        retry.headers["retry_original_offset"],
    ) == ("referrals.msk-pain", "2", "41")
    assert retry.headers["retry_last_error"] == "503 Service Unavailable"
    assert datetime.fromisoformat(retry.headers["retry_due"]) == due


def test_reading_a_retry_back_restores_the_original_event() -> None:
    delivery = envelope.decode(record("referrals.msk-pain", 41, HEADERS))
    due = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    first = retry_record(delivery, topic="referrals.retry", attempts=2, due=due, last_error="timed out")
    again = envelope.decode(record("referrals.retry", 7, first.headers, partition=0))
    assert again.headers == delivery.headers and again.event_id == delivery.event_id
    assert again.origin == delivery.origin and again.read_from.topic == "referrals.retry"
    assert again.attempts == 2 and again.retry_id == first.event_id and again.due == due
    assert envelope.due_at(record("referrals.retry", 7, first.headers)) == due.timestamp()
    assert envelope.due_at(record("referrals.msk-pain", 41, HEADERS)) == 0.0


def test_hop_ids_are_stable_per_record_read_and_differ_between_hops() -> None:
    delivery = envelope.decode(record("referrals.msk-pain", 41, HEADERS))
    due = datetime.now(UTC)
    one = retry_record(delivery, topic="referrals.retry", attempts=1, due=due, last_error="x")
    same = retry_record(delivery, topic="referrals.retry", attempts=1, due=due, last_error="y")
    later = envelope.decode(record("referrals.retry", 3, one.headers))
    two = retry_record(later, topic="referrals.retry", attempts=2, due=due, last_error="x")
    assert one.event_id == same.event_id != two.event_id


def test_a_dead_letter_carries_everything_needed_to_replay_it() -> None:
    delivery = envelope.decode(record("referrals.msk-pain", 41, HEADERS))
    hop = retry_record(delivery, topic="referrals.retry", attempts=3, due=datetime.now(UTC), last_error="x")
    last = envelope.decode(record("referrals.retry", 9, hop.headers))
    dead = dead_letter_record(
        last, topic="referrals.deadletter", reason="failed 4 of 4 attempts", details="503", attempts=4
    )
    assert dead.topic == "referrals.deadletter" and dead.key == "9434765919" and dead.value == delivery.value
    assert dead.headers["dlq_original_topic"] == "referrals.msk-pain" and dead.headers["dlq_original_offset"] == "41"
    assert dead.headers["dlq_attempts"] == "4" and dead.headers["dlq_receiver"] == "msk-pain"
    assert not any(name.startswith("retry_") for name in dead.headers)
    topic, headers = replay(dead.headers)
    assert (topic, headers) == ("referrals.msk-pain", HEADERS)


def test_a_record_without_an_event_id_is_refused_but_can_still_be_dead_lettered() -> None:
    broken = record("referrals.iapt", 5, {"routing_service": "iapt"})
    with pytest.raises(MalformedInput):
        envelope.decode(broken)
    delivery = envelope.undecodable(broken)
    dead = dead_letter_record(delivery, topic="referrals.deadletter", reason="no ce_id", details="", attempts=0)
    assert dead.headers["dlq_original_topic"] == "referrals.iapt" and dead.value == delivery.value


def test_an_update_without_a_routing_service_names_no_receiver() -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "routing_service"}
    assert envelope.decode(record("referrals.msk-pain", 1, headers)).receiver is None
