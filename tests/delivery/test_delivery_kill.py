"""Nothing is committed before its work is done: a gateway killed (SIGKILL) with deliveries in
flight, then started again, delivers every referral, and the receiver keeps each exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

from gateway.demo_receiver import DemoReceiver
from tests.conftest import free_port, start_tansu
from tests.delivery.receivers import eventually, schemas_for_receiver
from tests.processes import child_pids, gateway_env, local_client, start_gateway, wait_ready
from tests.samples import service_request

COUNT = 60


def post_referrals(data_dir: Path, base_url: str, count: int) -> None:
    headers = {"content-type": "application/fhir+json"}
    with local_client(data_dir, base_url) as client:
        for _ in range(count):
            response = client.post("/fhir/ServiceRequest", content=json.dumps(service_request()), headers=headers)
            assert response.status_code == 201, response.text


def kill(proc: subprocess.Popen[bytes]) -> None:
    for pid in child_pids(proc.pid):
        os.kill(pid, signal.SIGKILL)
    proc.kill()
    proc.wait(timeout=10)


async def test_a_gateway_killed_mid_delivery_then_started_again_delivers_every_referral_exactly_once(
    tmp_path: Path,
) -> None:
    port, api = free_port(), free_port()
    broker = await asyncio.to_thread(start_tansu, port)  # the test's own: its group starts at the earliest
    receiver = DemoReceiver()
    await receiver.start()
    receiver.ledger.behaviour.delay_s = 0.3  # slow: many deliveries in hand when the gateway dies
    schemas = schemas_for_receiver(tmp_path / "schemas", receiver.http_port, receiver.mllp_port)
    data, base = tmp_path / "data", f"http://127.0.0.1:{api}"
    env = gateway_env(data, api, free_port(), kafka=f"127.0.0.1:{port}", SCHEMAS_DIR=str(schemas))
    env["DELIVERY_NEW_GROUP_START"] = "earliest"
    gateway = start_gateway(env, tmp_path / "gateway.log")
    kept = receiver.ledger.referrals
    try:
        await asyncio.to_thread(wait_ready, gateway, base, 60)
        await asyncio.to_thread(post_referrals, data, base, COUNT)
        await eventually(lambda: len(kept) >= 10, 60, "the first deliveries")
        await asyncio.to_thread(kill, gateway)
        assert len(kept) < COUNT, "killed with deliveries still to do"
        gateway = start_gateway(env, tmp_path / "gateway.log")
        await eventually(lambda: len(kept) == COUNT, 90, "every referral delivered after the restart")
        await asyncio.sleep(2)  # anything delivered twice would arrive meanwhile
    finally:
        await asyncio.to_thread(kill, gateway)
        await receiver.stop()
        broker.kill()
        broker.wait(10)
    created = Counter(h.identity for h in receiver.ledger.hits if h.outcome == "created")
    assert len(kept) == COUNT and set(created.values()) == {1}, "each referral kept once, none lost"
