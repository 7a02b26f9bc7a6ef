"""The server's clock: aware UTC times in, aware UTC times out (SQLite stores them naive)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["aware", "now"]


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC time: SQLite returns naive datetimes, stored as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
