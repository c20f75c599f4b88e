"""The alerting rules in a real Prometheus (Debian's, on a loopback port) scraping a running gateway:
the scrape works with the gateway's bearer token, every rule evaluates without error against what
/metrics really serves, and a dead letter and a failing receiver left in the gateway's store raise
their alerts (pending: their `for:` is minutes) while the broker alert stays quiet."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.settings import MonitorSettings, Settings, StoreSettings
from gateway.store.deliveries import RETRYING
from tests.conftest import RunningGateway, free_port, serve, shutdown, tansu_broker
from tests.delivery.receivers import eventually
from tests.monitoring.store_rows import dead_letter, deliver

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS = shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin:/usr/local/bin")

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="prometheus is neither on the PATH nor in /usr/bin: `make promtool` installs Debian's prometheus package",
)


@pytest.fixture(scope="module")
def broker_servers() -> Iterator[str]:
    """A broker of this module's own. The session's holds earlier tests' records, refused status
    updates among them; a new gateway's status-updates group reads that topic from its start and
    dead-letters them, and the healthy gateway here must have no dead letter to alert on."""
    with tansu_broker() as servers:
        yield servers


@pytest.fixture
def store_settings() -> StoreSettings:
    """SQLite only: the store's side of these figures is tested on both stores in tests/monitoring."""
    return StoreSettings()


@pytest.fixture
async def gateway(gateway_settings: Settings) -> AsyncIterator[RunningGateway]:
    """A gateway sampling often, so that Prometheus sees a change within a second or two."""
    running = await serve(gateway_settings.model_copy(update={"monitor": MonitorSettings(sample_interval_s=0.5)}))
    yield running
    await shutdown(running)


@pytest.fixture
async def prometheus(gateway: RunningGateway, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """Prometheus scraping the gateway every second and evaluating the rules every second."""
    assert PROMETHEUS is not None
    address = f"{gateway.settings.api.host}:{gateway.settings.api.port}"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "referral-gateway",
                "authorization": {"credentials": gateway.token},
                "static_configs": [{"targets": [address]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    server = await asyncio.create_subprocess_exec(
        PROMETHEUS,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await eventually(lambda: ready(client), timeout=30, what="Prometheus answering")
            yield client
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=30)
        log.close()


async def ready(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/-/ready")).status_code == 200
    except httpx.TransportError:
        return False


async def api(client: httpx.AsyncClient, path: str, **params: str) -> Any:
    response = await client.get(f"/api/v1/{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def alerts(client: httpx.AsyncClient) -> set[tuple[str, str]]:
    found = await api(client, "query", query="ALERTS")
    return {(a["metric"]["alertname"], a["metric"]["alertstate"]) for a in found["result"]}


async def evaluated(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    groups = (await api(client, "rules"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


async def has_gateway_figures(client: httpx.AsyncClient) -> bool:
    """Prometheus holds the sampler's figures (the gauges are set by the gateway's first sample)."""
    return bool((await api(client, "query", query="gateway_broker_up == 1"))["result"])


async def evaluated_since(client: httpx.AsyncClient, since: datetime) -> bool:
    rules = await evaluated(client)
    return bool(rules) and all(datetime.fromisoformat(r["lastEvaluation"]) > since for r in rules)


async def test_prometheus_scrapes_the_gateway_and_evaluates_every_rule_without_error(
    gateway: RunningGateway, prometheus: httpx.AsyncClient
) -> None:
    await eventually(lambda: has_gateway_figures(prometheus), timeout=30, what="the gateway's figures in Prometheus")
    since = datetime.now(UTC)
    await eventually(lambda: evaluated_since(prometheus, since), timeout=30, what="every rule evaluated on them")
    rules = await evaluated(prometheus)
    assert {r["name"] for r in rules} == {
        r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]
    }
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
    assert await alerts(prometheus) == set(), "a healthy gateway raises no alert"


async def test_a_dead_letter_and_a_failing_receiver_raise_their_alerts_in_prometheus(
    gateway: RunningGateway, prometheus: httpx.AsyncClient
) -> None:
    await eventually(lambda: has_gateway_figures(prometheus), timeout=30, what="the gateway's figures in Prometheus")
    store = gateway.runtime.store
    await deliver(store, "live-1", "msk-pain", RETRYING)
    await dead_letter(store, "live-1", "msk-pain")
    gateway.runtime.relay.wake()  # as delivery does after writing one: the relay publishes it

    async def raised() -> bool:
        return {("GatewayDeadLettersOpen", "pending"), ("GatewayReceiverFailing", "pending")} <= await alerts(
            prometheus
        )

    await eventually(raised, timeout=30, what="the dead-letter and receiver alerts pending in Prometheus")
    assert "GatewayBrokerUnreachable" not in {name for name, _ in await alerts(prometheus)}
