"""Partner set-up from the CLI, the MLLP sender allowlist (source address and MSH-4), and the rate
limit per client, each through a running gateway."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import httpx
import pytest

from gateway.settings import AuthSettings, MllpSender, MllpSettings, Settings
from tests.conftest import RunningGateway, add_client, serve, shutdown, token_for
from tests.hl7v2.messages import MSK, fresh, sample, with_field
from tests.mllp.test_gateway_mllp import msa, send

pytestmark = pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATA_DIR": str(settings.data_dir)}
    command = [sys.executable, "-m", "gateway", "partners", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


async def test_a_partner_added_from_the_cli_gets_tokens_until_removed(running_gateway: RunningGateway) -> None:
    added = await asyncio.to_thread(
        cli, running_gateway.settings, "add", "acme", "--ods", "A81001", "--scope", "system/Task.read", "--json"
    )
    assert added.returncode == 0, added.stderr
    secret = json.loads(added.stdout)["client_secret"]
    listed = await asyncio.to_thread(cli, running_gateway.settings, "list")
    assert "acme" in listed.stdout and secret not in listed.stdout
    token = await token_for(running_gateway, "acme", secret)
    async with httpx.AsyncClient(base_url=running_gateway.base_url, headers={"Authorization": f"Bearer {token}"}) as c:
        assert (await c.get("/fhir/Task")).status_code == 200
        assert (await c.get("/fhir/ServiceRequest")).status_code == 403
        removed = await asyncio.to_thread(cli, running_gateway.settings, "remove", "acme")
        assert removed.returncode == 0, removed.stderr
        running_gateway.runtime.auth.registry._known.clear()  # the cache's few seconds, skipped
        assert (await c.get("/fhir/Task")).status_code == 401
    async with running_gateway.anonymous_client() as anonymous:
        again = await anonymous.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=("acme", secret))
        assert again.status_code == 401


async def test_mllp_takes_only_known_facilities_from_their_addresses(gateway_settings: Settings) -> None:
    senders = [
        MllpSender(facility="A81001", sources=["127.0.0.1/32"]),
        MllpSender(facility="B82002", sources=["10.9.9.9"]),
    ]
    settings = gateway_settings.model_copy(
        update={"mllp": MllpSettings(port=gateway_settings.mllp.port, senders=senders)}
    )
    gateway = await serve(settings)
    try:
        port = gateway.runtime.mllp.port
        known = fresh(sample(MSK).replace("\n", "\r"))
        unknown = with_field(fresh(sample(MSK).replace("\n", "\r")), "MSH", 4, "Z99999")
        wrong_address = with_field(fresh(sample(MSK).replace("\n", "\r")), "MSH", 4, "B82002")
        acks = await asyncio.to_thread(send, port, known, unknown, wrong_address)
        assert [msa(a)[0] for a in acks] == ["AA", "AR", "AR"]
        assert all("MSH" in str(a.segment("ERR")) for a in acks[1:])
    finally:
        await shutdown(gateway)


async def test_each_client_is_rate_limited_on_its_own_with_429(gateway_settings: Settings) -> None:
    auth = AuthSettings(local_partner=False, rate_limit_per_s=0.5, rate_limit_burst=5)
    gateway = await serve(gateway_settings.model_copy(update={"auth": auth}))
    try:
        noisy = await token_for(gateway, "noisy", await add_client(gateway, "noisy", "A81001", "system/Task.read"))
        quiet = await token_for(gateway, "quiet", await add_client(gateway, "quiet", "A81001", "system/Task.read"))
        async with gateway.anonymous_client() as client:
            codes = [
                (await client.get("/fhir/Task", headers={"Authorization": f"Bearer {noisy}"})).status_code
                for _ in range(8)
            ]
            assert codes.count(429) >= 2 and codes[0] == 200, codes
            refused = await client.get("/fhir/Task", headers={"Authorization": f"Bearer {noisy}"})
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
            assert refused.json()["resourceType"] == "OperationOutcome"
            assert (await client.get("/fhir/Task", headers={"Authorization": f"Bearer {quiet}"})).status_code == 200
    finally:
        await shutdown(gateway)
