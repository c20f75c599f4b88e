"""Working hours: when the clock of a wait limit counted in working hours runs.

Read from `schemas/calendar/working-hours.json` (days and opening times in a local time zone) and the
bank holidays it names (`schemas/calendar/bank-holidays-england-and-wales.json`), so a deployment with
other hours or another nation's holidays changes data, not code.

    WorkingCalendar.add(start, hours)   the moment `hours` of working time after `start`
    WorkingCalendar.between(start, end) how much working time lies between two moments

Pure: the files are read once; the arithmetic is over aware datetimes and is done in UTC, so a day
that changes the clocks (BST) is as long as it really is. Must not: know about referrals or limits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

CALENDAR_DIR = Path("calendar")
WORKING_HOURS_FILE = CALENDAR_DIR / "working-hours.json"
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: How far ahead `add` looks for working time before it gives up (a calendar with no open days).
_HORIZON_DAYS = 3 * 366


@dataclass(frozen=True)
class WorkingCalendar:
    version: str
    zone: ZoneInfo
    opening: tuple[tuple[tuple[time, time], ...], ...]  # per weekday (Monday first): (open, close) pairs
    holidays: frozenset[date]
    holidays_until: date | None  # the last holiday listed: after it, the list says nothing

    def add(self, start: datetime, hours: float) -> datetime:
        """The moment at which `hours` of working time have passed since `start` (UTC)."""
        remaining = timedelta(hours=hours)
        cursor = start.astimezone(UTC)
        for opens, closes in self._periods(cursor):
            begin = max(opens, cursor)
            if begin >= closes:
                continue
            if remaining <= closes - begin:
                return begin + remaining
            remaining -= closes - begin
        raise ValueError(f"the working calendar {self.version} has no working time within {_HORIZON_DAYS} days")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Working time from `start` to `end` (zero when `end` is not later)."""
        begin, finish = start.astimezone(UTC), end.astimezone(UTC)
        total = timedelta(0)
        for opens, closes in self._periods(begin):
            if opens >= finish:
                break
            overlap = min(closes, finish) - max(opens, begin)
            total += max(overlap, timedelta(0))
        return total

    def runs_out_within(self, today: date, days: int) -> bool:
        """Whether the bank holidays listed end within `days` of `today`: after that, every weekday
        would count as a working day."""
        return self.holidays_until is None or self.holidays_until - today <= timedelta(days=days)

    def is_working_day(self, day: date) -> bool:
        return day not in self.holidays and bool(self.opening[day.weekday()])

    def _periods(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Each opening period, in UTC, from the local day `start` falls on."""
        day = start.astimezone(self.zone).date()
        for offset in range(_HORIZON_DAYS):
            current = day + timedelta(days=offset)
            if not self.is_working_day(current):
                continue
            for opens, closes in self.opening[current.weekday()]:
                yield self._utc(current, opens), self._utc(current, closes)

    def _utc(self, day: date, at: time) -> datetime:
        return datetime.combine(day, at, tzinfo=self.zone).astimezone(UTC)


def load_calendar(schemas_dir: Path, file: Path = WORKING_HOURS_FILE) -> WorkingCalendar:
    data = json.loads((schemas_dir / file).read_text())
    opening = tuple(tuple(_period(p, name) for p in data["days"].get(name, [])) for name in DAYS)
    holidays_file = schemas_dir / CALENDAR_DIR / data["holidays"] if data.get("holidays") else None
    holidays = _holidays(holidays_file) if holidays_file else frozenset()
    return WorkingCalendar(
        version=str(data.get("version", "unversioned")),
        zone=ZoneInfo(data["time_zone"]),
        opening=opening,
        holidays=holidays,
        holidays_until=max(holidays) if holidays else None,
    )


def _period(pair: list[str], day: str) -> tuple[time, time]:
    opens, closes = time.fromisoformat(pair[0]), time.fromisoformat(pair[1])
    if closes <= opens:
        raise ValueError(f"working hours: {day} closes ({pair[1]}) before it opens ({pair[0]})")
    return opens, closes


def _holidays(file: Path) -> frozenset[date]:
    events = json.loads(file.read_text())["events"]
    return frozenset(date.fromisoformat(e["date"]) for e in events)
