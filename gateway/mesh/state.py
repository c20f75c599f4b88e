"""What the poller knows of each mailbox, for the dashboard: plain data, no I/O, no imports of the
spines, so the engineers' views can read it without taking part in intake."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class MailboxState:
    mailbox: str
    workflows: list[str] = field(default_factory=list)
    last_poll: datetime | None = None
    waiting: int = 0  # messages in the inbox at the last poll
    taken: int = 0
    refused: int = 0
    errors: int = 0
    last_error: str | None = None
    first_seen: dict[str, datetime] = field(default_factory=dict)  # not yet acknowledged: when first listed

    @property
    def oldest_unacknowledged(self) -> datetime | None:
        return min(self.first_seen.values(), default=None)
