"""Several gateway processes on one PostgreSQL schema and one broker, and senders that behave as
real ones behind a load balancer do: when the gateway they sent to dies under the request, they send
the same thing again to another (same FHIR body, same HL7 message with its MSH-10)."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import POSTGRES_URL, free_port, start_tansu
from tests.processes import gateway_env, local_token, start_gateway, wait_ready

START_BLOCK, END_BLOCK = b"\x0b", b"\x1c\r"
FHIR_JSON = {"content-type": "application/fhir+json"}


@dataclass
class Fleet:
    procs: list[subprocess.Popen[bytes]]
    urls: list[str]
    mllp_ports: list[int]
    servers: str
    schema: str
    token: str  # the development partner's, good at every gateway
    killed: set[int] = field(default_factory=set)
    in_flight: Counter[int] = field(default_factory=Counter)  # requests under way, per gateway

    @contextmanager
    def sending(self, index: int) -> Iterator[None]:
        self.in_flight[index] += 1
        try:
            yield
        finally:
            self.in_flight[index] -= 1

    def clients(self) -> list[httpx.AsyncClient]:
        auth = {"Authorization": f"Bearer {self.token}"}
        return [httpx.AsyncClient(base_url=url, timeout=30, headers=auth) for url in self.urls]

    def alive(self, preferred: int) -> int:
        """The gateway to send to: `preferred`, or the next one still running."""
        for step in range(len(self.procs)):
            index = (preferred + step) % len(self.procs)
            if index not in self.killed:
                return index
        raise AssertionError("no gateway left")

    def kill(self, index: int) -> None:
        self.procs[index].kill()  # SIGKILL: no shutdown; requests and a relay batch in flight
        self.killed.add(index)


@contextmanager
def fleet(data_dir: Path, schema: str, count: int, **extra: str) -> Iterator[Fleet]:
    """`count` gateway processes started at once (one migrates the schema, the others wait)."""
    broker_port = free_port()
    broker = start_tansu(broker_port)
    servers = f"127.0.0.1:{broker_port}"
    group_prefix = f"scale-{uuid.uuid4().hex[:8]}"  # the same consumer groups in every process
    signing_key = secrets.token_urlsafe(32)
    procs: list[subprocess.Popen[bytes]] = []
    urls, mllp_ports = [], []
    try:
        for index in range(count):
            api, mllp, folder = free_port(), free_port(), data_dir / f"gateway-{index}"
            folder.mkdir()
            env = gateway_env(folder, api, mllp, kafka=servers)
            env.update(
                STORE_URL=POSTGRES_URL,
                STORE_DB_SCHEMA=schema,
                KAFKA_CONSUMER_GROUP_PREFIX=group_prefix,
                AUTH_SIGNING_KEY=signing_key,  # replicas share one key: a token from one is good at all
                **extra,
            )
            procs.append(start_gateway(env, folder / "gateway.log"))
            urls.append(f"http://127.0.0.1:{api}")
            mllp_ports.append(mllp)
        for proc, url in zip(procs, urls, strict=True):
            wait_ready(proc, url, timeout=45)
        yield Fleet(procs, urls, mllp_ports, servers, schema, token(data_dir, count))
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
        broker.kill()
        broker.wait(timeout=10)


@dataclass
class Answers:
    """What the senders heard: FHIR (status, id) per UBRN, HL7 MSA-1 per MSH-10."""

    fhir: dict[str, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))
    hl7: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    resent: int = 0
    progress: int = 0


async def post_fhir(
    fleet: Fleet, clients: list[httpx.AsyncClient], answers: Answers, body: dict[str, Any], to: int
) -> None:
    ubrn = body["identifier"][0]["value"]
    while True:
        index = fleet.alive(to)
        try:
            with fleet.sending(index):
                response = await clients[index].post(
                    "/fhir/ServiceRequest", content=json.dumps(body), headers=FHIR_JSON
                )
        except httpx.TransportError:  # the gateway died under the request
            answers.resent, to = answers.resent + 1, index + 1
            continue
        assert response.status_code in (200, 201), response.text
        answers.fhir[ubrn].append((response.status_code, response.json()["id"]))
        answers.progress += 1
        return


async def send_hl7(fleet: Fleet, answers: Answers, message: str, to: int) -> None:
    control_id = message.split("\r", 1)[0].split("|")[9]
    while True:
        index = fleet.alive(to)
        try:
            with fleet.sending(index):
                code = await _exchange(fleet.mllp_ports[index], message)
        except (OSError, asyncio.IncompleteReadError):  # the gateway died under the message
            answers.resent, to = answers.resent + 1, index + 1
            continue
        answers.hl7[control_id].append(code)
        answers.progress += 1
        return


async def _exchange(port: int, message: str) -> str:
    """One MLLP frame out, the ACK's MSA-1 back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(START_BLOCK + message.encode() + END_BLOCK)
        await writer.drain()
        ack = (await reader.readuntil(END_BLOCK)).decode()
    finally:
        writer.close()
    return ack.split("\rMSA|", 1)[1][:2]


@dataclass(frozen=True)
class OutboxRow:
    referral_id: str
    event_id: str
    partition: int
    offset: int


async def store_facts(schema: str, topic: str, timeout: float = 30) -> tuple[dict[str, str], list[OutboxRow]]:
    """Once every outbox row is published: each referral's channel, and the outbox rows for `topic`
    (the outbox also carries the audit trail's events)."""
    engine = create_async_engine(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
    unpublished = text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    try:
        async with asyncio.timeout(timeout):
            while True:
                async with engine.connect() as conn:
                    if not (await conn.execute(unpublished)).scalar_one():
                        referrals = (await conn.execute(text("SELECT id, channel FROM referrals"))).all()
                        rows = (
                            await conn.execute(
                                text('SELECT referral_id, event_id, partition, "offset" FROM outbox WHERE topic = :t'),
                                {"t": topic},
                            )
                        ).all()
                        return {r.id: r.channel for r in referrals}, [OutboxRow(*row) for row in rows]
                await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


def token(data_dir: Path, count: int) -> str:
    """The first of the replicas to start on the empty store made the development partner and wrote
    its secret to its own data directory."""
    (credentials,) = [p for i in range(count) if (p := data_dir / f"gateway-{i}" / "local-dev-client.json").exists()]
    return local_token(credentials.parent)
