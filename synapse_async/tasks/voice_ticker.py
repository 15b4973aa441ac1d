"""The voice ticker (SPEC §7.3, §23.1): each check, every guild whose slot boundary passed emits voice ticks.

A guild ticks at every multiple of its `voice.tick_minutes` since the Unix epoch; the slot start is the tick's
event time and part of its idempotency key, so a restart or a double check can never pay a slot twice (the
journal's unique key holds). Only members in the voice tracker are considered, i.e. only local guilds, and only
those in voice since the slot started: a check runs some time after the boundary (up to its interval, or much
later when the guild's voice was empty at the boundary and refilled), and whoever joined in between was not
there for that slot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from synapse_async.cache.config_cache import ConfigCache
from synapse_async.domain.events import MemberRef, VoiceTick
from synapse_async.domain.voice import VoiceTracker
from synapse_async.rewards.voice import VoicePresence, eligible_members, slot_start

MemberLookup = Callable[[int, int], MemberRef]


class VoiceTicker:
    def __init__(
        self,
        tracker: VoiceTracker,
        cache: ConfigCache,
        submit: Callable[[VoiceTick], None],
        member_lookup: MemberLookup,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tracker = tracker
        self._cache = cache
        self._submit = submit
        self._member = member_lookup
        self._clock = clock
        self._last_slot: dict[int, int] = {}
        self.emitted = 0

    async def check(self) -> None:
        """One check (the supervisor runs it every minute, or faster in tests)."""
        now = self._clock()
        for guild_id in self._tracker.guild_ids():
            guild = self._cache.guild(guild_id)
            settings = guild.settings
            minutes = settings.int("voice.tick_minutes")
            slot = slot_start(now, minutes)
            if self._last_slot.get(guild_id) == slot:
                continue
            first = guild_id not in self._last_slot
            self._last_slot[guild_id] = slot
            if first:
                continue  # the first check only aligns to the current slot: a member must be present at its start
            at = datetime.fromtimestamp(slot, tz=UTC)
            present = {
                user: VoicePresence(e.channel_id, e.muted, e.deafened)
                for user, e in self._tracker.members(guild_id).items()
                if e.in_voice_since <= at
            }
            eligible = eligible_members(
                present,
                afk_channel_id=guild.info.afk_channel_id if guild.info is not None else None,
                skip_afk=settings.bool("voice.skip_afk_channel"),
                skip_muted_deafened=settings.bool("voice.skip_muted_deafened"),
                require_others=settings.bool("voice.require_others"),
            )
            for user in sorted(eligible):
                self._submit(
                    VoiceTick(
                        guild_id=guild_id,
                        occurred_at=at,
                        received_ns=time.monotonic_ns(),
                        member=self._member(guild_id, user),
                        channel_id=present[user].channel_id,
                        minutes=minutes,
                    )
                )
                self.emitted += 1
