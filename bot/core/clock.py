"""Time, always timezone-aware UTC; components take a clock argument so tests can move it."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 text of a time, or None."""
    return value.isoformat() if value else None
