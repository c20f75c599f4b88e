"""`referral-gateway demo-receiver` as its own process: it takes referrals over FHIR and MLLP, records
them to a JSON Lines file, can be told to fail over HTTP, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.samples import service_request


def start_demo_receiver(tmp_path: Path, http_port: int, mllp_port: int) -> subprocess.Popen[bytes]:
    with (tmp_path / "demo.log").open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "demo-receiver",
                "--http-port",
                str(http_port),
                "--mllp-port",
                str(mllp_port),
                "--record",
                str(tmp_path / "received.jsonl"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{http_port}/_demo/received", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the demo receiver did not start")


def test_the_demo_receiver_takes_records_and_fails_on_request(tmp_path: Path) -> None:
    http_port, mllp_port = free_port(), free_port()
    proc = start_demo_receiver(tmp_path, http_port, mllp_port)
    base = f"http://127.0.0.1:{http_port}"
    sr = service_request()
    ident = f"{sr['identifier'][0]['system']}|{sr['identifier'][0]['value']}"
    headers = {"content-type": "application/fhir+json", "if-none-exist": f"identifier={ident}"}
    try:
        created = httpx.post(f"{base}/fhir/ServiceRequest", content=json.dumps(sr), headers=headers)
        httpx.put(f"{base}/_demo/behaviour", json={"http_status": 503, "times": 1})
        refused = httpx.post(f"{base}/fhir/ServiceRequest", content=json.dumps(sr), headers=headers)
        again = httpx.post(f"{base}/fhir/ServiceRequest", content=json.dumps(sr), headers=headers)
        seen = httpx.get(f"{base}/_demo/requests").json()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 130, "Ctrl-C ends it the way Ctrl-C ends a command"
    finally:
        proc.kill()
    assert [created.status_code, refused.status_code, again.status_code] == [201, 503, 200]
    assert [h["outcome"] for h in seen] == ["created", "failed: 503", "duplicate"]
    assert "Traceback" not in (tmp_path / "demo.log").read_text()
    (line,) = (tmp_path / "received.jsonl").read_text().splitlines()
    assert json.loads(line)["identity"] == ident and json.loads(line)["format"] == "fhir-rest"
