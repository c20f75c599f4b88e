"""Which organisations a MESH mailbox speaks for: those whose directory endpoints name it, and those
whose endpoint is MESH's look-up by ODS code when that look-up gives this mailbox. A business answer
that moves a Task must come from the mailbox of the Task's owner. Look-ups are kept for a while.
"""

from __future__ import annotations

import time

from gateway.errors import GatewayError
from gateway.mesh.client import MeshMailboxClient
from gateway.routing.directory import Directory

_KEEP_S = 300.0


class MeshOwners:
    def __init__(self, directory: Directory, client: MeshMailboxClient) -> None:
        self._directory = directory
        self._client = client
        self._looked_up: dict[tuple[str, str], tuple[float, list[str]]] = {}

    async def of(self, mailbox: str) -> set[str]:
        found = self._directory.mesh_owners(mailbox)
        for ods, lookup, workflow in self._directory.mesh_lookups():
            if ods not in found and mailbox in await self._lookup(lookup, workflow):
                found.add(ods)
        return found

    async def _lookup(self, ods: str, workflow: str) -> list[str]:
        kept = self._looked_up.get((ods, workflow))
        if kept is not None and time.monotonic() - kept[0] < _KEEP_S:
            return kept[1]
        try:
            mailboxes = await self._client.lookup(ods, workflow)
        except GatewayError:
            return kept[1] if kept else []  # MESH not answering: what it said last, or nobody
        self._looked_up[(ods, workflow)] = (time.monotonic(), mailboxes)
        return mailboxes
