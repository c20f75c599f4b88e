"""The MESH walk-through's other side: the example organisations' mailboxes in a local mesh-sandbox
(`make mesh-sandbox`), driven from the command line, and the service directory that reaches them.

    python -m gateway.mesh.demo schemas DIR            the schemas with MESH endpoints first (IAPT, physio)
    python -m gateway.mesh.demo referral               the physio partner sends a BaRS IAPT referral
    python -m gateway.mesh.demo inbox MAILBOX [--take] what waits in an example mailbox (--take: download)
    python -m gateway.mesh.demo answer REFERRAL STATUS the IAPT service moves the referral's Task

Each organisation speaks to MESH with its own mesh-client and password (deploy/mesh-sandbox/
mailboxes.jsonl); the gateway is only ever reached through its mailbox. Not used by the gateway itself.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import uuid
from pathlib import Path
from typing import Any

import mesh_client

from gateway.canonical import nhs_number, systems
from gateway.settings import SCHEMAS_DIR

SANDBOX = Path("deploy") / "mesh-sandbox"
GATEWAY, PHYSIO, IAPT = "X26GW001", "NPH01MB1", "NQ1IAMB1"
CONNECTION_TYPES = "https://referral-gateway.nhs.example/CodeSystem/endpoint-connection-type"


def mesh_endpoint(org: str, mailbox: str, workflow: str, mime: str = "application/fhir+json") -> dict[str, Any]:
    return {
        "resourceType": "Endpoint",
        "id": f"{org}-mesh",
        "status": "active",
        "connectionType": {"system": CONNECTION_TYPES, "code": "mesh", "display": "MESH mailbox"},
        "name": f"{org} MESH mailbox",
        "managingOrganization": {"reference": f"Organization/{org}"},
        "payloadType": [{"text": "BaRS message Bundle" if "fhir" in mime else "HL7 v2 file"}],
        "payloadMimeType": [mime],
        "address": f"mesh:{mailbox}",
        "header": [f"Mex-WorkflowID: {workflow}"],
    }


def schemas(target: Path, endpoints: dict[str, dict[str, Any]] | None = None) -> Path:
    """A copy of the schemas whose directory reaches the IAPT service (referrals, BARS_REFERRAL) and
    the physio partner (its Task changes, BARS_REFERRAL_ACK) by MESH before anything else."""
    endpoints = endpoints or {
        "NQ1IA": mesh_endpoint("NQ1IA", IAPT, "BARS_REFERRAL"),
        "NPH01": mesh_endpoint("NPH01", PHYSIO, "BARS_REFERRAL_ACK"),
    }
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(SCHEMAS_DIR, target)
    path = target / "directory" / "directory.json"
    bundle = json.loads(path.read_text())
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Organization" and resource["id"] in endpoints:
            resource["endpoint"].insert(0, {"reference": f"Endpoint/{endpoints[resource['id']]['id']}"})
    bundle["entry"] += [{"fullUrl": f"urn:uuid:{e['id']}", "resource": e} for e in endpoints.values()]
    path.write_text(json.dumps(bundle, indent=2))
    return target


def physio_referral() -> dict[str, Any]:
    """The BaRS IAPT sample as the physio partner (NPH01) sends it, with a fresh UBRN and NHS number."""
    text = (SCHEMAS_DIR / "samples" / "fhir" / "bars-message-iapt-referral.json").read_text()
    bundle: dict[str, Any] = json.loads(text.replace("A81002", "NPH01"))
    bundle["entry"][1]["resource"]["identifier"][0]["value"] = uuid.uuid4().hex[:12]
    bundle["entry"][2]["resource"]["identifier"][0]["value"] = _nhs_number()
    return bundle


def task_answer(referral_id: str, status: str, text: str | None = None) -> dict[str, Any]:
    """A receiver's BaRS servicerequest-response: its Task, naming the gateway's referral id."""
    task_url = f"urn:uuid:{uuid.uuid4()}"
    return {
        "resourceType": "Bundle",
        "type": "message",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "MessageHeader",
                    "eventCoding": {
                        "system": systems.BARS_MESSAGE_EVENTS,
                        "code": systems.BARS_EVENT_SERVICEREQUEST_RESPONSE,
                    },
                    "source": {"endpoint": f"urn:nhs-mesh:{IAPT}"},
                    "focus": [{"reference": task_url}],
                },
            },
            {
                "fullUrl": task_url,
                "resource": {
                    "resourceType": "Task",
                    "status": status,
                    "intent": "order",
                    "focus": {"identifier": {"system": systems.REFERRAL_ID, "value": referral_id}},
                    "businessStatus": {"text": text or f"NHS Talking Therapies: {status}"},
                },
            },
        ],
    }


def client(url: str, mailbox: str, key: str) -> mesh_client.MeshClient:
    lines = (SANDBOX / "mailboxes.jsonl").read_text().splitlines()
    passwords = {m["mailbox_id"]: m["password"] for m in (json.loads(line) for line in lines if line.strip())}
    return mesh_client.MeshClient(url, mailbox, passwords[mailbox], shared_key=key.encode(), max_retries=0)


def _nhs_number() -> str:
    rng = random.SystemRandom()
    while True:
        first = "".join(str(rng.randint(0, 9)) for _ in range(9))
        digit = nhs_number.check_digit(first)
        if digit is not None:
            return f"{first}{digit}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.mesh.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8700")
    parser.add_argument("--shared-key", default="TestKey")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("schemas").add_argument("target", type=Path)
    commands.add_parser("referral")
    inbox = commands.add_parser("inbox")
    inbox.add_argument("mailbox")
    inbox.add_argument("--take", action="store_true", help="download and acknowledge each message")
    answer = commands.add_parser("answer")
    answer.add_argument("referral_id")
    answer.add_argument("status")
    args = parser.parse_args(argv)
    if args.command == "schemas":
        print(schemas(args.target))
    elif args.command == "referral":
        _send(args, PHYSIO, physio_referral(), "BARS_REFERRAL")
    elif args.command == "answer":
        _send(args, IAPT, task_answer(args.referral_id, args.status), "BARS_REFERRAL_ACK")
    else:
        _inbox(args)


def _send(args: argparse.Namespace, mailbox: str, bundle: dict[str, Any], workflow: str) -> None:
    with client(args.url, mailbox, args.shared_key) as mesh:
        message_id = mesh.send_message(GATEWAY, json.dumps(bundle).encode(), workflow_id=workflow)
    print(f"{mailbox} sent {workflow} message {message_id} to {GATEWAY}")


def _inbox(args: argparse.Namespace) -> None:
    with client(args.url, args.mailbox, args.shared_key) as mesh:
        for message_id in mesh.list_messages():
            message = mesh.retrieve_message(message_id)
            body = message.read()
            message.close()
            print(f"--- {message_id} from {message.sender} on {message.workflow_id} (Mex-LocalID {message.local_id})")
            print(_summary(body))
            if args.take:
                mesh.acknowledge_message(message_id)


def _summary(body: bytes) -> str:
    """A Bundle's resources by type and their statuses; anything else as text."""
    try:
        bundle = json.loads(body)
    except ValueError:
        return body.decode(errors="replace").replace("\r", "\n")
    found = [e["resource"] for e in bundle.get("entry", [])]
    return "\n".join(f"  {r['resourceType']} {r.get('id', '')} {r.get('status', '')}".rstrip() for r in found)


if __name__ == "__main__":
    main()
