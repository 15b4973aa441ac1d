"""The voice tracker (SPEC §7.3): who is in which voice channel since when, per guild. Pure and bounded.

It holds only members currently in voice, so it stays as small as the guild's voice activity. Classifying an update
against it (join, leave, move, or a state change within one channel) is what makes repeated or replayed voice
updates harmless: an update that leaves the tracked channel unchanged records nothing.

Each entry keeps two times: `since` (in this channel, for the lake's time-in-channel) and `in_voice_since` (in any
voice channel of the guild, kept across moves). The ticker pays a slot only to members in voice since its start
(SPEC §7.3). A rebuild from a GUILD_CREATE snapshot keeps both times for members it already tracked, so a
reconnect neither restarts anyone's time nor costs them the slot in progress.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from synapse_async.domain.events import VoiceChange


@dataclass(slots=True)
class VoiceEntry:
    channel_id: int
    since: datetime
    muted: bool
    deafened: bool
    in_voice_since: datetime


class VoiceTracker:
    def __init__(self) -> None:
        self._guilds: dict[int, dict[int, VoiceEntry]] = {}

    def update(
        self, guild_id: int, user_id: int, channel_id: int | None, now: datetime, *, muted: bool, deafened: bool
    ) -> tuple[VoiceChange, VoiceEntry | None] | None:
        """Apply one voice-state update; return (change, the previous entry) or None when nothing is recorded."""
        members = self._guilds.setdefault(guild_id, {})
        previous = members.get(user_id)
        if channel_id is None:
            if previous is None:
                return None
            del members[user_id]
            return "leave", previous
        if previous is None:
            members[user_id] = VoiceEntry(channel_id, now, muted, deafened, now)
            return "join", None
        if previous.channel_id == channel_id:
            previous.muted, previous.deafened = muted, deafened
            return None
        members[user_id] = VoiceEntry(channel_id, now, muted, deafened, previous.in_voice_since)
        return "move", previous

    def count_in(self, guild_id: int, channel_id: int) -> int:
        return sum(1 for e in self._guilds.get(guild_id, {}).values() if e.channel_id == channel_id)

    def rebuild(self, guild_id: int, states: Iterable[tuple[int, int, bool, bool]], now: datetime) -> None:
        """Replace a guild's state from the gateway voice-state cache: (user_id, channel_id, muted, deafened)."""
        old = self._guilds.get(guild_id, {})
        fresh: dict[int, VoiceEntry] = {}
        for user, channel, muted, deafened in states:
            prev = old.get(user)
            if prev is None:
                fresh[user] = VoiceEntry(channel, now, muted, deafened, now)
            else:
                since = prev.since if prev.channel_id == channel else now
                fresh[user] = VoiceEntry(channel, since, muted, deafened, prev.in_voice_since)
        self._guilds[guild_id] = fresh

    def entry(self, guild_id: int, user_id: int) -> VoiceEntry | None:
        return self._guilds.get(guild_id, {}).get(user_id)

    def members(self, guild_id: int) -> dict[int, VoiceEntry]:
        return dict(self._guilds.get(guild_id, {}))

    def guild_ids(self) -> list[int]:
        return [g for g, members in self._guilds.items() if members]

    def __len__(self) -> int:
        return sum(len(m) for m in self._guilds.values())
