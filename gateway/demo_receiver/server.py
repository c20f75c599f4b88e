"""`DemoReceiver`: the demo receiver's HTTP (uvicorn) and MLLP (asyncio) listeners, started and
stopped together, sharing one record of what arrived, and, if given a `TaskMover`, moving each new
referral's Task along at the gateway. Port 0 picks a free port."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import uvicorn

from gateway.demo_receiver import http, mllp
from gateway.demo_receiver.ledger import ReceivedReferrals
from gateway.demo_receiver.mover import TaskMover

log = logging.getLogger(__name__)


class DemoReceiver:
    def __init__(
        self,
        host: str = "127.0.0.1",
        http_port: int = 0,
        mllp_port: int = 0,
        file: Path | None = None,
        mover: TaskMover | None = None,
    ) -> None:
        self.host = host
        self.http_port = http_port
        self.mllp_port = mllp_port
        self.ledger = ReceivedReferrals(file)
        self.mover = mover
        if mover is not None:
            self.ledger.on_new = mover.referral_arrived
        self._http: uvicorn.Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._mllp: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.mllp_connections_accepted = 0

    @property
    def fhir_base_url(self) -> str:
        return f"http://{self.host}:{self.http_port}/fhir"

    @property
    def mllp_address(self) -> str:
        return f"{self.host}:{self.mllp_port}"

    async def start(self) -> None:
        if self._http is not None:
            return
        if self.mover is not None:
            await self.mover.start()
        self._mllp = await asyncio.start_server(self._serve_mllp, self.host, self.mllp_port)
        self.mllp_port = self._mllp.sockets[0].getsockname()[1]
        config = uvicorn.Config(
            http.create_app(self.ledger), host=self.host, port=self.http_port, log_config=None, lifespan="off"
        )
        self._http = uvicorn.Server(config)
        self._http_task = asyncio.create_task(self._http.serve())
        while not self._http.started:
            if self._http_task.done():
                await self.stop()
                raise RuntimeError(f"the demo receiver could not listen on {self.host}:{self.http_port}")
            await asyncio.sleep(0.02)
        self.http_port = self._http.servers[0].sockets[0].getsockname()[1]
        log.info("demo receiver: FHIR %s, MLLP %s", self.fhir_base_url, self.mllp_address)

    async def stop(self) -> None:
        server, task, self._http, self._http_task = self._http, self._http_task, None, None
        if server is not None and task is not None:
            server.should_exit = True
            await asyncio.gather(task, return_exceptions=True)
        listener, self._mllp = self._mllp, None
        if listener is not None:
            listener.close()
            for connection in list(self._connections):  # senders keep theirs open between messages
                connection.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await listener.wait_closed()
        if self.mover is not None:
            await self.mover.stop()

    async def _serve_mllp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.mllp_connections_accepted += 1
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await mllp.serve_connection(self.ledger, reader, writer)
        finally:
            if task is not None:
                self._connections.discard(task)

    @property
    def mllp_connections(self) -> int:
        """MLLP connections open now (a sender that reuses its connection keeps one)."""
        return len(self._connections)

    async def run(self) -> None:
        """Serve until the HTTP server is told to stop (Ctrl-C, SIGTERM)."""
        await self.start()
        try:
            if self._http_task is not None:
                await self._http_task
        finally:
            await self.stop()
