"""Voice tick eligibility (SPEC §7.3): who in a voice channel earns a tick this slot. Pure.

A member is skipped in the guild's AFK channel (`voice.skip_afk_channel`), when both muted and deafened
(`voice.skip_muted_deafened`, self or server), or — with `voice.require_others` — when nobody else in the channel
passes the first two tests (the AFK test is per channel). Bots never appear here (the tracker holds members only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VoicePresence:
    channel_id: int
    muted: bool
    deafened: bool


def slot_start(epoch_seconds: float, tick_minutes: int) -> int:
    """The slot containing `epoch_seconds`: a multiple of `tick_minutes` since the Unix epoch, in seconds."""
    size = tick_minutes * 60
    return int(epoch_seconds // size) * size


def eligible_members(
    present: Mapping[int, VoicePresence],
    *,
    afk_channel_id: int | None,
    skip_afk: bool,
    skip_muted_deafened: bool,
    require_others: bool,
) -> set[int]:
    def active(p: VoicePresence) -> bool:
        return not (skip_muted_deafened and p.muted and p.deafened)

    by_channel: dict[int, list[int]] = {}
    for user, p in present.items():
        by_channel.setdefault(p.channel_id, []).append(user)
    out: set[int] = set()
    for channel, users in by_channel.items():
        if skip_afk and channel == afk_channel_id:
            continue
        actives = [u for u in users if active(present[u])]
        for user in actives:
            if require_others and not any(other != user for other in actives):
                continue
            out.add(user)
    return out
