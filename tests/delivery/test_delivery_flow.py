"""Delivery over the real broker to real receivers on loopback: each format delivered once; a
receiver that is down, slow or answering errors; one referral's events kept in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.bus import events
from gateway.delivery.outbound import Destination
from gateway.demo_receiver import Behaviour
from gateway.settings import StoreSettings
from tests.delivery.bench import Bench, bench
from tests.delivery.receivers import demo_receiver, eventually
from tests.kafka_reader import read_events


async def delivered(b: Bench, referral_id: str, count: int = 1) -> bool:
    return sum(r.status == "delivered" for r in await b.rows(referral_id)) >= count


async def settled(b: Bench, referral_id: str) -> bool:
    rows = await b.rows(referral_id)
    return bool(rows) and all(r.status in ("delivered", "dead-lettered") for r in rows)


async def dead_letters(b: Bench, count: int, timeout: float = 15) -> list:  # type: ignore[type-arg]
    return await asyncio.to_thread(read_events, b.kafka.servers, b.settings.dead_letter_topic, count, timeout)


async def test_each_format_is_delivered_once(
    broker_servers: str, tmp_path: Path, store_settings: StoreSettings
) -> None:
    async with demo_receiver() as receiver, bench(broker_servers, tmp_path, store_settings) as b:
        b.destinations.known.update(
            {
                "rest": Destination("rest", "fhir-rest", receiver.fhir_base_url),
                "messaging": Destination("messaging", "fhir-messaging", receiver.fhir_base_url),
                "mllp": Destination("mllp", "hl7v2-mllp", receiver.mllp_address),
                "topic-only": Destination("topic-only", "kafka", b.topic),
            }
        )
        sent = {name: [(await b.publish(name))[1] for _ in range(3)] for name in b.destinations.known}
        for referrals in sent.values():
            for sr in referrals:
                await eventually(lambda sr=sr: delivered(b, sr["id"]), what=f"delivery of {sr['id']}")
        rows = {name: [await b.rows(sr["id"]) for sr in referrals] for name, referrals in sent.items()}
        steps = await b.steps(sent["rest"][0]["id"])
    by_format = {
        fmt: [h for h in receiver.ledger.hits if h.format == fmt]
        for fmt in ("fhir-rest", "fhir-messaging", "hl7v2-mllp")
    }
    for fmt, name in (("fhir-rest", "rest"), ("fhir-messaging", "messaging"), ("hl7v2-mllp", "mllp")):
        assert [h.outcome for h in by_format[fmt]] == ["created"] * 3, f"{fmt}: each referral once, no resend"
        ubrns = {sr["identifier"][0]["value"] for sr in sent[name]}
        assert all(any(u in h.identity for u in ubrns) for h in by_format[fmt])
    for name, per_referral in rows.items():
        assert [[(r.receiver, r.status, r.attempts) for r in rs] for rs in per_referral] == [
            [(name, "delivered", 1)]
        ] * 3
    assert "nothing to send" in (rows["topic-only"][0][0].receipt or "")
    assert steps[-1] == "delivered"


async def test_referrals_to_one_mllp_receiver_from_every_partition_share_one_connection(
    broker_servers: str, tmp_path: Path
) -> None:
    async with demo_receiver() as receiver, bench(broker_servers, tmp_path) as b:
        b.destinations.known["mllp"] = Destination("mllp", "hl7v2-mllp", receiver.mllp_address)
        sent = [(await b.publish("mllp"))[1] for _ in range(12)]  # keyed by NHS number: all three partitions
        for sr in sent:
            await eventually(lambda sr=sr: delivered(b, sr["id"]), what=f"delivery of {sr['id']}")
    assert [h.outcome for h in receiver.ledger.hits] == ["created"] * 12
    assert receiver.mllp_connections_accepted == 1, "one connection kept open and reused for every message"


async def test_a_receiver_that_is_down_is_retried_then_dead_lettered_with_the_reason(
    broker_servers: str, tmp_path: Path
) -> None:
    async with bench(broker_servers, tmp_path) as b:
        b.destinations.known["down"] = Destination("down", "fhir-rest", "http://127.0.0.1:9/fhir")
        event_id, sr = await b.publish("down")
        await eventually(lambda: settled(b, sr["id"]), what="giving up")
        (row,) = await b.rows(sr["id"])
        (dead,) = await dead_letters(b, 1)

        async def four_published() -> bool:  # the relay notes a publication once the broker acknowledged it
            return (await b.steps(sr["id"])).count("published") == 4

        await eventually(four_published, what="the event, two retries and the dead letter each published")
        steps = await b.steps(sr["id"])
    assert (row.status, row.attempts) == ("dead-lettered", 3)
    hops = [s for s in steps if s != "published"]
    assert hops == ["delivery-failed", "retry-scheduled"] * 2 + ["delivery-failed", "dead-lettered"]
    assert dead.headers["ce_id"] == event_id and dead.value == sr, "the original event, ready for replay"
    assert dead.headers["dlq_original_topic"] == b.topic and dead.headers["dlq_attempts"] == "3"
    assert "could not reach" in dead.headers["dlq_reason"] and dead.headers["dlq_receiver"] == "down"
    assert dead.key == sr["subject"]["identifier"]["value"]


async def test_a_slow_receiver_times_out_and_the_retry_is_recognised_as_a_resend(
    broker_servers: str, tmp_path: Path
) -> None:
    async with demo_receiver() as receiver, bench(broker_servers, tmp_path, http_timeout_s=0.4) as b:
        receiver.ledger.behaviour = Behaviour(delay_s=1.0, times=1)
        b.destinations.known["slow"] = Destination("slow", "fhir-rest", receiver.fhir_base_url)
        _, sr = await b.publish("slow")
        await eventually(lambda: delivered(b, sr["id"]), what="delivery after the timeout")
        history = await b.store.history(sr["id"])
    failed = next(h for h in history if h.step == "delivery-failed")
    done = next(h for h in history if h.step == "delivered")
    assert "timed out" in failed.detail["error"] and done.detail["attempt"] == 2
    assert len(receiver.ledger.referrals) == 1, "the slow first copy and the retry are one referral"
    assert sorted(h.outcome for h in receiver.ledger.hits) == ["created", "duplicate"], "whichever copy came first"


async def test_a_5xx_is_retried_and_a_4xx_is_dead_lettered_at_once(broker_servers: str, tmp_path: Path) -> None:
    async with demo_receiver() as busy, demo_receiver() as strict, bench(broker_servers, tmp_path) as b:
        busy.ledger.behaviour = Behaviour(http_status=503, times=2)
        strict.ledger.behaviour = Behaviour(http_status=400)
        b.destinations.known.update(
            {
                "busy": Destination("busy", "fhir-rest", busy.fhir_base_url),
                "strict": Destination("strict", "fhir-rest", strict.fhir_base_url),
            }
        )
        _, retried = await b.publish("busy")
        _, refused = await b.publish("strict")
        await eventually(lambda: settled(b, retried["id"]), what="delivery after two 503s")
        await eventually(lambda: settled(b, refused["id"]), what="dead letter after a 400")
        (ok,) = await b.rows(retried["id"])
        (no,) = await b.rows(refused["id"])
        (dead,) = await dead_letters(b, 1)
    assert (ok.status, ok.attempts) == ("delivered", 3)
    assert [h.outcome for h in busy.ledger.hits] == ["failed: 503", "failed: 503", "created"]
    assert (no.status, no.attempts) == ("dead-lettered", 1) and len(strict.ledger.hits) == 1
    assert dead.headers["dlq_attempts"] == "1" and "refused" in dead.headers["dlq_reason"]
    assert "400" in dead.headers["dlq_details"]


async def test_an_hl7_ae_is_retried_and_an_ar_dead_lettered(broker_servers: str, tmp_path: Path) -> None:
    async with demo_receiver() as flaky, demo_receiver() as rejecting, bench(broker_servers, tmp_path) as b:
        flaky.ledger.behaviour = Behaviour(ack_code="AE", times=1)
        rejecting.ledger.behaviour = Behaviour(ack_code="AR")
        b.destinations.known.update(
            {
                "flaky": Destination("flaky", "hl7v2-mllp", flaky.mllp_address),
                "rejecting": Destination("rejecting", "hl7v2-mllp", rejecting.mllp_address),
            }
        )
        _, retried = await b.publish("flaky")
        _, refused = await b.publish("rejecting")
        await eventually(lambda: settled(b, retried["id"]), what="delivery after an AE")
        await eventually(lambda: settled(b, refused["id"]), what="dead letter after an AR")
        (ok,) = await b.rows(retried["id"])
        (no,) = await b.rows(refused["id"])
    assert (ok.status, ok.attempts) == ("delivered", 2)
    assert (no.status, no.attempts) == ("dead-lettered", 1) and "AR" in (no.last_error or "")


async def test_an_update_waits_for_its_referral_still_being_retried(broker_servers: str, tmp_path: Path) -> None:
    async with demo_receiver() as receiver, bench(broker_servers, tmp_path) as b:
        receiver.ledger.behaviour = Behaviour(http_status=503, times=1)
        b.destinations.known["svc"] = Destination("svc", "fhir-rest", receiver.fhir_base_url)
        _, sr = await b.publish("svc")
        await b.publish("svc", events.SERVICEREQUEST_UPDATED, {**sr, "priority": "urgent"})
        await eventually(lambda: delivered(b, sr["id"], 2), what="both events delivered")
        steps = await b.steps(sr["id"])
    assert [h.outcome for h in receiver.ledger.hits] == ["failed: 503", "created", "updated"]
    assert steps.count("retry-scheduled") == 2, "the update was held behind the retried create"


async def test_an_event_naming_no_known_receiver_is_dead_lettered(broker_servers: str, tmp_path: Path) -> None:
    async with bench(broker_servers, tmp_path) as b:
        _, sr = await b.publish("nobody")
        (dead,) = await dead_letters(b, 1)
        (row,) = await b.rows(sr["id"])
    assert row.status == "dead-lettered" and "nobody" in dead.headers["dlq_reason"]
