"""Event-lake rows for domain events (SPEC §15.1–§15.2): pure mapping, metadata only, snowflakes as strings.

The pipeline writes these in the event's transaction. `periods` gives the counter periods a row increments
(`lifetime`, `season:<id>` when a season is active at the event's time, `day:YYYY-MM-DD` in UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, assert_never

from synapse_async.domain.events import (
    GatewayDomainEvent,
    MemberJoined,
    MemberLeft,
    MessageCreated,
    MessageDeleted,
    ReactionAdded,
    ReactionRemoved,
    ThreadCreated,
    VoiceStateChanged,
)
from synapse_async.domain.snowflakes import snowflake_time
from synapse_async.rewards.config import GuildConfig, season_at


@dataclass(frozen=True, slots=True)
class LakeRow:
    event_type: str
    user_id: int | None
    channel_id: int | None
    target_id: int | None
    source_key: str
    payload: dict[str, Any]
    occurred_at: datetime


def _s(value: int | None) -> str | None:
    return str(value) if value is not None else None


def _age_seconds(at: datetime, snowflake: int) -> int:
    return max(0, int((at - snowflake_time(snowflake)).total_seconds()))


def lake_row(event: GatewayDomainEvent, guild: GuildConfig) -> LakeRow | None:
    """The lake row for an event, or None when it records nothing (a voice state change within one channel)."""
    if isinstance(event, MessageCreated):
        m = event.meta
        return LakeRow(
            "message_create",
            event.author.user_id,
            event.channel_id,
            m.reply_to_user_id,
            event.lake_key,
            {
                "message_id": str(event.message_id),
                "length": m.length,
                "word_count": m.word_count,
                "has_code_block": m.has_code_block,
                "has_link": m.has_link,
                "link_count": m.link_count,
                "attachment_count": m.attachment_count,
                "emoji_count": m.emoji_count,
                "mention_count": m.mention_count,
                "is_reply": m.is_reply,
                "in_thread": event.parent_id is not None,
                "parent_channel_id": _s(event.parent_id),
            },
            event.occurred_at,
        )
    if isinstance(event, MessageDeleted):
        return LakeRow(
            "message_delete",
            event.author_id,
            event.channel_id,
            None,
            event.lake_key,
            {
                "message_id": str(event.message_id),
                "age_seconds": _age_seconds(event.occurred_at, event.message_id),
                "bulk": event.bulk,
            },
            event.occurred_at,
        )
    if isinstance(event, ReactionAdded):
        return LakeRow(
            "reaction_add",
            event.reactor.user_id,
            event.channel_id,
            event.author_id,
            event.lake_key,
            {
                "message_id": str(event.message_id),
                "emoji": event.emoji_key,
                "emoji_custom": event.emoji_custom,
                "message_age_seconds": _age_seconds(event.occurred_at, event.message_id),
            },
            event.occurred_at,
        )
    if isinstance(event, ReactionRemoved):
        return LakeRow(
            "reaction_remove",
            event.user_id,
            event.channel_id,
            event.author_id,
            event.lake_key,
            {"message_id": str(event.message_id), "emoji": event.emoji_key, "emoji_custom": event.emoji_custom},
            event.occurred_at,
        )
    if isinstance(event, ThreadCreated):
        parent = guild.channels.get(event.parent_id)
        return LakeRow(
            "thread_create",
            event.owner.user_id,
            event.thread_id,
            event.parent_id,
            event.lake_key,
            {
                "thread_id": str(event.thread_id),
                "parent_channel_id": str(event.parent_id),
                "parent_type": parent.type if parent is not None else None,
                "is_private": event.is_private,
                "title_length": event.title_length,
            },
            event.occurred_at,
        )
    if isinstance(event, VoiceStateChanged):
        return _voice_row(event, guild)
    if isinstance(event, MemberJoined):
        return LakeRow(
            "member_join",
            event.member.user_id,
            None,
            None,
            event.lake_key,
            {
                "joined_at": event.joined_at.isoformat() if event.joined_at else None,
                "account_created_at": event.account_created_at.isoformat(),
                "is_rejoin": False,  # refined by the processor from the member row
            },
            event.occurred_at,
        )
    if isinstance(event, MemberLeft):
        seconds = int((event.occurred_at - event.joined_at).total_seconds()) if event.joined_at else None
        return LakeRow(
            "member_leave",
            event.user_id,
            None,
            None,
            event.lake_key,
            {"joined_at": event.joined_at.isoformat() if event.joined_at else None, "membership_seconds": seconds},
            event.occurred_at,
        )
    assert_never(event)


def _voice_row(event: VoiceStateChanged, guild: GuildConfig) -> LakeRow | None:
    afk = guild.info.afk_channel_id if guild.info is not None else None
    flags = {"self_mute": event.self_mute, "self_deaf": event.self_deaf}
    if event.change == "join":
        payload: dict[str, Any] = {
            **flags,
            "server_mute": event.server_mute,
            "server_deaf": event.server_deaf,
            "is_afk_channel": event.after_channel_id == afk,
            "members_in_channel": event.members_in_channel,
        }
        return LakeRow(
            "voice_join", event.user_id, event.after_channel_id, None, event.lake_key, payload, event.occurred_at
        )
    if event.change == "leave":
        payload = {
            **flags,
            "duration_seconds": event.seconds_in_previous,
            "is_afk_channel": event.before_channel_id == afk,
        }
        return LakeRow(
            "voice_leave", event.user_id, event.before_channel_id, None, event.lake_key, payload, event.occurred_at
        )
    if event.change == "move":
        payload = {
            "from_channel_id": _s(event.before_channel_id),
            "to_channel_id": _s(event.after_channel_id),
            "seconds_in_previous": event.seconds_in_previous if event.seconds_in_previous is not None else 0,
            "to_is_afk_channel": event.after_channel_id == afk,
        }
        return LakeRow(
            "voice_move",
            event.user_id,
            event.after_channel_id,
            event.before_channel_id,
            event.lake_key,
            payload,
            event.occurred_at,
        )
    return None


def periods(guild: GuildConfig, at: datetime) -> list[str]:
    out = ["lifetime", f"day:{at.date().isoformat()}"]
    season = season_at(guild, at)
    if season is not None:
        out.append(f"season:{season.season_id}")
    return out
