"""Wait limits: how long a referral may wait at each Task status, by receiving service and priority,
and where a breach escalates to (`schemas/directory/wait-limits.json`).

    WaitLimits.limit(service, priority, status)   the Limit, or None when that status is not watched
    WaitLimits.fallback(service, priority)        the directory service an escalation goes to, if any

`load_wait_limits` refuses limits that do not fit the directory (an unknown service, a fallback
without an endpoint of its own, or one reached through the same endpoint as the service it stands
in for: that would be a second referral to the receiver that has not answered), so a bad deployment
fails at start-up. Pure: no I/O after loading.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, cast, get_args

from pydantic import BaseModel, Field, model_validator

from gateway.routing.directory import Directory
from gateway.safety.calendar import WorkingCalendar

LIMITS_FILE = Path("directory") / "wait-limits.json"
Priority = Literal["routine", "urgent", "asap", "stat"]
DEFAULT_PRIORITY: Priority = "routine"  # FHIR: a ServiceRequest without a priority is routine
ByStatus = dict[str, "Limit"]
_ESCALATED: tuple[Priority, ...] = ("urgent", "asap", "stat")


class Limit(BaseModel):
    """One limit: working hours (the calendar's), or hours on the clock; exactly one of them."""

    working_hours: float | None = Field(default=None, gt=0)
    hours: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_clock(self) -> Limit:
        if (self.working_hours is None) == (self.hours is None):
            raise ValueError("a wait limit gives either working_hours or hours")
        return self

    def due(self, since: datetime, calendar: WorkingCalendar) -> datetime:
        if self.working_hours is not None:
            return calendar.add(since, self.working_hours)
        return since + timedelta(hours=self.hours or 0)

    @property
    def text(self) -> str:
        if self.working_hours is not None:
            return f"{self.working_hours:g} working hours"
        return f"{self.hours:g} hours"


class ServiceWaits(BaseModel):
    fallback: str | None = None
    escalate: list[Priority] = Field(default_factory=lambda: list(_ESCALATED))
    limits: dict[Priority, ByStatus] = Field(default_factory=dict)


class WaitLimits(BaseModel):
    version: str
    default: dict[Priority, ByStatus]
    services: dict[str, ServiceWaits] = Field(default_factory=dict)

    def limit(self, service: str, priority: str, status: str) -> Limit | None:
        own = self.services.get(service)
        key = _priority(priority)
        if own is not None and status in own.limits.get(key, {}):
            return own.limits[key][status]
        return self.default.get(key, {}).get(status)

    def fallback(self, service: str, priority: str) -> str | None:
        own = self.services.get(service)
        if own is None or own.fallback is None or _priority(priority) not in own.escalate:
            return None
        return own.fallback

    def watched_statuses(self) -> set[str]:
        """Every Task status some limit watches: the watcher looks at Tasks in these only."""
        tables = [*self.default.values(), *(b for s in self.services.values() for b in s.limits.values())]
        return {status for table in tables for status in table}

    def check_against(self, directory: Directory) -> None:
        problems = []
        for service_id, waits in self.services.items():
            if service_id not in directory:
                problems.append(f"'{service_id}' is not a service in the directory")
            if waits.fallback is None:
                continue
            problems += _fallback_problems(directory, service_id, waits.fallback)
        if problems:
            raise ValueError("wait limits: " + "; ".join(problems))


def _fallback_problems(directory: Directory, service_id: str, fallback: str) -> list[str]:
    found = directory.find(fallback)
    if found is None or not found.endpoints:
        return [f"the fallback '{fallback}' of '{service_id}' is not a service with an endpoint"]
    own = directory.find(service_id)
    if own is not None and own.endpoints and own.endpoints[0] == found.endpoints[0]:
        return [f"the fallback '{fallback}' of '{service_id}' is reached through the same endpoint"]
    return []


def _priority(priority: str) -> Priority:
    return cast(Priority, priority) if priority in get_args(Priority) else DEFAULT_PRIORITY


def load_wait_limits(schemas_dir: Path, directory: Directory | None = None) -> WaitLimits:
    limits = WaitLimits.model_validate(json.loads((schemas_dir / LIMITS_FILE).read_text()))
    if directory is not None:
        limits.check_against(directory)
    return limits
