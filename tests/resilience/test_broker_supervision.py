"""The embedded broker killed (kill -9) under a steady load of referrals: the gateway starts it again by
itself, says so on /readyz, logs the exit once and the clients' connection errors in summary, and every
referral it accepted reaches the receiver (the demo receiver on the MSK service's address) once,
those the broker's lost log held included (the receiver fails for a while before the kill). And the
supervisor alone: a dead broker is started again and the runtime told; one the gateway stops is not.
And the broker killed three times in a row under load: nothing accepted is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.bus.broker import RESTART_BACKOFF_S, EmbeddedBroker
from gateway.bus.topics import broker_answers
from gateway.demo_receiver import Behaviour, DemoReceiver
from gateway.settings import KafkaSettings
from tests.conftest import free_port
from tests.delivery.receivers import eventually
from tests.processes import child_pids, gateway_env, local_client, start_gateway, wait_gone, wait_ready
from tests.trust.test_faults import (
    DIRECTORY_PORT,
    OVERDUE_RETRY_S,
    SteadyLoad,
    all_arrive,
    check_once,
    port_free,
)


def readiness(base: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{base}/readyz", timeout=5).json()
    return body


async def accepted_more(load: SteadyLoad, count: int, what: str) -> None:
    target = len(load.accepted) + count
    await eventually(lambda: len(load.accepted) >= target, 60, f"{count} referrals accepted {what}")


@dataclass
class Supervised:
    """A gateway process running its own broker, the MSK receiver, and a steady load on the gateway."""

    base: str
    log: Path
    gateway: subprocess.Popen[bytes]
    receiver: DemoReceiver
    load: SteadyLoad

    async def kill_broker(self, kill: int) -> int:
        """Referrals accepted, then more while the receiver fails (published, not yet delivered: lost
        with the log), then the broker killed with SIGKILL; its pid."""
        await accepted_more(self.load, 15, f"before kill {kill}")
        self.receiver.ledger.behaviour = Behaviour(http_status=503)
        await accepted_more(self.load, 10, f"while the receiver fails, before kill {kill}")
        (broker,) = child_pids(self.gateway.pid)
        os.kill(broker, signal.SIGKILL)
        assert await asyncio.to_thread(wait_gone, broker)
        self.receiver.ledger.behaviour = Behaviour()
        return broker

    async def drained(self) -> None:
        """The load stopped and everything it had accepted at the receiver."""
        self.load.halt.set()
        await asyncio.to_thread(self.load.join, 30)
        await all_arrive(self.receiver, self.load)
        await asyncio.sleep(1)  # room for a late second copy to show


@asynccontextmanager
async def supervised(tmp_path: Path) -> AsyncIterator[Supervised]:
    if not port_free(DIRECTORY_PORT):
        pytest.skip(f"127.0.0.1:{DIRECTORY_PORT}, the MSK receiver's address, is in use")
    api = free_port()
    base, log = f"http://127.0.0.1:{api}", tmp_path / "gateway.log"
    env = gateway_env(
        tmp_path,
        api,
        free_port(),
        embedded_port=free_port(),
        DELIVERY_NEW_GROUP_START="earliest",
        DELIVERY_OVERDUE_RETRY_S=OVERDUE_RETRY_S,
    )
    receiver = DemoReceiver(http_port=DIRECTORY_PORT)
    await receiver.start()
    gateway = start_gateway(env, log)
    load = SteadyLoad(tmp_path, base)
    try:
        await asyncio.to_thread(wait_ready, gateway, base)
        load.start()
        yield Supervised(base, log, gateway, receiver, load)
    finally:
        load.halt.set()
        gateway.kill()
        await receiver.stop()


async def test_a_killed_embedded_broker_is_started_again_and_every_referral_is_delivered_once(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    async with supervised(tmp_path) as scene:
        first_broker = await scene.kill_broker(1)

        def restarted() -> bool:
            ready = readiness(scene.base)
            seen.append(ready)
            return bool(ready["embedded_broker"]["restarts"] == 1 and ready["status"] == "ready")

        await eventually(lambda: asyncio.to_thread(restarted), 60, "the broker started again and the gateway ready")
        await accepted_more(scene.load, 15, "after the restart")
        await scene.drained()
        health = (await asyncio.to_thread(readiness, scene.base))["embedded_broker"]
        with local_client(tmp_path, scene.base) as client:
            dashboard = client.get("/monitor/api/overview").json()
        (second_broker,) = child_pids(scene.gateway.pid)
    check_once(tmp_path, scene.load, scene.receiver, "the embedded broker killed with SIGKILL under load")
    outage = [r for r in seen if not r["embedded_broker"]["running"]]
    assert outage, "/readyz showed the outage while the broker was down"
    assert all(r["status"] == "not ready" and r["embedded_broker"]["down_since"] for r in outage)
    assert second_broker != first_broker
    assert health["running"] and health["last_exit"] == "was killed by SIGKILL" and health["down_since"] is None
    assert health["last_restart_at"] is not None
    shown = dashboard["cells"]["broker process"]
    assert shown.startswith("running, restarted once (last at ") and shown.endswith("it was killed by SIGKILL)")
    lines = scene.log.read_text().splitlines()
    assert len([line for line in lines if "was killed by SIGKILL; starting it again" in line]) == 1, "logged once"
    errors = [line for line in lines if '"level": "ERROR"' in line and '"logger": "aiokafka' in line]
    # one per kind of message and minute (about 180 in this outage when each is written)
    assert len(errors) <= 25, f"{len(errors)} client errors written one by one, e.g. {errors[:3]}"


async def test_a_broker_killed_again_and_again_under_load_loses_nothing(tmp_path: Path) -> None:
    """Three kills a few seconds apart, the group keeping one assignment between two of them: each
    restart the relay finds the log lost, so its partitions are read again from their start, and the
    groups join again with new clients (the restarted broker made the topics they asked for before
    the gateway restored them with its default partition count)."""
    async with supervised(tmp_path) as scene:
        for kill in range(1, 4):
            await scene.kill_broker(kill)

            def back(restarts: int = kill) -> bool:
                ready = readiness(scene.base)
                return bool(ready["embedded_broker"]["restarts"] == restarts and ready["status"] == "ready")

            await eventually(lambda: asyncio.to_thread(back), 60, f"the broker started again after kill {kill}")
            await accepted_more(scene.load, 15, f"after kill {kill}")
            await all_arrive(scene.receiver, scene.load)
        await scene.drained()
    check_once(tmp_path, scene.load, scene.receiver, "the embedded broker killed three times under load")


async def test_the_supervisor_starts_a_dead_broker_again_and_tells_the_runtime(tmp_path: Path) -> None:
    told: list[int | None] = []
    broker = EmbeddedBroker("127.0.0.1", free_port(), tmp_path / "broker.log")

    async def restarted() -> None:
        told.append(broker.pid)

    broker.on_restarted = restarted
    await broker.start()
    try:
        first = broker.pid
        assert first is not None and broker.health.running and broker.health.restarts == 0
        os.kill(first, signal.SIGKILL)
        await eventually(lambda: broker.health.restarts == 1, 30, "the broker started again")
        assert broker.pid not in (None, first) and told == [broker.pid]
        assert broker.health.running and broker.health.last_exit == "was killed by SIGKILL"
        assert await broker_answers(KafkaSettings(bootstrap_servers=broker.bootstrap_servers), 5)
    finally:
        await broker.stop()


async def test_a_broker_the_gateway_stops_is_not_started_again(tmp_path: Path) -> None:
    broker = EmbeddedBroker("127.0.0.1", free_port(), tmp_path / "broker.log")
    await broker.start()
    pid = broker.pid
    assert pid is not None
    await broker.stop()
    await asyncio.sleep(2 * RESTART_BACKOFF_S)
    assert await asyncio.to_thread(wait_gone, pid)
    assert broker.pid is None and not broker.health.running and broker.health.restarts == 0
