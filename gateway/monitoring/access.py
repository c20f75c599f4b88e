"""Who may see patient identifiers unmasked: the one place the monitor asks.

A deployment may allow it for everyone (`monitor.unmasked_allowed`, MONITOR_UNMASKED_ALLOWED);
otherwise only a viewer with the `patient-data-viewer` role may. Every page, JSON answer and CLI
command that can show a message asks here first, and shows it masked when the answer is no.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.settings import MonitorSettings

UNMASK_ROLE = "patient-data-viewer"


@dataclass(frozen=True)
class Viewer:
    """Who is looking: the signed-in person or the token's partner, with their roles."""

    name: str = "anonymous"
    roles: frozenset[str] = field(default_factory=frozenset)


def may_unmask(settings: MonitorSettings, viewer: Viewer | None = None) -> bool:
    """True when this viewer may see patient identifiers (the deployment allows it, or the role does)."""
    return settings.unmasked_allowed or (viewer is not None and UNMASK_ROLE in viewer.roles)


def unmasked(settings: MonitorSettings, asked: bool, viewer: Viewer | None = None) -> bool:
    """Whether to show unmasked: only when asked for and allowed."""
    return asked and may_unmask(settings, viewer)
