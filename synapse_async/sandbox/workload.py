"""Recorded workloads (e.g. `shared/bench/workload-5000.jsonl`) as a simulated guild, replayed over the gateway.

A workload row is one member message: `msg_id, author_id, author_name, channel_id, channel_name, content,
attachments, reply_to_user_id`. `add_workload_guild` builds a guild holding exactly those channels and authors (so
hikari's caches look like production's), and `replay` dispatches the rows as MESSAGE_CREATEs with their recorded
ids — as fast as possible, or paced at a fixed rate on an absolute schedule (no drift from sleep overshoot).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from synapse_async.sandbox.events import WorldEvents
from synapse_async.sandbox.world import (
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    WORLD_BASE_TIME,
    Channel,
    ChannelType,
    Guild,
    Member,
    Role,
    User,
    World,
)

BENCH_GUILD_ID = 1_460_000_000_000_000_001
BENCH_BOT_ROLE_ID = 1_460_000_000_000_000_002


@dataclass(frozen=True, slots=True)
class WorkloadRow:
    msg_id: int
    author_id: int
    author_name: str
    channel_id: int
    channel_name: str
    content: str
    attachments: int


def load_workload(path: Path, limit: int | None = None) -> list[WorkloadRow]:
    rows: list[WorkloadRow] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            raw: dict[str, Any] = json.loads(line)
            rows.append(
                WorkloadRow(
                    int(raw["msg_id"]),
                    int(raw["author_id"]),
                    str(raw["author_name"]),
                    int(raw["channel_id"]),
                    str(raw["channel_name"]),
                    str(raw.get("content") or ""),
                    int(raw.get("attachments") or 0),
                )
            )
            if limit is not None and len(rows) >= limit:
                break
    return rows


def add_workload_guild(world: World, rows: Sequence[WorkloadRow], guild_id: int = BENCH_GUILD_ID) -> Guild:
    """Add a guild with the workload's channels and authors to `world` (before the bot connects)."""
    owner_id = rows[0].author_id if rows else world.bot_user_id
    guild = Guild(id=guild_id, name="Workload", owner_id=owner_id, bot_joined_at=WORLD_BASE_TIME)
    guild.roles[guild_id] = Role(id=guild_id, name="@everyone", position=0, permissions=DEFAULT_EVERYONE_PERMISSIONS)
    guild.roles[BENCH_BOT_ROLE_ID] = Role(
        id=BENCH_BOT_ROLE_ID,
        name="Synapse",
        position=1,
        permissions=DEFAULT_BOT_PERMISSIONS,
        managed=True,
        bot_id=world.bot_user_id,
    )
    guild.members[world.bot_user_id] = Member(
        user_id=world.bot_user_id, roles=[BENCH_BOT_ROLE_ID], joined_at=WORLD_BASE_TIME
    )
    for position, (channel_id, name) in enumerate(sorted({(r.channel_id, r.channel_name) for r in rows})):
        guild.channels[channel_id] = Channel(
            id=channel_id, guild_id=guild_id, type=ChannelType.TEXT, name=name, position=position
        )
        world.snowflakes.reserve(channel_id)
    for row in rows:
        if row.author_id not in guild.members:
            world.add_user(User(id=row.author_id, username=row.author_name))
            guild.members[row.author_id] = Member(
                user_id=row.author_id, roles=[], joined_at=WORLD_BASE_TIME - timedelta(days=30)
            )
    world.guilds[guild_id] = guild
    world.snowflakes.reserve(guild_id)
    return guild


async def replay(
    events: WorldEvents, rows: Sequence[WorkloadRow], *, rate: float | None = None, id_offset: int = 0
) -> dict[str, float]:
    """Dispatch every row as a MESSAGE_CREATE; `rate` events/s paces them, None sends as fast as possible.

    `id_offset` (< 4096) is added to every message id's increment bits, so a second round produces NEW messages
    with (practically) the same timestamps instead of duplicates of the first round."""
    if not 0 <= id_offset < 4096:
        raise ValueError("id_offset must be in 0..4095")
    started = time.perf_counter()
    for index, row in enumerate(rows):
        if rate is not None:
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await events.create_message(
            channel_id=row.channel_id,
            author_id=row.author_id,
            content=row.content,
            attachments=row.attachments,
            message_id=row.msg_id + id_offset,
        )
    elapsed = time.perf_counter() - started
    return {"dispatched": float(len(rows)), "seconds": elapsed, "per_s": len(rows) / elapsed if elapsed else 0.0}


def add_small_guilds(world: World, count: int) -> list[int]:
    """Add `count` minimal guilds (@everyone, the bot's role, `#general`, the bot and one owner) before the bot
    connects: the scale benchmark's 10,000 guilds (SPEC §25), cheap enough to build in a second or two."""
    ids = []
    for i in range(count):
        guild_id = world.new_id()
        owner = User(id=world.new_id(), username=f"owner_{i}")
        world.add_user(owner)
        guild = Guild(id=guild_id, name=f"Guild {i}", owner_id=owner.id, bot_joined_at=WORLD_BASE_TIME)
        guild.roles[guild_id] = Role(
            id=guild_id, name="@everyone", position=0, permissions=DEFAULT_EVERYONE_PERMISSIONS
        )
        bot_role = world.new_id()
        guild.roles[bot_role] = Role(
            id=bot_role,
            name="Synapse",
            position=1,
            permissions=DEFAULT_BOT_PERMISSIONS,
            managed=True,
            bot_id=world.bot_user_id,
        )
        channel = world.new_id()
        guild.channels[channel] = Channel(id=channel, guild_id=guild_id, type=ChannelType.TEXT, name="general")
        guild.members[world.bot_user_id] = Member(
            user_id=world.bot_user_id, roles=[bot_role], joined_at=WORLD_BASE_TIME
        )
        guild.members[owner.id] = Member(user_id=owner.id, roles=[], joined_at=WORLD_BASE_TIME)
        world.guilds[guild_id] = guild
        ids.append(guild_id)
    return ids
