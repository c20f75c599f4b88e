"""Working-hours arithmetic over the shipped calendar (schemas/calendar): weekends, bank holidays,
the clocks changing, and the wait limits that use it. Pure: no I/O but reading the data files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.routing import load_router
from gateway.safety.calendar import load_calendar
from gateway.safety.limits import LIMITS_FILE, load_wait_limits
from gateway.settings import SCHEMAS_DIR

CALENDAR = load_calendar(SCHEMAS_DIR)
DIRECTORY = load_router(SCHEMAS_DIR).directory


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_two_working_hours_within_a_working_day() -> None:
    assert CALENDAR.add(utc("2026-12-03T10:00"), 2) == utc("2026-12-03T12:00")  # Thursday, GMT


def test_two_working_hours_from_friday_afternoon_run_over_the_weekend_to_monday() -> None:
    # Friday 4 December 2026 16:00: one hour on Friday, the second on Monday from 09:00
    assert CALENDAR.add(utc("2026-12-04T16:00"), 2) == utc("2026-12-07T10:00")


def test_a_referral_sent_on_saturday_starts_its_clock_on_monday_morning() -> None:
    assert CALENDAR.add(utc("2026-12-05T11:30"), 2) == utc("2026-12-07T11:00")


def test_christmas_and_the_boxing_day_substitute_are_not_working_days() -> None:
    # Thursday 24 December 2026 16:00: one hour, then Christmas (Fri), the weekend and Monday 28th
    # (Boxing Day's substitute) pass, and the second hour is Tuesday 29th from 09:00
    assert CALENDAR.add(utc("2026-12-24T16:00"), 2) == utc("2026-12-29T10:00")


def test_easter_2027_closes_good_friday_and_easter_monday() -> None:
    # Thursday 25 March 2027 16:30 (GMT): half an hour, then Good Friday, the weekend (the clocks go
    # forward on the Sunday) and Easter Monday; the other half hour is Tuesday 09:00-09:30 BST
    assert CALENDAR.add(utc("2027-03-25T16:30"), 1) == utc("2027-03-30T08:30")


def test_working_hours_are_counted_in_local_time_across_the_change_to_summer_time() -> None:
    # Monday 30 March 2026 is BST (UTC+1): 09:00 London is 08:00 UTC
    assert CALENDAR.add(utc("2026-03-27T16:00"), 2) == utc("2026-03-30T09:00")


def test_working_time_between_two_moments_leaves_out_nights_weekends_and_holidays() -> None:
    waited = CALENDAR.between(utc("2026-12-24T16:00"), utc("2026-12-29T10:00"))
    assert waited == timedelta(hours=2)
    assert CALENDAR.between(utc("2026-12-05T09:00"), utc("2026-12-06T17:00")) == timedelta(0)


def test_bank_holidays_are_listed_for_2026_and_2027() -> None:
    assert CALENDAR.holidays_until is not None and CALENDAR.holidays_until.year == 2027
    assert sum(1 for d in CALENDAR.holidays if d.year == 2026) == 8
    assert sum(1 for d in CALENDAR.holidays if d.year == 2027) == 8


def test_the_calendar_says_when_its_bank_holidays_run_out() -> None:
    assert not CALENDAR.runs_out_within(datetime(2026, 12, 3).date(), 90)
    assert CALENDAR.runs_out_within(datetime(2027, 10, 1).date(), 90)  # the list ends on 28 December 2027


def test_an_urgent_duty_team_referral_may_wait_two_working_hours_at_requested() -> None:
    limits = load_wait_limits(SCHEMAS_DIR, DIRECTORY)
    limit = limits.limit("iapt-duty", "urgent", "requested")
    assert limit is not None and limit.text == "2 working hours"
    assert limit.due(utc("2026-12-04T16:00"), CALENDAR) == utc("2026-12-07T10:00")
    assert limits.fallback("iapt-duty", "urgent") == "crisis-duty-line"
    assert limits.fallback("iapt-duty", "routine") is None  # a routine wait never goes to a crisis line


def test_every_service_in_the_directory_has_a_limit_at_requested_for_every_priority() -> None:
    limits = load_wait_limits(SCHEMAS_DIR, DIRECTORY)
    for service in DIRECTORY.services():
        for priority in ("routine", "urgent", "asap", "stat"):
            assert limits.limit(service.id, priority, "requested") is not None, (service.id, priority)


def test_a_limit_on_the_clock_ignores_working_hours() -> None:
    limits = load_wait_limits(SCHEMAS_DIR, DIRECTORY)
    limit = limits.limit("crisis-duty-line", "urgent", "requested")
    assert limit is not None and limit.due(utc("2026-12-05T23:30"), CALENDAR) == utc("2026-12-06T00:30")


def test_a_fallback_reached_through_the_first_receivers_own_endpoint_is_refused(tmp_path: Path) -> None:
    """Escalating to iapt-core (NQ1IA's endpoint) would be a second referral to the receiver that did
    not answer: the limits are refused at load, not on a patient's referral."""
    schemas = tmp_path / "schemas"
    (schemas / "directory").mkdir(parents=True)
    text = (SCHEMAS_DIR / LIMITS_FILE).read_text().replace('"fallback": "crisis-duty-line"', '"fallback": "iapt-core"')
    (schemas / LIMITS_FILE).write_text(text)
    with pytest.raises(ValueError, match="same endpoint"):
        load_wait_limits(schemas, DIRECTORY)
