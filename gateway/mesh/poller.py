"""The MESH inbound loop: every poll interval, each of the gateway's mailboxes is listed and each
message in it is retrieved, taken (gateway/mesh/inbound.py) and only then acknowledged.

    list → retrieve (chunks joined) → take: committed? → [answer the sender on W_ACK] → acknowledge

Acknowledging deletes the message from MESH, so it comes strictly after the commit (and after a
refusal's answer was accepted by MESH): a gateway stopped in between finds the message again at its
next poll and the intake recognises it. A message whose taking failed on the gateway's side stays in
the inbox for the next poll. Each mailbox's state (last poll, messages waiting, errors, the oldest
message not yet acknowledged) is kept for the dashboard. Idempotent `start()`/`stop()`.
Must not: interpret messages (inbound.py) or speak HTTP itself (client.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from gateway.errors import GatewayError
from gateway.mesh.client import MeshMailboxClient, Received
from gateway.mesh.inbound import MeshInbound, Taken
from gateway.mesh.state import MailboxState
from gateway.observability import mesh_metrics as metrics
from gateway.settings import MeshMailbox, MeshSettings

log = logging.getLogger(__name__)


class MeshPoller:
    def __init__(self, settings: MeshSettings, inbound: MeshInbound, clients: dict[str, MeshMailboxClient]) -> None:
        self._settings = settings
        self._inbound = inbound
        self._clients = clients
        self._mailboxes = {m.id: m for m in settings.mailboxes}
        self.states = {m.id: MailboxState(m.id, [w.id for w in m.workflows]) for m in settings.mailboxes}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is not None:
            return
        for mailbox, client in self._clients.items():
            try:
                await client.handshake()
            except GatewayError as error:  # MESH may be down at start-up: the loop keeps trying
                self._failed(mailbox, error)
        self._task = asyncio.create_task(self._run(), name="mesh-poller")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def poll_now(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            for mailbox in self._mailboxes.values():
                await self.poll(mailbox)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval_s)

    async def poll(self, mailbox: MeshMailbox) -> None:
        """One pass over a mailbox's inbox; a failure is counted and the next pass tries again."""
        state, client = self.states[mailbox.id], self._clients[mailbox.id]
        try:
            waiting = await client.inbox()
        except GatewayError as error:
            self._failed(mailbox.id, error)
            return
        state.last_poll, state.waiting = datetime.now(UTC), len(waiting)
        state.first_seen = {i: state.first_seen.get(i, state.last_poll) for i in waiting}
        for message_id in waiting:
            try:
                await self._one(mailbox, client, message_id)
            except GatewayError as error:
                self._failed(mailbox.id, error)
            except Exception as exc:  # one bad message must not stop the mailbox: it stays, counted
                log.exception("MESH message %s in %s failed unexpectedly", message_id, mailbox.id)
                self._failed(mailbox.id, GatewayError(f"unexpected {type(exc).__name__}"))

    async def _one(self, mailbox: MeshMailbox, client: MeshMailboxClient, message_id: str) -> None:
        started = time.perf_counter()
        received = await client.retrieve(message_id)
        taken = await self._inbound.take(mailbox, received)
        if taken.answer is not None:
            await self._answer(client, received, taken)
        await client.acknowledge(message_id)
        state = self.states[mailbox.id]
        state.first_seen.pop(message_id, None)
        state.waiting = max(0, state.waiting - 1)
        state.taken += 1
        state.refused += taken.outcome == "refused"
        if taken.outcome == "refused" and taken.answer is None:  # nobody was told: the dashboard says it
            state.last_error = f"{received.workflow_id} {message_id} from {received.sender} not taken: {taken.error}"
        metrics.message(mailbox.id, "in", taken.outcome, time.perf_counter() - started)
        log.info(
            "MESH %s from %s (%s, %d chunk(s)): %s %s",
            message_id,
            received.sender,
            received.workflow_id or received.message_type,
            received.chunks,
            taken.outcome,
            taken.referral_id or taken.error or "",
        )

    async def _answer(self, client: MeshMailboxClient, received: Received, taken: Taken) -> None:
        """A refusal (or an HL7 v2 AA) goes back to the sender on the workflow's answer before the
        message is let go."""
        assert taken.answer is not None and taken.answer_workflow is not None
        await client.send(
            received.sender,
            taken.answer,
            workflow_id=taken.answer_workflow,
            local_id=received.message_id,
            filename=f"{received.message_id}_ACK",
            subject=taken.outcome,
            content_type=taken.answer_type or "application/octet-stream",
        )

    def _failed(self, mailbox: str, error: GatewayError) -> None:
        state = self.states[mailbox]
        state.errors += 1
        state.last_error = error.message
        metrics.error(mailbox)
        log.warning("MESH mailbox %s: %s", mailbox, error.message)
