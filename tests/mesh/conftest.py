"""Fixtures for the MESH tests: one mesh-sandbox server for the session (its own process, its own
virtual environment), mailboxes emptied before each test, and a gateway whose MESH settings and
service directory point at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.mesh import demo
from gateway.settings import (
    DeliverySettings,
    MeshMailbox,
    MeshSettings,
    MeshWorkflow,
    Settings,
    StoreSettings,
)
from tests.conftest import free_port
from tests.mesh import sandbox
from tests.mesh.sandbox import CLOSED, GATEWAY, GP, IAPT, PHYSIO, Sandbox

WORKFLOWS = [MeshWorkflow(id="BARS_REFERRAL", format="bars-json"), MeshWorkflow(id="HL7V2_REFERRAL", format="hl7v2")]


@pytest.fixture(scope="session")
def mesh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    store_dir = tmp_path_factory.mktemp("mesh-sandbox")
    port = free_port()
    proc = sandbox.start(store_dir, port, store_dir / "sandbox.log")
    yield Sandbox(f"http://127.0.0.1:{port}", store_dir, store_dir / "stall-acks")
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def mesh(mesh_server: Sandbox) -> Sandbox:
    """The sandbox with every example mailbox empty."""
    mesh_server.stall_file.unlink(missing_ok=True)
    mesh_server.reset(GATEWAY, GP, PHYSIO, IAPT, CLOSED)
    return mesh_server


@pytest.fixture
def store_settings() -> StoreSettings:
    return StoreSettings()


def mesh_settings(url: str, **changes: Any) -> MeshSettings:
    mailbox = MeshMailbox(id=GATEWAY, password=sandbox.passwords()[GATEWAY], workflows=WORKFLOWS)
    base = MeshSettings(
        url=url,
        shared_key=sandbox.SHARED_KEY,
        mailboxes=[mailbox],
        poll_interval_s=0.3,
        track_interval_s=0.1,
        track_timeout_s=2.0,
        chunk_size_bytes=1024,
    )
    return base.model_copy(update=changes)


def schemas_with_mesh(target: Path, iapt_mailbox: str = IAPT) -> Path:
    """A copy of the schemas whose directory reaches the IAPT service (at `iapt_mailbox`) and the
    physio partner by MESH first: the demo's directory (gateway/mesh/demo.py)."""
    return demo.schemas(
        target,
        {
            "NQ1IA": demo.mesh_endpoint("NQ1IA", iapt_mailbox, "BARS_REFERRAL"),
            "NPH01": demo.mesh_endpoint("NPH01", PHYSIO, "BARS_REFERRAL_ACK"),
        },
    )


@pytest.fixture
def gateway_settings(gateway_settings: Settings, mesh: Sandbox, tmp_path: Path) -> Settings:
    delivery = DeliverySettings(new_group_start="latest", backoff_base_s=0.2, backoff_max_s=0.5, max_attempts=3)
    return gateway_settings.model_copy(
        update={
            "schemas_dir": schemas_with_mesh(tmp_path / "schemas"),
            "mesh": mesh_settings(mesh.url),
            "delivery": delivery,
        }
    )
