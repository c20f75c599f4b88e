"""Faults under a steady load of referrals, with the receiver's records compared to the gateway's
store afterwards: every accepted referral reaches its receiver exactly once, nothing accepted is lost.

The gateway runs as its own OS process (it is killed with SIGKILL and started again on the same data
directory); the MSK receiver is the demo receiver on the address the service directory names for it
(127.0.0.1:8090; the test is skipped while something else holds that port)."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.demo_receiver import Behaviour, DemoReceiver
from tests.conftest import free_port, start_tansu
from tests.delivery.receivers import eventually
from tests.processes import gateway_env, local_client, start_gateway, wait_ready
from tests.samples import service_request

DIRECTORY_PORT = 8090  # schemas/directory/directory.json: the MSK service's FHIR endpoint
# A retry the broker lost is published again this long after it was due (delivery/overdue.py): well
# inside the tests' minute for every referral to arrive, where the default five minutes is not.
OVERDUE_RETRY_S = "15"


class SteadyLoad(threading.Thread):
    """Posts referrals one after another until stopped; keeps the UBRN of each one answered 201.
    A request cut off by the kill has no answer and so counts as not accepted."""

    def __init__(self, data_dir: Path, base_url: str) -> None:
        super().__init__(daemon=True)
        self.data_dir, self.base_url = data_dir, base_url
        self.accepted: dict[str, str] = {}  # UBRN -> referral id
        self.unanswered = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                with local_client(self.data_dir, self.base_url) as client:
                    while not self.halt.is_set():
                        self._post(client)
            except (httpx.HTTPError, OSError, ValueError):
                self.unanswered += 1
                time.sleep(0.1)

    def _post(self, client: httpx.Client) -> None:
        sr = service_request()
        body = json.dumps(sr).encode()
        response = client.post("/fhir/ServiceRequest", content=body, headers={"content-type": "application/fhir+json"})
        if response.status_code == 201:
            self.accepted[sr["identifier"][0]["value"]] = response.json()["id"]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@dataclass
class Scene:
    """A gateway process with its own broker and the MSK receiver, under a steady load."""

    tmp_path: Path
    env: dict[str, str]
    base: str
    broker_port: int
    broker: subprocess.Popen[bytes]
    gateway: subprocess.Popen[bytes]
    receiver: DemoReceiver
    load: SteadyLoad

    async def restart_gateway(self, kill: bool) -> None:
        self.gateway.kill() if kill else self.gateway.terminate()
        await asyncio.to_thread(self.gateway.wait, 10)
        self.gateway = await asyncio.to_thread(start_gateway, self.env, self.tmp_path / "gateway.log")
        await asyncio.to_thread(wait_ready, self.gateway, self.base)

    async def restart_broker(self) -> None:
        self.broker.kill()
        await asyncio.to_thread(self.broker.wait, 10)
        self.broker = await asyncio.to_thread(start_tansu, self.broker_port)  # empty: no log, no topics

    async def more_accepted(self, count: int, what: str) -> int:
        target = len(self.load.accepted) + count
        await eventually(lambda: len(self.load.accepted) >= target, 40, f"{count} referrals accepted {what}")
        return target


Fault = Callable[[Scene], Awaitable[str]]


async def under_load(tmp_path: Path, fault: Fault) -> None:
    """Load, the fault, more load; then compare the receiver's records with the store."""
    if not port_free(DIRECTORY_PORT):
        pytest.skip(f"127.0.0.1:{DIRECTORY_PORT}, the MSK receiver's address, is in use")
    # a broker of its own: its topics hold this test's events only, so delivery may start at the earliest
    broker_port, api = free_port(), free_port()
    broker = await asyncio.to_thread(start_tansu, broker_port)
    receiver = DemoReceiver(http_port=DIRECTORY_PORT)
    await receiver.start()
    base = f"http://127.0.0.1:{api}"
    env = gateway_env(tmp_path, api, free_port(), kafka=f"127.0.0.1:{broker_port}")
    env["DELIVERY_NEW_GROUP_START"] = "earliest"  # nothing published while the group first joins is skipped
    env["DELIVERY_OVERDUE_RETRY_S"] = OVERDUE_RETRY_S
    gateway = await asyncio.to_thread(start_gateway, env, tmp_path / "gateway.log")
    scene = Scene(tmp_path, env, base, broker_port, broker, gateway, receiver, SteadyLoad(tmp_path, base))
    try:
        await asyncio.to_thread(wait_ready, gateway, base)
        scene.load.start()
        await scene.more_accepted(15, "before the fault")
        what = await fault(scene)
        await scene.more_accepted(15, "after the fault")
        scene.load.halt.set()
        await asyncio.to_thread(scene.load.join, 30)
        await all_arrive(receiver, scene.load)
        await asyncio.sleep(1)  # room for a late second copy to show
    finally:
        scene.load.halt.set()
        scene.gateway.kill()
        await receiver.stop()
        scene.broker.kill()
    check_once(tmp_path, scene.load, receiver, what)


async def all_arrive(receiver: DemoReceiver, load: SteadyLoad) -> None:
    ubrns = set(load.accepted)

    def arrived() -> set[str]:
        return {identity.split("|")[-1] for identity in receiver.ledger.referrals} & ubrns

    try:
        await eventually(lambda: arrived() == ubrns, 60, "every accepted referral at the receiver")
    except AssertionError as exc:
        missing = sorted(ubrns - arrived())
        where = where_they_are(load.data_dir, [load.accepted[ubrn] for ubrn in missing[:3]])
        raise AssertionError(f"{exc}: {len(missing)} of {len(ubrns)} lost, e.g. {missing[:3]}\n{where}") from exc


def where_they_are(data_dir: Path, referral_ids: list[str]) -> str:
    """What the store holds of these referrals' events and deliveries, and the gateway's warnings: a
    failure says where each one stopped."""
    marks = ",".join("?" * len(referral_ids))
    with sqlite3.connect(data_dir / "gateway.db") as db:
        events = db.execute(
            "select referral_id, topic, key, partition, offset, created_at, published_at, attempts, last_error"
            f" from outbox where referral_id in ({marks}) order by seq",
            referral_ids,
        ).fetchall()
        deliveries = db.execute(
            "select referral_id, receiver, status, attempts, origin_topic, origin_partition, origin_offset, last_error"
            f" from deliveries where referral_id in ({marks}) order by seq",
            referral_ids,
        ).fetchall()
    log = data_dir / "gateway.log"
    warnings = [line for line in log.read_text().splitlines() if '"level": "WARNING"' in line] if log.exists() else []
    lines = ["outbox:", *map(str, events), "deliveries:", *map(str, deliveries), "warnings:", *warnings[-40:]]
    return "\n".join(lines)


def check_once(tmp_path: Path, load: SteadyLoad, receiver: DemoReceiver, what: str) -> None:
    ubrns = set(load.accepted)
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        stored = {row[0] for row in db.execute("select id from referrals")}
    assert set(load.accepted.values()) <= stored, "every referral answered 201 is in the store"
    # A send cut off between the receiver's answer and the gateway's commit is sent again with the same
    # X-Request-Id: the receiver recognises it ("duplicate") and keeps one referral.
    outcomes = Counter((h.identity.split("|")[-1], h.outcome) for h in receiver.ledger.hits if h.identity)
    created = Counter(ubrn for (ubrn, outcome), n in outcomes.items() if outcome == "created" for _ in range(n))
    twice = {ubrn: n for ubrn, n in created.items() if ubrn in ubrns and n != 1}
    assert not twice, f"taken by the receiver more than once: {twice}"
    resent = sum(n for (ubrn, outcome), n in outcomes.items() if ubrn in ubrns and outcome == "duplicate")
    failed = sum(n for (ubrn, outcome), n in outcomes.items() if ubrn in ubrns and outcome.startswith("failed"))
    print(
        f"\n{what}: {len(ubrns)} accepted, each kept once by the receiver; {resent} resends recognised as "
        f"duplicates, {failed} failed attempts retried, {load.unanswered} requests unanswered"
    )


async def kill_9(scene: Scene) -> str:
    await scene.restart_gateway(kill=True)
    return "kill -9 of the gateway under load"


async def receiver_fails(scene: Scene) -> str:
    scene.receiver.ledger.behaviour = Behaviour(http_status=503)
    await scene.more_accepted(10, "while the receiver fails")
    await asyncio.sleep(2)
    scene.receiver.ledger.behaviour = Behaviour()
    return "receiver answering 503 for a while"


async def broker_restart(scene: Scene) -> str:
    scene.receiver.ledger.behaviour = Behaviour(http_status=503)  # published, not yet delivered
    await scene.more_accepted(10, "while the receiver fails")
    await scene.restart_broker()
    scene.receiver.ledger.behaviour = Behaviour()
    return "embedded broker restarted empty under load"


async def test_kill_9_under_load_loses_nothing_and_delivers_each_referral_once(tmp_path: Path) -> None:
    await under_load(tmp_path, kill_9)


async def test_a_receiver_failing_for_a_while_gets_every_referral_once(tmp_path: Path) -> None:
    await under_load(tmp_path, receiver_fails)


async def test_a_broker_restarted_empty_loses_nothing_not_yet_delivered(tmp_path: Path) -> None:
    await under_load(tmp_path, broker_restart)
