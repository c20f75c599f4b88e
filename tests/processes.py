"""The gateway as a separate OS process, for tests that kill it, signal it or watch its children."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx


def gateway_env(
    data_dir: Path,
    api_port: int,
    mllp_port: int,
    kafka: str | None = None,
    embedded_port: int | None = None,
    **extra: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "API_", "STORE_", "MLLP_"))}
    env.update(
        {
            "DATA_DIR": str(data_dir),
            "API_PORT": str(api_port),
            "MLLP_PORT": str(mllp_port),
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    if kafka:
        # a test broker is a Tansu like the embedded one: no idempotent producer, short group sessions
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": kafka,
                "KAFKA_ENABLE_IDEMPOTENCE": "false",
                "KAFKA_SESSION_TIMEOUT_MS": "2000",
                "KAFKA_CONSUMER_GROUP_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
                "DELIVERY_NEW_GROUP_START": "latest",  # not the earlier tests' events on the same broker
            }
        )
    if embedded_port:
        env["KAFKA_EMBEDDED_PORT"] = str(embedded_port)
    return env


def start_gateway(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def wait_ready(proc: subprocess.Popen[bytes], base_url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited with {proc.returncode}")
        try:
            if httpx.get(f"{base_url}/fhir/metadata", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the gateway did not become ready")


def child_pids(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone; or reaped between the open and the read
        return False
    return stat.split(")")[-1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def local_token(data_dir: Path) -> str:
    """A bearer token for the development partner a first run on loopback creates
    (DATA_DIR/local-dev-client.json, gateway/auth/bootstrap.py)."""
    credentials = json.loads((data_dir / "local-dev-client.json").read_text())
    response = httpx.post(
        credentials["token_url"],
        data={"grant_type": "client_credentials"},
        auth=(credentials["client_id"], credentials["client_secret"]),
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def local_client(data_dir: Path, base_url: str) -> httpx.Client:
    """An HTTP client holding the development partner's token."""
    token = local_token(data_dir)
    return httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {token}"})
