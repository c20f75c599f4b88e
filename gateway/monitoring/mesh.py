"""The dashboard's MESH figures: for each of the gateway's mailboxes, its last poll, the messages
waiting in it, what was taken and refused, errors, the oldest message not yet acknowledged, and the
messages sent from it that MESH has not yet reported downloaded. Read-only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gateway.mesh.state import MailboxState
from gateway.store.mesh_sent import MeshSentLog

NOT_APPLICABLE = "\N{EN DASH}"


class MeshChannel(Protocol):
    """The runtime's MESH channel (gateway/mesh/channel.py), as far as the dashboard reads it."""

    sent: MeshSentLog

    @property
    def states(self) -> dict[str, MailboxState]: ...


@dataclass(frozen=True)
class MailboxRow:
    mailbox: str
    workflows: list[str]
    last_poll: datetime | None
    waiting: int
    taken: int
    refused: int
    errors: int
    last_error: str | None
    oldest_unacknowledged: datetime | None
    sent_waiting: int  # sent from this mailbox, not yet reported downloaded or failed

    def cells(self) -> dict[str, str]:
        key = f"mesh {self.mailbox}"
        return {
            f"{key} last_poll": _moment(self.last_poll),
            f"{key} waiting": str(self.waiting),
            f"{key} taken": str(self.taken),
            f"{key} refused": str(self.refused),
            f"{key} errors": str(self.errors),
            f"{key} last_error": self.last_error or "",
            f"{key} oldest": _moment(self.oldest_unacknowledged),
            f"{key} sent_waiting": str(self.sent_waiting),
        }


async def mailboxes(mesh: MeshChannel | None) -> list[MailboxRow]:
    if mesh is None:
        return []
    sending = await mesh.sent.awaiting()
    rows = []
    for state in mesh.states.values():
        rows.append(
            MailboxRow(
                mailbox=state.mailbox,
                workflows=state.workflows,
                last_poll=state.last_poll,
                waiting=state.waiting,
                taken=state.taken,
                refused=state.refused,
                errors=state.errors,
                last_error=state.last_error,
                oldest_unacknowledged=state.oldest_unacknowledged,
                sent_waiting=sum(1 for s in sending if s.mailbox == state.mailbox),
            )
        )
    return rows


def _moment(at: datetime | None) -> str:
    return at.strftime("%d %b %H:%M:%S") if at else NOT_APPLICABLE
