"""The dashboard's MESH figures: for each of the gateway's mailboxes, its last poll, the messages
waiting in it, what was taken and refused, errors, the oldest message not yet acknowledged, and the
messages sent from it that MESH has not yet reported downloaded. Read-only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.mesh.channel import Mesh

NOT_APPLICABLE = "\N{EN DASH}"


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


async def mailboxes(mesh: Mesh | None) -> list[MailboxRow]:
    if mesh is None:
        return []
    sending = await mesh.sent.awaiting()
    rows = []
    for mailbox in mesh.settings.mailboxes:
        state = mesh.poller.states[mailbox.id]
        rows.append(
            MailboxRow(
                mailbox=mailbox.id,
                workflows=[w.id for w in mailbox.workflows],
                last_poll=state.last_poll,
                waiting=state.waiting,
                taken=state.taken,
                refused=state.refused,
                errors=state.errors,
                last_error=state.last_error,
                oldest_unacknowledged=state.oldest_unacknowledged,
                sent_waiting=sum(1 for s in sending if s.mailbox == mailbox.id),
            )
        )
    return rows


def _moment(at: datetime | None) -> str:
    return at.strftime("%d %b %H:%M:%S") if at else NOT_APPLICABLE
