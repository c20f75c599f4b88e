"""The MESH channel as one Runtime component: a client per mailbox, the poller over them, and the
outbox delivery sends through (from the sending mailbox). Built only when MESH is configured.
Idempotent `start()`/`stop()`: the poller stops before the clients close.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.hl7v2.tables import Hl7Tables
from gateway.inbound_log.log import InboundLog
from gateway.mesh.client import MeshMailboxClient
from gateway.mesh.inbound import Intake, MeshInbound
from gateway.mesh.outbox import MeshSender
from gateway.mesh.owners import MeshOwners
from gateway.mesh.poller import MeshPoller
from gateway.mesh.state import MailboxState
from gateway.routing.directory import Directory
from gateway.settings import Hl7SenderOrganisations, MeshSettings
from gateway.status import StatusUpdates
from gateway.store import Store
from gateway.store.mesh_sent import MeshSentLog


class Mesh:
    def __init__(
        self,
        settings: MeshSettings,
        intake: Intake,
        status: StatusUpdates,
        store: Store,
        hl7: Hl7Tables,
        directory: Directory,
        hl7_senders: Sequence[Hl7SenderOrganisations] = (),
        inbound_log: InboundLog | None = None,
    ) -> None:
        self.settings = settings
        self.clients = {m.id: MeshMailboxClient(settings, m) for m in settings.mailboxes}
        self.sent = MeshSentLog(store)
        self.outbox = MeshSender(settings, self.clients[settings.sender.id], self.sent, hl7)
        sender = self.clients[settings.sender.id]
        owners = MeshOwners(directory, sender)
        inbound = MeshInbound(intake, status, store, hl7, owners.of, self.sent, hl7_senders, inbound_log)
        self.poller = MeshPoller(settings, inbound, self.clients)

    @property
    def states(self) -> dict[str, MailboxState]:
        return self.poller.states

    async def start(self) -> None:
        await self.poller.start()

    async def stop(self) -> None:
        await self.poller.stop()
        for client in self.clients.values():
            await client.close()
