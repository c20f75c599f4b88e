"""Runs NHS Digital's mesh-sandbox (a local MESH server) with this project's example mailboxes.

Run it with the sandbox's own interpreter (`.venv-mesh-sandbox/bin/python`, made by
`make mesh-sandbox-venv`): mesh-sandbox pins its own FastAPI, so it never shares the gateway's
environment. `make mesh-sandbox` runs it for the demo; the tests' fixture runs it on a free port.

What it sets up, all through the sandbox's own settings and extension points:
- the file store (`STORE_MODE=file`) in `--store-dir`, so messages survive a restart of either side;
- full MESH authentication (`AUTH_MODE=full`): each request's NHSMESH token is an HMAC of mailbox,
  password, nonce and time under `--shared-key`, as MESH checks it;
- mailboxes and workflows from the JSON Lines files in `--data` (mailboxes.jsonl, workflows.jsonl;
  the sandbox's docker compose mounts such files over its own, this points its store at them);
- `--undeliverable MAILBOX`: a mailbox nobody reads. Every message sent to it is reported
  undeliverable at once (tracking says so, and the sender gets a non-delivery report), as MESH does
  when an inbox is not emptied before its messages expire;
- `--tls-dir DIR`: HTTPS with mutual TLS, as MESH itself: the sandbox's own test CA (made in DIR on
  first use, with `cryptography`) signs its server certificate (for 127.0.0.1 and localhost) and
  one client certificate per mailbox (DIR/<MAILBOX>.pem and .key); a client without one is refused;
- `--stall-acks-while FILE`: while FILE exists, an acknowledgement hangs (FILE.held exists while
  one does), and fails once FILE is gone (MESH never records it). Tests use it to stop a gateway after its commit and before MESH has
  heard the acknowledgement.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, ClassVar

HERE = Path(__file__).resolve().parent


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument("--store-dir", type=Path, default=Path("data") / "mesh-sandbox")
    parser.add_argument("--data", type=Path, default=HERE, help="folder with mailboxes.jsonl and workflows.jsonl")
    parser.add_argument("--shared-key", default="TestKey", help="the MESH environment's shared HMAC key")
    parser.add_argument("--undeliverable", action="append", default=["NCLOSED1"], metavar="MAILBOX")
    parser.add_argument("--stall-acks-while", type=Path, default=None, metavar="FILE")
    parser.add_argument("--tls-dir", type=Path, default=None, metavar="DIR")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    args.store_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        STORE_MODE="file",
        MAILBOXES_DATA_DIR=str(args.store_dir.resolve()),
        AUTH_MODE="full",
        SHARED_KEY=args.shared_key,
    )
    import uvicorn  # the sandbox reads its settings from the environment when first imported
    from mesh_sandbox import dependencies
    from mesh_sandbox.api import app
    from mesh_sandbox.common.messaging import Messaging
    from mesh_sandbox.store.file_store import FileStore

    data_dir = str(args.data.resolve())

    class ExampleStore(FileStore):  # type: ignore[misc]
        """The sandbox's file store, reading mailboxes and workflows from our JSON Lines files."""

        def initialise(self) -> None:
            self._canned_data_dir = data_dir
            super().initialise()

    store = ExampleStore(dependencies.get_env_config(), dependencies.get_logger())
    messaging = Messaging(store=store)
    messaging.register_plugin(undeliverable_plugin(messaging, {m.upper() for m in args.undeliverable}))
    if args.stall_acks_while is not None:
        messaging.register_plugin(stalled_acks_plugin(args.stall_acks_while))
    app.dependency_overrides[dependencies.get_messaging] = lambda: messaging
    tls: dict[str, Any] = {}
    if args.tls_dir is not None:
        tls = test_pki(args.tls_dir, mailbox_ids(args.data / "mailboxes.jsonl"))
    scheme = "https" if tls else "http"
    print(f"mesh-sandbox on {scheme}://{args.host}:{args.port} (store {args.store_dir})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", **tls)


def mailbox_ids(path: Path) -> list[str]:
    import json

    return [json.loads(line)["mailbox_id"] for line in path.read_text().splitlines() if line.strip()]


def test_pki(folder: Path, mailboxes: list[str]) -> dict[str, Any]:
    """The sandbox's CA, server certificate and a client certificate per mailbox (made once), and
    uvicorn's settings for mutual TLS with them."""
    import ssl

    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "ca.pem").exists():
        ca_key, ca_cert = _issue(folder, "ca", "mesh-sandbox test CA", None, ca=True)
        _issue(folder, "server", "127.0.0.1", (ca_key, ca_cert), server=True)
        for mailbox in mailboxes:
            _issue(folder, mailbox, mailbox, (ca_key, ca_cert))
    return {
        "ssl_certfile": str(folder / "server.pem"),
        "ssl_keyfile": str(folder / "server.key"),
        "ssl_ca_certs": str(folder / "ca.pem"),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }


def _issue(folder: Path, name: str, common_name: str, issuer: Any, ca: bool = False, server: bool = False) -> Any:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signing_key, signing_cert = issuer if issuer else (key, None)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signing_cert.subject if signing_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(signing_key, hashes.SHA256())
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return key, cert


def undeliverable_plugin(messaging: Any, mailboxes: set[str]) -> type:
    """A sandbox plugin (its `after_accept_message` trigger) that marks messages to `mailboxes`
    undeliverable and sends their senders a non-delivery report, like MESH after inbox expiry."""
    from fastapi import BackgroundTasks
    from mesh_sandbox.common.exceptions import get_ndr_error
    from mesh_sandbox.handlers.admin import AdminHandler
    from mesh_sandbox.models.message import MessageEvent, MessageStatus
    from mesh_sandbox.views.admin import CreateReportRequest

    class UndeliverablePlugin:
        triggers: ClassVar[list[str]] = ["after_accept_message"]

        async def on_event(self, event: str, kwargs: dict[str, Any], err: Exception | None = None) -> None:
            message = kwargs.get("message")
            if err or message is None or message.recipient.mailbox_id not in mailboxes:
                return
            ndr = get_ndr_error()
            failed = MessageEvent(
                status=MessageStatus.UNDELIVERABLE,
                code=ndr.get("errorCode"),
                event=ndr.get("errorEvent"),
                description=ndr.get("errorDescription"),
            )
            await messaging.add_message_event(message, failed, BackgroundTasks())
            report = CreateReportRequest(
                mailbox_id=message.sender.mailbox_id,
                code=str(ndr.get("errorCode") or "14"),
                description=str(ndr.get("errorDescription") or "undeliverable"),
                workflow_id=message.workflow_id or "",
                local_id=message.metadata.local_id,
                linked_message_id=message.message_id,
            )
            await AdminHandler(messaging).create_report(report, BackgroundTasks())

    return UndeliverablePlugin


def stalled_acks_plugin(flag: Path) -> type:
    """A sandbox plugin (its `before_acknowledge_message` trigger) holding acknowledgements while `flag` exists."""
    import asyncio

    class StalledAcksPlugin:
        triggers: ClassVar[list[str]] = ["before_acknowledge_message"]

        async def on_event(self, event: str, kwargs: dict[str, Any], err: Exception | None = None) -> None:
            if not flag.exists():
                return
            held = flag.with_name(flag.name + ".held")  # says an acknowledgement is being held now
            held.touch()
            try:
                for _ in range(600):
                    if not flag.exists():
                        break
                    await asyncio.sleep(0.1)
            finally:
                held.unlink(missing_ok=True)
            raise RuntimeError("acknowledgement stalled, then dropped")

    return StalledAcksPlugin


if __name__ == "__main__":
    main()
