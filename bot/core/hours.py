"""The human team's opening hours (``hours:`` in gateway.yml), the one schedule that the queue,
the handoff messages and the bot's answers all read.

The bot learns it from the metadata of every message (``support_hours``, :func:`for_the_bot`);
the actions never keep a copy of their own. A day's span may run past midnight ("22:00-06:00"
opens at 22:00 and closes at 06:00 the next morning); a holiday is closed all day.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.config import HoursSettings

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _span(hours: HoursSettings, day: date) -> tuple[time, time] | None:
    """The day's opening and closing time (closing may be the next morning), or None."""
    if day in hours.holidays:
        return None
    text = hours.schedule.get(WEEKDAYS[day.weekday()])
    if not text:
        return None
    start, end = (time.fromisoformat(part) for part in text.split("-"))
    return start, end


def _intervals(hours: HoursSettings, day: date, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """When the team works because of ``day``'s span, as aware datetimes."""
    span = _span(hours, day)
    if span is None:
        return []
    start, end = span
    opens = datetime.combine(day, start, zone)
    closes = datetime.combine(day + timedelta(days=end <= start), end, zone)
    return [(opens, closes)]


def open_now(hours: HoursSettings, now: datetime) -> bool:
    """Whether the human team works at ``now``."""
    if hours.always_open:
        return True
    zone = ZoneInfo(hours.timezone)
    today = now.astimezone(zone).date()
    return any(
        opens <= now < closes
        for day in (today - timedelta(days=1), today)
        for opens, closes in _intervals(hours, day, zone)
    )


def next_opening(hours: HoursSettings, now: datetime) -> datetime | None:
    """When the team next opens after ``now`` (in the team's time zone); None when it is open
    now, always open, or never opens within two weeks."""
    if open_now(hours, now):
        return None
    zone = ZoneInfo(hours.timezone)
    today = now.astimezone(zone).date()
    for offset in range(15):
        for opens, _closes in _intervals(hours, today + timedelta(days=offset), zone):
            if opens > now:
                return opens
    return None


def add_open_time(hours: HoursSettings, start: datetime, seconds: float) -> datetime:
    """When ``seconds`` of opening time have passed after ``start``: an SLA target in business
    hours (closed nights, weekends and holidays do not count). Around the clock for an
    always-open team; a team that never opens in the next year counts calendar time."""
    if hours.always_open or seconds <= 0:
        return start + timedelta(seconds=max(0.0, seconds))
    zone = ZoneInfo(hours.timezone)
    first = start.astimezone(zone).date() - timedelta(days=1)
    remaining = timedelta(seconds=seconds)
    cursor = start
    for offset in range(370):
        for opens, closes in _intervals(hours, first + timedelta(days=offset), zone):
            if closes <= cursor:
                continue
            begin = max(opens, cursor)
            if begin + remaining <= closes:
                return begin + remaining
            remaining -= closes - begin
            cursor = closes
    return start + timedelta(seconds=seconds)


def describe_schedule(hours: HoursSettings) -> str:
    """The week in words: "Monday to Friday 08:00-20:00, Saturday 09:00-17:00"."""
    if hours.always_open:
        return "around the clock"
    groups: list[tuple[int, int, str]] = []  # first day, last day, span
    for index, day in enumerate(WEEKDAYS):
        span = hours.schedule.get(day)
        if not span:
            continue
        if groups and groups[-1][1] == index - 1 and groups[-1][2] == span:
            first, _, same = groups[-1]
            groups[-1] = (first, index, same)
        else:
            groups.append((index, index, span))
    if not groups:
        return "by appointment only"
    parts = []
    for first, last, span in groups:
        days = DAY_NAMES[first] if first == last else f"{DAY_NAMES[first]} to {DAY_NAMES[last]}"
        parts.append(f"{days} {span}")
    return ", ".join(parts)


def describe_opening(opens: datetime, now: datetime) -> str:
    """ "today at 08:00", "tomorrow at 08:00" or "on Monday at 08:00" (the team's local time)."""
    local_now = now.astimezone(opens.tzinfo)
    days = (opens.date() - local_now.date()).days
    when = "today" if days == 0 else "tomorrow" if days == 1 else f"on {DAY_NAMES[opens.weekday()]}"
    return f"{when} at {opens:%H:%M}"


def for_the_bot(hours: HoursSettings, now: datetime) -> dict[str, Any]:
    """What the bot is told with every message (``support_hours`` in the metadata)."""
    opens = next_opening(hours, now)
    return {
        "open_now": open_now(hours, now),
        "always_open": hours.always_open,
        "schedule": describe_schedule(hours),
        "timezone": hours.timezone,
        "opens_at": opens.isoformat() if opens else None,
        "opens": describe_opening(opens, now) if opens else None,
    }
