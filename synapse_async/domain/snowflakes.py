"""Discord snowflakes: the creation time every id carries (SPEC §7.2 event time)."""

from __future__ import annotations

from datetime import UTC, datetime

DISCORD_EPOCH_MS = 1_420_070_400_000


def snowflake_time(snowflake: int) -> datetime:
    """The UTC creation time encoded in a snowflake (millisecond precision)."""
    return datetime.fromtimestamp(((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000, tz=UTC)


def to_ms(value: datetime) -> int:
    """Milliseconds since the Unix epoch, as used in idempotency keys."""
    return round(value.timestamp() * 1000)


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard that owns a guild (SPEC §3.4)."""
    return (guild_id >> 22) % shard_count
