"""Fixtures for the MESH tests: one mesh-sandbox server for the session (its own process, its own
virtual environment), mailboxes emptied before each test, and a gateway whose MESH settings and
service directory point at it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import (
    SCHEMAS_DIR,
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

CONNECTION_TYPES = "https://referral-gateway.nhs.example/CodeSystem/endpoint-connection-type"
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
        track_timeout_s=5.0,
        chunk_size_bytes=1024,
    )
    return base.model_copy(update=changes)


def mesh_endpoint(endpoint_id: str, org: str, address: str, workflow: str, mime: str) -> dict[str, Any]:
    return {
        "resourceType": "Endpoint",
        "id": endpoint_id,
        "status": "active",
        "connectionType": {"system": CONNECTION_TYPES, "code": "mesh"},
        "name": f"{org} MESH mailbox",
        "managingOrganization": {"reference": f"Organization/{org}"},
        "payloadType": [{"text": "BaRS message Bundle"}],
        "payloadMimeType": [mime],
        "address": f"mesh:{address}",
        "header": [f"Mex-WorkflowID: {workflow}"],
    }


def schemas_with_mesh(target: Path, iapt_mailbox: str = IAPT, iapt_mime: str = "application/fhir+json") -> Path:
    """A copy of the schemas whose directory reaches the IAPT service and the physio partner by MESH
    first (the IAPT service on BARS_REFERRAL, the partner's status on BARS_REFERRAL_ACK)."""
    shutil.copytree(SCHEMAS_DIR, target)
    path = target / "directory" / "directory.json"
    bundle = json.loads(path.read_text())
    workflow = "HL7V2_REFERRAL" if "hl7" in iapt_mime else "BARS_REFERRAL"
    added = {
        "NQ1IA": mesh_endpoint("NQ1IA-mesh", "NQ1IA", iapt_mailbox, workflow, iapt_mime),
        "NPH01": mesh_endpoint("NPH01-mesh", "NPH01", PHYSIO, "BARS_REFERRAL_ACK", "application/fhir+json"),
    }
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Organization" and resource["id"] in added:
            resource["endpoint"].insert(0, {"reference": f"Endpoint/{resource['id']}-mesh"})
    bundle["entry"] += [{"fullUrl": f"urn:uuid:{e['id']}", "resource": e} for e in added.values()]
    path.write_text(json.dumps(bundle))
    return target


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
