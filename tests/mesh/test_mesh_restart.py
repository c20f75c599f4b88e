"""A gateway process killed after it committed a MESH message's referral and before MESH recorded
the acknowledgement: the message is still in the inbox, the restarted gateway takes it again, and
there is one referral. The gateway is a real separate process (tests/processes.py), killed with
SIGKILL; the sandbox holds the acknowledgement back (serve.py --stall-acks-while) so the kill lands
in exactly that gap."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.mesh import demo
from tests.conftest import free_port
from tests.mesh.conftest import WORKFLOWS
from tests.mesh.sandbox import GATEWAY, IAPT, PHYSIO, Sandbox, passwords
from tests.mesh.test_mesh_inbound import physio_referral, send, status_at_mesh, ubrn_of
from tests.processes import gateway_env, local_client, start_gateway, wait_ready


def mesh_env(mesh: Sandbox) -> dict[str, str]:
    mailbox = {"id": GATEWAY, "password": passwords()[GATEWAY], "workflows": [w.model_dump() for w in WORKFLOWS]}
    return {
        "MESH_URL": mesh.url,
        "MESH_SHARED_KEY": "TestKey",
        "MESH_MAILBOXES": json.dumps([mailbox]),
        "MESH_POLL_INTERVAL_S": "0.3",
        "DELIVERY_ENABLED": "false",  # this test is about the inbound side only
    }


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.1)


def referrals(client: httpx.Client, ubrn: str) -> list[dict[str, object]]:
    found = client.get("/fhir/ServiceRequest", params={"identifier": ubrn}).json()
    return [e["resource"] for e in found.get("entry", [])]


def test_gateway_killed_between_commit_and_acknowledgement_takes_the_message_again_as_one_referral(
    mesh: Sandbox, broker_servers: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    api_port = free_port()
    env = gateway_env(tmp_path, api_port, free_port(), kafka=broker_servers, **mesh_env(mesh))
    base_url = f"http://127.0.0.1:{api_port}"
    bundle = physio_referral()
    mesh.stall_file.touch()  # acknowledgements hang from now on
    message_id = send(mesh, PHYSIO, json.dumps(bundle).encode(), "BARS_REFERRAL")

    first = start_gateway(env, tmp_path / "gateway-1.log")
    processes.append(first)
    wait_ready(first, base_url)
    with local_client(tmp_path, base_url) as client:
        wait_for(lambda: referrals(client, ubrn_of(bundle)), 20, "the referral committed")
    wait_for(lambda: mesh.holding_an_acknowledgement, 10, "the acknowledgement held by MESH")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    mesh.stall_file.unlink()
    wait_for(lambda: not mesh.holding_an_acknowledgement, 10, "the held acknowledgement dropped")
    assert status_at_mesh(mesh, PHYSIO, message_id) == "accepted"

    second = start_gateway(env, tmp_path / "gateway-2.log")
    processes.append(second)
    wait_ready(second, base_url)
    wait_for(lambda: status_at_mesh(mesh, PHYSIO, message_id) == "acknowledged", 20, "the acknowledgement")
    with local_client(tmp_path, base_url) as client:
        assert len(referrals(client, ubrn_of(bundle))) == 1
    log = (tmp_path / "gateway-2.log").read_text()
    assert f"MESH {message_id} from {PHYSIO}" in log and "duplicate" in log


def test_gateway_killed_while_following_a_sent_message_does_not_send_it_a_second_time(
    mesh: Sandbox, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """The gateway sent the referral to the IAPT service's mailbox and was killed while it waited for
    the download (nothing recorded as delivered, the event not yet committed by its consumer). After
    the restart the delivery runs again, finds the MESH message it had sent, and follows it: the
    receiver's inbox holds the referral once, and its download settles the delivery."""
    api_port = free_port()
    extra = {
        **mesh_env(mesh),
        "DELIVERY_ENABLED": "true",
        "MESH_TRACK_TIMEOUT_S": "3",
        "MESH_TRACK_INTERVAL_S": "0.2",
        "DELIVERY_BACKOFF_BASE_S": "0.2",
        "DELIVERY_BACKOFF_MAX_S": "0.5",
        "SCHEMAS_DIR": str(demo.schemas(tmp_path / "schemas")),
    }
    env = gateway_env(tmp_path, api_port, free_port(), embedded_port=free_port(), **extra)  # a broker of its own
    base_url = f"http://127.0.0.1:{api_port}"
    first = start_gateway(env, tmp_path / "gateway-1.log")
    processes.append(first)
    wait_ready(first, base_url)
    bundle = physio_referral()
    send(mesh, PHYSIO, json.dumps(bundle).encode(), "BARS_REFERRAL")
    wait_for(lambda: len(mesh.inbox(IAPT)) == 1, 30, "the referral in the IAPT service's inbox")
    [sent] = mesh.inbox(IAPT)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    second = start_gateway(env, tmp_path / "gateway-2.log")
    processes.append(second)
    wait_ready(second, base_url)
    wait_for(lambda: "following MESH message" in (tmp_path / "gateway-2.log").read_text(), 30, "the delivery again")
    assert [m["local_id"] for m in mesh.inbox(IAPT)] == [sent["local_id"]]
    with mesh.mailbox(IAPT) as client:
        client.acknowledge_message(sent["message_id"])
    wait_for(lambda: "delivered to iapt-core (mesh" in (tmp_path / "gateway-2.log").read_text(), 30, "the delivery")
    assert [m["local_id"] for m in mesh.outbox(GATEWAY)].count(sent["local_id"]) == 1
