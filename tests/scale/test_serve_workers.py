"""`referral-gateway serve --workers 2` on PostgreSQL: two worker processes share the HTTP and the MLLP
port (SO_REUSEPORT), the parent runs the one embedded broker, referrals sent over both channels on
connections of their own are each published once, and SIGTERM stops every process. With SQLite the
command refuses, saying why."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from adapters.mllp.connection import MllpConnection
from adapters.mllp.streams import read_frame
from gateway.commands.workers import Refused, check, worker_env
from gateway.settings import Settings
from tests.conftest import POSTGRES_URL, free_port
from tests.hl7v2.messages import MSK, fresh, sample
from tests.kafka_reader import read_events
from tests.processes import child_pids, gateway_env, local_token, wait_gone, wait_ready
from tests.samples import service_request
from tests.scale.fleet import FHIR_JSON, store_facts

FHIR, HL7 = 24, 24  # each on a connection of its own, so the kernel spreads them over the workers
TOPIC = "referrals.msk-pain"  # where the FHIR and the HL7 samples are routed


def serve_workers(env: dict[str, str], log: Path, workers: int = 2) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--workers", str(workers)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def listening(port: int) -> set[int]:
    """The processes holding a listening TCP socket on 127.0.0.1:`port`."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
            inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                    pids.add(int(entry.name))
            except OSError:
                continue
    return pids


async def post(base_url: str, token: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:  # a connection of its own
        headers = {**FHIR_JSON, "Authorization": f"Bearer {token}"}
        response = await client.post("/fhir/ServiceRequest", content=json.dumps(service_request()), headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def send(port: int, message: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    mllp = MllpConnection(1 << 20)
    try:
        writer.write(mllp.send(message.encode()))
        await writer.drain()
        ack = await read_frame(reader, mllp)
    finally:
        writer.close()
    assert ack is not None
    return ack.decode().split("\rMSA|", 1)[1][:2]


@pytest.mark.scale
@pytest.mark.postgres
def test_two_workers_share_the_ports_and_publish_each_referral_once(tmp_path: Path, postgres_schema: str) -> None:
    api, mllp, broker = free_port(), free_port(), free_port()
    env = gateway_env(
        tmp_path, api, mllp, embedded_port=broker, STORE_URL=POSTGRES_URL, STORE_DB_SCHEMA=postgres_schema
    )
    env["KAFKA_CONSUMER_GROUP_PREFIX"] = f"workers-{uuid.uuid4().hex[:8]}"
    parent = serve_workers(env, tmp_path / "gateway.log")
    url = f"http://127.0.0.1:{api}"
    try:
        wait_ready(parent, url, timeout=60)
        workers = both_workers_listening(parent.pid, api, mllp)
        token = local_token(tmp_path)

        async def everything() -> tuple[list[str], list[str]]:
            fhir = asyncio.gather(*(post(url, token) for _ in range(FHIR)))
            hl7 = asyncio.gather(*(send(mllp, fresh(sample(MSK))) for _ in range(HL7)))
            return await fhir, await hl7

        fhir_ids, codes = asyncio.run(everything())
        assert len(set(fhir_ids)) == FHIR and codes == ["AA"] * HL7
        channels, outbox = asyncio.run(store_facts(postgres_schema, TOPIC))
        assert len(channels) == FHIR + HL7 and sorted(r.referral_id for r in outbox) == sorted(channels)
        # one more than expected: a second copy of any event would be read before the time runs out
        events = read_events(f"127.0.0.1:{broker}", TOPIC, FHIR + HL7 + 1, timeout=8)
        subjects = Counter(e.headers["ce_subject"].removeprefix("ServiceRequest/") for e in events)
        assert subjects == Counter(dict.fromkeys(channels, 1)), "each referral's event on the broker exactly once"
        assert {e.headers["ce_id"] for e in events} == {row.event_id for row in outbox}
    finally:
        parent.send_signal(signal.SIGTERM)
        code = parent.wait(timeout=60)
    assert code == 0
    assert all(wait_gone(pid) for pid in workers), "a worker outlived the parent's stop"


def both_workers_listening(parent: int, api: int, mllp: int, timeout: float = 30) -> set[int]:
    """The two worker processes, once each holds its own listening socket on both ports."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = set(child_pids(parent))
        on_api, on_mllp = listening(api) & children, listening(mllp) & children
        if len(on_api) == 2 and on_api == on_mllp:
            return children  # the broker too: it must be gone after the stop as well
        time.sleep(0.2)
    raise AssertionError(f"two workers did not both listen on {api} and {mllp}")


def test_more_than_one_worker_on_sqlite_is_refused_with_the_reason(tmp_path: Path) -> None:
    env = gateway_env(tmp_path, free_port(), free_port(), embedded_port=free_port())
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--workers", "2"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    assert b"--workers 2 needs a PostgreSQL store" in done.stderr
    assert not (tmp_path / "broker.log").exists(), "no broker was started for a refused command"


@pytest.mark.postgres
def test_a_worker_that_cannot_start_stops_the_others_and_the_parent_says_so(
    tmp_path: Path, postgres_schema: str
) -> None:
    api, broker = free_port(), free_port()
    env = gateway_env(tmp_path, api, free_port(), embedded_port=broker, STORE_URL=POSTGRES_URL)
    env["STORE_DB_SCHEMA"] = postgres_schema
    with socket.socket() as taken:  # the HTTP port held without SO_REUSEPORT: no worker can share it
        taken.bind(("127.0.0.1", api))
        taken.listen()
        parent = serve_workers(env, tmp_path / "gateway.log")
        code = parent.wait(timeout=90)
    assert code == 1
    assert not listening(broker), "the parent's broker outlived it"


def test_workers_are_pointed_at_the_parents_broker_as_the_gateway_tunes_its_own() -> None:
    embedded = Settings(_env_file=None, kafka={"embedded_port": 19999})  # type: ignore[call-arg]
    env = worker_env(embedded, {"KAFKA_SESSION_TIMEOUT_MS": "5000"})
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19999"
    assert (env["KAFKA_ENABLE_IDEMPOTENCE"], env["KAFKA_REPLICATION_FACTOR"]) == ("false", "1")
    assert env["KAFKA_SESSION_TIMEOUT_MS"] == "5000", "what the operator set is kept"
    assert (env["API_REUSE_PORT"], env["MLLP_REUSE_PORT"]) == ("true", "true")
    cluster = Settings(_env_file=None, kafka={"bootstrap_servers": "kafka-1:9092"})  # type: ignore[call-arg]
    assert "KAFKA_BOOTSTRAP_SERVERS" not in worker_env(cluster, {})


def test_no_fewer_than_one_worker_and_more_than_one_only_on_postgresql() -> None:
    sqlite = Settings(_env_file=None)  # type: ignore[call-arg]
    check(sqlite, 1)
    with pytest.raises(Refused, match="at least 1"):
        check(sqlite, 0)
    with pytest.raises(Refused, match="PostgreSQL"):
        check(sqlite, 2)
    check(Settings(_env_file=None, store={"url": POSTGRES_URL}), 2)  # type: ignore[call-arg]
