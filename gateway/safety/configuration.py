"""Which routing configuration is in force, and who put it there: at start-up the gateway records the
versions of the rules, criteria, service directory, wait limits and working calendar it loaded, the
files' digests and who started it, as an AuditEvent (`configuration-load`) and a log line.

A Clinical Safety Officer asking "which ruleset routed this referral?" reads the ruleset version in
the referral's trace (the `routed` step); this record says when that version came into force and who
loaded it. Idempotent `start()`/`stop()`: recorded once per start.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from gateway.audit.context import Actor
from gateway.audit.events import Entity
from gateway.audit.trail import AuditTrail
from gateway.routing import Router
from gateway.routing.directory import DIRECTORY_FILE
from gateway.safety.calendar import WORKING_HOURS_FILE, WorkingCalendar
from gateway.safety.limits import LIMITS_FILE, WaitLimits

log = logging.getLogger(__name__)
FILES = (Path("routing/rules.json"), Path("routing/criteria.json"), DIRECTORY_FILE, LIMITS_FILE, WORKING_HOURS_FILE)
DIRECTORY_ENTITY = "Bundle/service-directory"


@dataclass(frozen=True)
class Loaded:
    versions: str  # "rules 2026.11.2, criteria 1, directory 2026.11.2, wait limits ..., calendar ..."
    digests: str  # the first 12 hex digits of each file's SHA-256
    by: str  # who started the gateway: the operating-system user at the host


def loaded(schemas_dir: Path, router: Router, limits: WaitLimits, calendar: WorkingCalendar) -> Loaded:
    versions = (
        f"{router.version}, directory {router.directory.version}, wait limits {limits.version}, "
        f"calendar {calendar.version}"
    )
    digests = ", ".join(f"{f}: {_digest(schemas_dir / f)}" for f in FILES if (schemas_dir / f).exists())
    return Loaded(versions, digests, f"{getpass.getuser()}@{socket.gethostname()}")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


class ConfigurationRecord:
    """Start-up step: the audit trail says which configuration this process loaded, and who loaded it."""

    def __init__(self, trail: AuditTrail, schemas_dir: Path, what: Loaded) -> None:
        self._trail = trail
        self._schemas_dir = schemas_dir
        self.loaded = what
        self._recorded = False

    async def start(self) -> None:
        if self._recorded:
            return
        what = self.loaded
        text = f"loaded {what.versions} from {self._schemas_dir.resolve()} ({what.digests})"
        await self._trail.note(
            "configuration-load", Entity(DIRECTORY_ENTITY), description=text, actor=Actor(what.by, "system")
        )
        log.info("routing configuration in force: %s, loaded by %s", what.versions, what.by)
        self._recorded = True

    async def stop(self) -> None:
        self._recorded = False
