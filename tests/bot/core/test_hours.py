"""The team's opening hours: open or not, when it opens next, the week in words; spans past
midnight and holidays. An injected clock, in the team's time zone (Europe/Berlin)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.config import HoursSettings
from bot.core.hours import (
    describe_opening,
    describe_schedule,
    for_the_bot,
    next_opening,
    open_now,
)

BERLIN = ZoneInfo("Europe/Berlin")
WEEK = {
    "mon": "08:00-20:00",
    "tue": "08:00-20:00",
    "wed": "08:00-20:00",
    "thu": "08:00-20:00",
    "fri": "22:00-06:00",  # a night shift into Saturday morning
    "sat": "09:00-17:00",
}
# 2026-11-23 is a Monday; 2026-12-25 a Friday.
HOURS = HoursSettings(
    always_open=False, timezone="Europe/Berlin", schedule=WEEK, holidays=[date(2026, 12, 25)]
)


def at(day: int, hh: int, mm: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hh, mm, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("now", "is_open"),
    [
        (at(23, 7, 59), False),
        (at(23, 8, 0), True),
        (at(23, 19, 59), True),
        (at(23, 20, 0), False),
        (at(27, 21, 0), False),  # Friday before the night shift
        (at(27, 23, 0), True),
        (at(28, 5, 59), True),  # Saturday morning: still Friday's shift
        (at(28, 6, 0), False),
        (at(28, 9, 30), True),
        (at(29, 12, 0), False),  # Sunday
        (at(25, 23, 0, month=12), False),  # Christmas (a Friday): no night shift
        (at(26, 1, 0, month=12), False),  # ...nor its morning
    ],
)
def test_open_or_not(now: datetime, is_open: bool) -> None:
    assert open_now(HOURS, now) is is_open


def test_next_opening_skips_closed_days_and_holidays() -> None:
    assert next_opening(HOURS, at(23, 10)) is None  # open now
    assert next_opening(HOURS, at(23, 21)) == at(24, 8)
    assert next_opening(HOURS, at(28, 18)) == at(30, 8)  # Saturday evening -> Monday
    assert next_opening(HOURS, at(25, 7, month=12)) == at(26, 9, month=12)  # Christmas
    assert next_opening(HoursSettings(always_open=False), at(23, 10)) is None  # never opens
    assert next_opening(HoursSettings(), at(23, 3)) is None  # always open


def test_the_week_and_the_next_opening_in_words() -> None:
    assert describe_schedule(HOURS) == (
        "Monday to Thursday 08:00-20:00, Friday 22:00-06:00, Saturday 09:00-17:00"
    )
    assert describe_schedule(HoursSettings()) == "around the clock"
    assert describe_opening(at(24, 8), at(23, 21)) == "tomorrow at 08:00"
    assert describe_opening(at(23, 8), at(23, 6)) == "today at 08:00"
    assert describe_opening(at(30, 8), at(28, 18)) == "on Monday at 08:00"
    # Read in another time zone, the opening is still said in the team's.
    utc_now = at(28, 18).astimezone(ZoneInfo("UTC"))
    assert describe_opening(at(30, 8), utc_now) == "on Monday at 08:00"


def test_what_the_bot_is_told() -> None:
    told = for_the_bot(HOURS, at(28, 18))
    assert told["open_now"] is False and told["always_open"] is False
    assert told["opens"] == "on Monday at 08:00"
    assert told["opens_at"] == at(30, 8).isoformat()
    assert told["timezone"] == "Europe/Berlin"
    assert for_the_bot(HoursSettings(), at(28, 18))["always_open"] is True


@pytest.mark.parametrize(
    "bad",
    [
        {"timezone": "Mars/Olympus"},
        {"schedule": {"mon": "8-20"}},
        {"schedule": {"mon": "24:00-25:00"}},
        {"schedule": {"mon": "08:00-08:00"}},
        {"schedule": {"xyz": "08:00-20:00"}},
        {"holidays": ["not a date"]},
    ],
)
def test_bad_hours_are_refused_at_start(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        HoursSettings.model_validate(bad)
