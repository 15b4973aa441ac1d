"""Discord snowflakes: the one parser for untrusted ids, and the creation time every id carries (SPEC §7.2).

Every place that turns outside text into an id (path parameters, JSON bodies, NOTIFY payloads, environment
variables, settings values) goes through `to_snowflake`, so they all agree on what an id is. `str.isdigit()` and
`int()` are both wrong for that: they accept "²", "٣" and other Unicode digits, and `int()` refuses (with a
ValueError) digit strings beyond 4,300 characters, which turned such input into 500s.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final, Literal

DISCORD_EPOCH_MS = 1_420_070_400_000
SNOWFLAKE_MAX: Final = 2**63 - 1
"""Largest value a BIGINT column can hold; Discord ids are positive and far below it."""
SNOWFLAKE_MAX_DIGITS: Final = 20
"""Digits of the largest unsigned 64-bit number; longer strings are refused before any conversion."""
_ASCII_DIGITS: Final = re.compile(r"[0-9]+")

SnowflakeProblem = Literal["invalid_type", "out_of_range"]


class InvalidSnowflake(ValueError):
    """Not a Discord id; `problem` is the SPEC §18 problem code (`invalid_type` or `out_of_range`)."""

    def __init__(self, problem: SnowflakeProblem) -> None:
        super().__init__(f"not a Discord id ({problem})")
        self.problem: SnowflakeProblem = problem


def to_snowflake(value: object) -> int:
    """A Discord id from a digit string (ASCII digits only, at most 20) or an integer (not a bool), within
    1 … 2^63 − 1; raise `InvalidSnowflake` naming the problem otherwise."""
    if isinstance(value, str):
        if not _ASCII_DIGITS.fullmatch(value):
            raise InvalidSnowflake("invalid_type")
        if len(value) > SNOWFLAKE_MAX_DIGITS:
            raise InvalidSnowflake("out_of_range")
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise InvalidSnowflake("invalid_type")
    if not 0 < number <= SNOWFLAKE_MAX:
        raise InvalidSnowflake("out_of_range")
    return number


def parse_snowflake(value: object) -> int | None:
    """`to_snowflake`, with None instead of an exception (for inputs that are ignored when malformed)."""
    try:
        return to_snowflake(value)
    except InvalidSnowflake:
        return None


def snowflake_time(snowflake: int) -> datetime:
    """The UTC creation time encoded in a snowflake (millisecond precision)."""
    return datetime.fromtimestamp(((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000, tz=UTC)


def to_ms(value: datetime) -> int:
    """Milliseconds since the Unix epoch, as used in idempotency keys."""
    return round(value.timestamp() * 1000)


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard that owns a guild (SPEC §3.4)."""
    return (guild_id >> 22) % shard_count
