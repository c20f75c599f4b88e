"""NHS Digital's mesh-sandbox as a separate server process for the MESH tests, from its own virtual
environment (`make mesh-sandbox-venv`), with the example mailboxes of deploy/mesh-sandbox; and the
tests' view of it: each example organisation's own mesh-client, and the sandbox's admin endpoints."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mesh_client

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_DIR = ROOT / "deploy" / "mesh-sandbox"
SANDBOX_PYTHON = ROOT / ".venv-mesh-sandbox" / "bin" / "python"
SHARED_KEY = "TestKey"

GATEWAY, GP, PHYSIO, IAPT, CLOSED = "X26GW001", "A81001MB", "NPH01MB1", "NQ1IAMB1", "NCLOSED1"


def passwords() -> dict[str, str]:
    lines = (SANDBOX_DIR / "mailboxes.jsonl").read_text().splitlines()
    return {m["mailbox_id"]: m["password"] for m in (json.loads(line) for line in lines if line.strip())}


def ensure_venv() -> Path:
    """The sandbox's interpreter; `make` builds its environment first if this machine has none yet."""
    if not (SANDBOX_PYTHON.parent.parent / ".installed").exists():
        subprocess.run(["make", "-s", "mesh-sandbox-venv"], cwd=ROOT, check=True)
    return SANDBOX_PYTHON


@dataclass
class Sandbox:
    url: str
    store_dir: Path
    stall_file: Path  # while it exists, acknowledgements hang (then fail): see serve.py --stall-acks-while

    @property
    def holding_an_acknowledgement(self) -> bool:
        return self.stall_file.with_name(self.stall_file.name + ".held").exists()

    def client(self, mailbox: str) -> mesh_client.MeshClient:
        return mesh_client.MeshClient(
            self.url, mailbox, passwords()[mailbox], shared_key=SHARED_KEY.encode(), max_retries=0, max_chunk_size=1024
        )

    @contextmanager
    def mailbox(self, mailbox: str) -> Iterator[mesh_client.MeshClient]:
        client = self.client(mailbox)
        try:
            yield client
        finally:
            client.close()

    def reset(self, *mailboxes: str) -> None:
        for mailbox in mailboxes:
            httpx.delete(f"{self.url}/admin/reset/{mailbox}", timeout=10).raise_for_status()

    def message(self, message_id: str) -> dict[str, Any]:
        """What the sandbox holds of a message (its admin view: status, local id, ...)."""
        response = httpx.get(f"{self.url}/messageexchange/admin/message/{message_id}", timeout=10)
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def outbox(self, mailbox: str) -> list[dict[str, Any]]:
        """What `mailbox` sent, newest first, with MESH's status of each (the rich outbox)."""
        token = mesh_client.AuthTokenGenerator(SHARED_KEY.encode(), mailbox, passwords()[mailbox])
        headers = {"Authorization": token.generate_token(), "Accept": "application/vnd.mesh.v2+json"}
        response = httpx.get(f"{self.url}/messageexchange/{mailbox}/outbox/rich", headers=headers, timeout=10)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()["messages"]
        return found

    def inbox(self, mailbox: str) -> list[dict[str, Any]]:
        """Every message waiting in `mailbox`, read as its owner reads it (not acknowledged)."""
        with self.mailbox(mailbox) as client:
            found = []
            for message_id in client.list_messages():
                message = client.retrieve_message(message_id)
                body = message.read()
                message.close()
                found.append(
                    {
                        "message_id": message_id,
                        "sender": message.sender,
                        "workflow_id": message.workflow_id,
                        "local_id": message.local_id,
                        "message_type": message.message_type,
                        "content_type": message.content_type,
                        "body": body,
                    }
                )
            return found


def start(store_dir: Path, port: int, log: Path, tls_dir: Path | None = None) -> subprocess.Popen[bytes]:
    """The sandbox on `port`; with `tls_dir`, over mutual TLS (its test CA and certificates made there)."""
    python = ensure_venv()
    stall = store_dir / "stall-acks"
    command = [
        str(python),
        str(SANDBOX_DIR / "serve.py"),
        f"--port={port}",
        f"--store-dir={store_dir}",
        f"--shared-key={SHARED_KEY}",
        f"--stall-acks-while={stall}",
        *([f"--tls-dir={tls_dir}"] if tls_dir else []),
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mesh-sandbox exited with {proc.returncode}; see {log}")
        try:
            if tls_dir is None and httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
            if tls_dir is not None and (tls_dir / "X26GW001.pem").exists() and _tls_answers(port, tls_dir):
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"mesh-sandbox did not answer; see {log}")


def _tls_answers(port: int, tls_dir: Path) -> bool:
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
    context.load_cert_chain(str(tls_dir / "X26GW001.pem"), str(tls_dir / "X26GW001.key"))
    with httpx.Client(verify=context, timeout=1) as client:
        return client.get(f"https://127.0.0.1:{port}/health").status_code == 200
