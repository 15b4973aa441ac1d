"""Time helpers shared by every layer: the API and logs speak RFC 3339 UTC with a `Z` suffix."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(value: datetime | None) -> str | None:
    """RFC 3339 UTC (`…Z`) or None; naive datetimes are taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
