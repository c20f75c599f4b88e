"""`referral-gateway serve --workers N`: N gateway processes on one machine, for more cores than one
interpreter uses.

    parent: checks the store, makes the signing key, runs the embedded broker (when no cluster)
      ├── worker 1: `serve` with API_REUSE_PORT and MLLP_REUSE_PORT, its own runtime
      └── worker N: the same; the kernel spreads connections over the workers (SO_REUSEPORT)

Each worker is a whole gateway (store, relay, consumers, listeners), as replicas behind a load
balancer are: they share one PostgreSQL store, whose outbox claim (FOR UPDATE SKIP LOCKED) keeps
their relays from publishing a row twice, and one consumer group per delivery group. SQLite serves
one process, so more than one worker on it is refused. The embedded broker is started once, by the
parent, which supervises it; the workers are pointed at it as at a cluster they do not run, tuned as
the gateway tunes its embedded broker (no idempotent producer, one replica, short group sessions).
The signing key is made before the workers start (DATA_DIR/signing.key), so that a token one worker
issues is good at every other.

SIGTERM or SIGINT to the parent stops every worker (SIGTERM: each drains and stops its runtime), then
the broker. A worker that exits on its own stops the others, and the parent exits non-zero: the
service manager decides what happens next. The workers run in sessions of their own and die with
the parent (PR_SET_PDEATHSIG), so a terminal's Ctrl-C reaches them once, through the parent.
Must not: serve anything itself, or import an HTTP module (a worker is `serve` in a process of its own).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Sequence

from gateway.auth.keys import signing_key
from gateway.bus.broker import EmbeddedBroker
from gateway.bus.topics import ensure_topics, load_topics
from gateway.settings import Settings

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 30.0  # a worker's graceful stop (uvicorn's 10 s, then its runtime) before SIGKILL


class Refused(Exception):
    """`--workers` asked for what these settings cannot serve."""


def check(settings: Settings, workers: int) -> None:
    if workers < 1:
        raise Refused("--workers must be at least 1")
    if workers > 1 and not settings.store_url.startswith("postgresql"):
        raise Refused(
            f"--workers {workers} needs a PostgreSQL store (STORE_URL=postgresql+asyncpg://...): "
            "SQLite serves one process"
        )


def worker_env(settings: Settings, environ: dict[str, str] | None = None) -> dict[str, str]:
    """A worker's environment: the parent's, sharing the ports, pointed at the parent's broker."""
    env = dict(os.environ if environ is None else environ)
    env.update(API_REUSE_PORT="true", MLLP_REUSE_PORT="true")
    if settings.kafka.embedded:
        env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka.servers
        for name, value in (
            ("KAFKA_ENABLE_IDEMPOTENCE", "false"),  # Tansu refuses it
            ("KAFKA_REPLICATION_FACTOR", "1"),
            ("KAFKA_SESSION_TIMEOUT_MS", "2000"),
        ):
            env.setdefault(name, value)
    return env


def serve(settings: Settings, workers: int, argv: Sequence[str] = ("serve",)) -> int:
    """Run `workers` worker processes until a signal or one of them exits; the exit status."""
    check(settings, workers)
    if settings.auth.signing_key is None:
        signing_key(settings)  # DATA_DIR/signing.key, made once here rather than raced for by the workers
    return asyncio.run(_Supervisor(settings, workers, list(argv)).run())


class _Supervisor:
    def __init__(self, settings: Settings, workers: int, argv: list[str]) -> None:
        self.settings = settings
        self.count = workers
        self.argv = argv
        self.procs: list[asyncio.subprocess.Process] = []
        kafka = settings.kafka
        self.broker = (
            EmbeddedBroker(
                kafka.embedded_host, kafka.embedded_port, settings.data_dir / "broker.log", on_restarted=self._topics
            )
            if kafka.embedded
            else None
        )

    async def run(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            if self.broker is not None:
                await self.broker.start()
                await self._topics()
            env = worker_env(self.settings)
            for index in range(self.count):
                self.procs.append(await self._spawn(env))
                log.info("worker %d of %d: pid %s", index + 1, self.count, self.procs[-1].pid)
            return await self._until_stopped(stop)
        finally:
            await self._stop_workers()
            if self.broker is not None:
                await self.broker.stop()

    async def _spawn(self, env: dict[str, str]) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            *self.argv,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )

    async def _until_stopped(self, stop: asyncio.Event) -> int:
        signalled = asyncio.ensure_future(stop.wait())
        exits = [asyncio.ensure_future(p.wait()) for p in self.procs]
        done, _ = await asyncio.wait([signalled, *exits], return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
        if signalled in done:
            log.info("stopping %d workers", self.count)
            return 0
        (ended,) = [p for p, e in zip(self.procs, exits, strict=True) if e in done][:1]
        log.error("worker pid %s exited with %s: stopping the others", ended.pid, ended.returncode)
        return 1

    async def _stop_workers(self) -> None:
        running = [p for p in self.procs if p.returncode is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*(self._reap(p) for p in running))

    @staticmethod
    async def _reap(proc: asyncio.subprocess.Process) -> None:
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("worker pid %s did not stop within %gs: killed", proc.pid, STOP_TIMEOUT_S)
            proc.kill()
            await proc.wait()

    async def _topics(self) -> None:
        """Every topic on the (new, or restarted and empty) broker before and while workers publish."""
        await ensure_topics(self.settings.kafka, load_topics(self.settings.schemas_dir))


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
