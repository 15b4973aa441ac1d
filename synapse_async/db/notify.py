"""The one NOTIFY helper every writer uses (SPEC §16.3; technical-debt item 1).

The old design sent NOTIFY after commit on another connection, so a listener could reload before the change was
visible, or be told about a change that was rolled back. Here the notification is `SELECT pg_notify(...)` with bind
parameters, executed on the writing transaction's own connection: PostgreSQL delivers it exactly at COMMIT and
never after a ROLLBACK. Only allowlisted tables may be named, so a typo cannot silently skip a reload.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from synapse_async.domain.snowflakes import parse_snowflake

CONFIG_CHANNEL = "synapse_config"
EVENTS_CHANNEL = "synapse_events"
MAX_EVENT_PAYLOAD_BYTES = 1000

CONFIG_TABLES: frozenset[str] = frozenset(
    {
        "settings",
        "guilds",
        "guild_channels",
        "channel_type_defaults",
        "channel_overrides",
        "role_multipliers",
        "no_xp_targets",
        "level_role_rewards",
        "achievement_templates",
        "achievement_categories",
        "achievement_rarities",
        "achievement_series",
        "seasons",
        "revoked_tokens",
    }
)

_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


def _config_payload(table: str, guild_id: int | None) -> str:
    if table not in CONFIG_TABLES:
        raise ValueError(f"{table!r} is not a config table that may be notified")
    return table if guild_id is None else f"{table}:{int(guild_id)}"


async def notify_config(db: AsyncSession | AsyncConnection, table: str, guild_id: int | None = None) -> None:
    """Queue a config-change notification inside the caller's open transaction."""
    await db.execute(_NOTIFY, {"channel": CONFIG_CHANNEL, "payload": _config_payload(table, guild_id)})


_NOTIFY_MANY = text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p")


async def notify_config_changes(db: AsyncSession | AsyncConnection, changes: Sequence[tuple[str, int]]) -> None:
    """`notify_config` for many (table, guild) pairs in ONE round trip: a batched guild sync may change three
    tables in each of hundreds of guilds."""
    if changes:
        payloads = [_config_payload(table, guild_id) for table, guild_id in changes]
        await db.execute(_NOTIFY_MANY, {"channel": CONFIG_CHANNEL, "payloads": payloads})


async def notify_config_raw(conn: asyncpg.Connection, table: str, guild_id: int | None = None) -> None:
    """`notify_config` for a raw asyncpg transaction (the pipeline's and the economy services' connections)."""
    await conn.execute("SELECT pg_notify($1, $2)", CONFIG_CHANNEL, _config_payload(table, guild_id))


async def notify_event(db: AsyncSession | AsyncConnection, event: Mapping[str, object]) -> None:
    """Queue a cross-process event (ids only, ≤ 1,000 bytes) inside the caller's open transaction."""
    body = json.dumps({"v": 1, **event}, separators=(",", ":"), default=str)
    if len(body.encode()) > MAX_EVENT_PAYLOAD_BYTES:
        raise ValueError("synapse_events payloads carry ids only and must stay under 1,000 bytes")
    await db.execute(_NOTIFY, {"channel": EVENTS_CHANNEL, "payload": body})


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """A parsed `synapse_config` payload; `guild_id=None` means reload the whole table."""

    table: str
    guild_id: int | None


def parse_config_payload(payload: str) -> ConfigChange | None:
    """Parse `<table>` or `<table>:<guild_id>`; None (the receiver warns and ignores it) for a table outside the
    allowlist or a guild part that is not a snowflake. Any role can NOTIFY, so the payload is untrusted: a
    malformed guild id must neither raise inside the listener callback nor widen into a whole-table reload."""
    table, sep, guild = payload.partition(":")
    if table not in CONFIG_TABLES:
        return None
    if not sep:
        return ConfigChange(table, None)
    guild_id = parse_snowflake(guild)
    return None if guild_id is None else ConfigChange(table, guild_id)
