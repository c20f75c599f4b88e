"""The sampler sets the gauges the alerting rules read (deploy/prometheus/alerts.yml) from what the
store and the broker say: the broker answering, the oldest unpublished outbox event's wait, whether
each receiver's latest delivery failed, and the dead letters nobody has dealt with yet. A real store
on disk and the real broker over TCP (or a port nothing listens on)."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import REGISTRY
from sqlalchemy import delete, update

from gateway.monitoring.broker_view import BrokerView
from gateway.monitoring.dead_letters import DeadLetters
from gateway.monitoring.sampler import Sampler
from gateway.settings import KafkaSettings, MonitorSettings
from gateway.store import Store
from gateway.store.deliveries import DELIVERED, RETRYING
from gateway.store.rows import now
from gateway.store.tables import deliveries, outbox
from tests.conftest import free_port
from tests.monitoring.store_rows import DEAD_LETTER_TOPIC, dead_letter, deliver, queue


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def sampler(store: Store, servers: str) -> Sampler:
    view = BrokerView(KafkaSettings(bootstrap_servers=servers), ["referrals.msk-pain"], {})
    return Sampler(view, store, MonitorSettings(), DeadLetters(store, DEAD_LETTER_TOPIC))


async def test_the_sampler_sets_the_outbox_receiver_and_dead_letter_gauges_from_the_store(
    store: Store, broker_servers: str
) -> None:
    await queue(store, "waiting", "referrals.msk-pain", {"ce_id": "waiting"}, timedelta(minutes=10))
    await deliver(store, "e1", "msk-pain", RETRYING)
    await deliver(store, "e2", "iapt-core", DELIVERED)
    await dead_letter(store, "open", "msk-pain")
    discarded = await dead_letter(store, "discarded", "msk-pain")
    letters = DeadLetters(store, DEAD_LETTER_TOPIC)
    await letters.discard(discarded, "sent again under a new UBRN", by="tester")

    watching = sampler(store, broker_servers)
    await watching.sample_once()

    assert 600 <= (gauge("gateway_outbox_oldest_age_seconds") or 0) < 660
    assert gauge("gateway_receiver_failing", receiver="msk-pain") == 1
    assert gauge("gateway_receiver_failing", receiver="iapt-core") == 0
    assert gauge("gateway_dead_letters_open") == 1
    assert gauge("gateway_broker_up") == 1
    await watching.stop()


async def test_a_receiver_stops_failing_and_dead_letters_close_once_dealt_with(
    store: Store, broker_servers: str
) -> None:
    await deliver(store, "e1", "physio-north", RETRYING)
    letter = await dead_letter(store, "dl-1", "physio-north")
    watching = sampler(store, broker_servers)
    await watching.sample_once()
    assert gauge("gateway_receiver_failing", receiver="physio-north") == 1
    assert gauge("gateway_dead_letters_open") == 1

    await deliver(store, "e1", "physio-north", DELIVERED)
    await DeadLetters(store, DEAD_LETTER_TOPIC).discard(letter, "delivered by hand", by="tester")
    # the relay published everything: nothing waits
    await store.write(lambda conn: conn.execute(update(outbox).values(published_at=now())))
    await watching.sample_once()
    assert gauge("gateway_receiver_failing", receiver="physio-north") == 0
    assert gauge("gateway_dead_letters_open") == 0
    assert gauge("gateway_outbox_oldest_age_seconds") == 0
    await watching.stop()


async def test_the_broker_gauge_says_when_the_broker_does_not_answer(store: Store, broker_servers: str) -> None:
    silent = sampler(store, f"127.0.0.1:{free_port()}")
    sample = await silent.sample_once()
    assert not sample.reachable and gauge("gateway_broker_up") == 0
    await silent.stop()

    answering = sampler(store, broker_servers)
    await answering.sample_once()
    assert gauge("gateway_broker_up") == 1
    await answering.stop()


async def test_a_receiver_whose_deliveries_are_gone_from_the_store_is_no_longer_reported(
    store: Store, broker_servers: str
) -> None:
    await deliver(store, "e1", "physio-south", RETRYING)
    watching = sampler(store, broker_servers)
    await watching.sample_once()
    assert gauge("gateway_receiver_failing", receiver="physio-south") == 1

    # the pruner removed the receiver's kept deliveries
    await store.write(lambda conn: conn.execute(delete(deliveries).where(deliveries.c.receiver == "physio-south")))
    await watching.sample_once()
    assert gauge("gateway_receiver_failing", receiver="physio-south") == 0
    assert gauge("gateway_delivery_ledger", receiver="physio-south", status=RETRYING) == 0
    await watching.stop()
