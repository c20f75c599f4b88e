"""Nothing accepted is lost: the relay publishes what the store committed, after a kill -9 between
commit and publish, and after the (memory-only) broker is restarted empty."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from tests.conftest import free_port, start_tansu
from tests.kafka_reader import Event, read_events
from tests.processes import gateway_env, local_client, start_gateway, wait_ready
from tests.samples import service_request

COUNT = 20


def post_referrals(data_dir: Path, base_url: str, count: int) -> set[str]:
    ids = set()
    with local_client(data_dir, base_url) as client:
        for _ in range(count):
            response = client.post(
                "/fhir/ServiceRequest",
                content=json.dumps(service_request()),
                headers={"content-type": "application/fhir+json"},
            )
            assert response.status_code == 201, response.text
            ids.add(response.json()["id"])
    return ids


def unpublished(data_dir: Path) -> int:
    """Referral events still waiting in the outbox (audit and status events wait there too)."""
    with sqlite3.connect(data_dir / "gateway.db") as db:
        query = "select count(*) from outbox where published_at is null and topic = 'referrals.msk-pain'"
        return int(db.execute(query).fetchone()[0])


def published_subjects(servers: str, ids: set[str], timeout: float = 30) -> list[str]:
    """The subjects of the events about `ids` on the topic: each once, or a duplicate shows."""

    def ours(event: Event) -> bool:
        return event.headers["ce_subject"].removeprefix("ServiceRequest/") in ids

    read_events(servers, "referrals.msk-pain", len(ids), timeout, ours)  # wait until all are there
    events = read_events(servers, "referrals.msk-pain", len(ids) + 1, 2, ours)  # then look for more
    return [e.headers["ce_subject"].removeprefix("ServiceRequest/") for e in events]


def test_kill_9_between_commit_and_publish_then_broker_restart(tmp_path: Path) -> None:
    port, api = free_port(), free_port()
    servers, base = f"127.0.0.1:{port}", f"http://127.0.0.1:{api}"
    broker = start_tansu(port)
    env = gateway_env(tmp_path, api, free_port(), kafka=servers)
    gateway = start_gateway(env, tmp_path / "gateway.log")
    try:
        wait_ready(gateway, base)
        broker.terminate()
        broker.wait(timeout=10)
        ids = post_referrals(tmp_path, base, COUNT)  # durably accepted while Kafka is away
        gateway.kill()
        gateway.wait(timeout=10)
        assert unpublished(tmp_path) == COUNT
        broker = start_tansu(port)  # a new broker: empty, no topics
        gateway = start_gateway(env, tmp_path / "gateway.log")
        wait_ready(gateway, base)
        subjects = published_subjects(servers, ids, timeout=30)
        assert sorted(subjects) == sorted(ids), "every accepted referral is published exactly once"
        assert _eventually(lambda: unpublished(tmp_path) == 0)
    finally:
        gateway.kill()
        broker.kill()


def test_relay_carries_on_when_the_broker_restarts_under_it(tmp_path: Path) -> None:
    port, api = free_port(), free_port()
    servers, base = f"127.0.0.1:{port}", f"http://127.0.0.1:{api}"
    broker = start_tansu(port)
    gateway = start_gateway(gateway_env(tmp_path, api, free_port(), kafka=servers), tmp_path / "gateway.log")
    try:
        wait_ready(gateway, base)
        before = post_referrals(tmp_path, base, 3)
        assert sorted(published_subjects(servers, before)) == sorted(before)
        broker.terminate()
        broker.wait(timeout=10)
        during = post_referrals(tmp_path, base, 5)
        broker = start_tansu(port)
        assert sorted(published_subjects(servers, during, timeout=40)) == sorted(during)
    finally:
        gateway.kill()
        broker.kill()


def _eventually(check: object, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False
