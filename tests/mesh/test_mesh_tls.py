"""MESH over mutual TLS, as the live service runs it: a mesh-sandbox serving HTTPS that asks every
client for a certificate from its CA. The gateway with its mailbox's certificate and the CA bundle
takes a referral; without a certificate MESH will not talk to it, and the dashboard says so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import mesh_client
import pytest

from gateway.mesh import demo
from gateway.settings import Settings
from tests.conftest import RunningGateway, free_port, serve, shutdown
from tests.delivery.receivers import eventually
from tests.mesh import sandbox
from tests.mesh.conftest import mesh_settings
from tests.mesh.sandbox import GATEWAY, PHYSIO, passwords


@pytest.fixture(scope="module")
def tls_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    store_dir = tmp_path_factory.mktemp("mesh-tls")
    port = free_port()
    proc = sandbox.start(store_dir, port, store_dir / "sandbox.log", tls_dir=store_dir / "pki")
    yield f"https://127.0.0.1:{port}", store_dir / "pki"
    proc.terminate()
    proc.wait(timeout=10)


def partner(url: str, pki: Path, mailbox: str) -> mesh_client.MeshClient:
    cert = (str(pki / f"{mailbox}.pem"), str(pki / f"{mailbox}.key"))
    key = sandbox.SHARED_KEY.encode()
    ca = str(pki / "ca.pem")
    return mesh_client.MeshClient(url, mailbox, passwords()[mailbox], shared_key=key, cert=cert, verify=ca)


def tls_settings(settings: Settings, url: str, pki: Path, with_certificate: bool) -> Settings:
    mesh = mesh_settings(url, ca_file=pki / "ca.pem")
    if with_certificate:
        files = {"cert_file": pki / f"{GATEWAY}.pem", "key_file": pki / f"{GATEWAY}.key"}
        mailbox = mesh.mailboxes[0].model_copy(update=files)
        mesh = mesh.model_copy(update={"mailboxes": [mailbox]})
    delivery = settings.delivery.model_copy(update={"enabled": False})
    return settings.model_copy(update={"mesh": mesh, "delivery": delivery})


async def test_gateway_with_its_mailbox_certificate_takes_a_referral_over_mutual_tls(
    gateway_settings: Settings, tls_sandbox: tuple[str, Path]
) -> None:
    url, pki = tls_sandbox
    gateway: RunningGateway = await serve(tls_settings(gateway_settings, url, pki, with_certificate=True))
    try:
        bundle = demo.physio_referral()
        with partner(url, pki, PHYSIO) as client:
            message_id = client.send_message(GATEWAY, json.dumps(bundle).encode(), workflow_id="BARS_REFERRAL")

            def acknowledged() -> bool:
                return bool(client.track_message(message_id)["status"] == "acknowledged")

            await eventually(acknowledged, timeout=20, what="the acknowledgement over TLS")
        ubrn = bundle["entry"][1]["resource"]["identifier"][0]["value"]
        assert len(await gateway.runtime.store.search({"identifier_value": ubrn})) == 1
    finally:
        await shutdown(gateway)


async def test_gateway_without_a_client_certificate_is_refused_by_mesh_and_shows_the_error(
    gateway_settings: Settings, tls_sandbox: tuple[str, Path]
) -> None:
    url, pki = tls_sandbox
    gateway = await serve(tls_settings(gateway_settings, url, pki, with_certificate=False))
    try:
        assert gateway.runtime.mesh is not None
        state = gateway.runtime.mesh.poller.states[GATEWAY]
        await eventually(lambda: state.errors >= 2, timeout=10, what="refused polls counted")
        assert state.last_poll is None and state.last_error and "failed" in state.last_error
    finally:
        await shutdown(gateway)
