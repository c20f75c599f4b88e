"""`referral-gateway serve` owns its embedded broker: started with it, never outliving it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.kafka_reader import read_events
from tests.processes import child_pids, gateway_env, start_gateway, wait_gone, wait_ready


def serve_embedded(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, str, int]:
    api, broker = free_port(), free_port()
    proc = start_gateway(gateway_env(tmp_path, api, free_port(), embedded_port=broker), tmp_path / "gateway.log")
    wait_ready(proc, f"http://127.0.0.1:{api}")
    (broker_pid,) = child_pids(proc.pid)
    return proc, broker_pid, f"127.0.0.1:{broker}", api


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_broker_starts_with_the_gateway_and_stops_on_a_signal(tmp_path: Path, stop: signal.Signals) -> None:
    proc, broker_pid, servers, _ = serve_embedded(tmp_path)
    assert read_events(servers, "referrals.iapt", 0) == []  # the topics exist and a foreign client reads them
    proc.send_signal(stop)
    # a graceful stop, then the signal's own exit status (uvicorn re-raises it), as a shell expects
    assert proc.wait(timeout=20) in (0, -stop, 128 + stop)
    assert wait_gone(broker_pid), "the embedded broker outlived the gateway"


def test_ctrl_c_in_a_terminal_stops_everything_cleanly_before_the_broker(tmp_path: Path) -> None:
    """A terminal's Ctrl-C signals the whole foreground process group: the broker must not die first,
    or the gateway's consumers fail their shutdown against a broker that is gone."""
    api = free_port()
    env = gateway_env(tmp_path, api, free_port(), embedded_port=free_port())
    log = tmp_path / "gateway.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a shell gives a foreground job
        )
    wait_ready(proc, f"http://127.0.0.1:{api}")
    (broker_pid,) = child_pids(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=20) in (0, -signal.SIGINT, 128 + signal.SIGINT)
    assert wait_gone(broker_pid), "the embedded broker outlived the gateway"
    text = log.read_text()
    assert "Application shutdown complete" in text
    assert '"level": "ERROR"' not in text, [line for line in text.splitlines() if '"ERROR"' in line][:3]


def test_kill_9_of_the_gateway_takes_the_broker_with_it(tmp_path: Path) -> None:
    proc, broker_pid, _, _ = serve_embedded(tmp_path)
    proc.kill()
    proc.wait(timeout=10)
    assert wait_gone(broker_pid), "the embedded broker was orphaned by kill -9"


def test_start_up_failing_half_way_leaves_no_broker(tmp_path: Path) -> None:
    api, broker = free_port(), free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", api))
        taken.listen()
        proc = start_gateway(gateway_env(tmp_path, api, free_port(), embedded_port=broker), tmp_path / "gw.log")
        assert proc.wait(timeout=30) != 0
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", broker)) != 0, "the broker still listens after a failed start"


def test_a_taken_broker_port_is_a_clear_error(tmp_path: Path) -> None:
    broker = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", broker))
        taken.listen()
        proc = start_gateway(gateway_env(tmp_path, free_port(), free_port(), embedded_port=broker), tmp_path / "gw.log")
        assert proc.wait(timeout=30) != 0
    assert "already in use" in (tmp_path / "gw.log").read_text()
