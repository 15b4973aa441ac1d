"""What a committed transaction asks the world to do afterwards (SPEC §8.1 "after commit").

Every writer of money and levels — the pipeline, the economy service, the relevel job — collects these inside its
transaction and hands them on only once COMMIT has succeeded: cooldown updates, level-up / achievement / award
announcements, role syncs. Nothing here performs I/O; the announcer, the role syncer and the cross-process handover
consume them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from synapse_async.rewards.config import TemplateInfo

CooldownKey = tuple[int, ...]
"""(guild, user) or (guild, user, channel) with `cooldown.scope = channel` (SPEC §9.3)."""


@dataclass(frozen=True, slots=True)
class LevelUp:
    guild_id: int
    user_id: int
    level: int
    gold: int
    channel_id: int | None
    journal_id: int | None = None  # the `level_change` row: what another process re-reads (SPEC §16.3)


@dataclass(frozen=True, slots=True)
class Earned:
    guild_id: int
    user_id: int
    template: TemplateInfo
    channel_id: int | None
    paid: bool
    granted_by: str | None = None  # the granting admin for manual grants ("Granted by …" footer, SPEC §14)
    journal_id: int | None = None  # the `achievement` row: what another process re-reads (SPEC §16.3)


@dataclass(frozen=True, slots=True)
class ManualAward:
    """A manual award to announce after commit (SPEC §14): only created when an applied amount is positive and the
    guild toggle and the member's preference allow it. Amounts are the APPLIED deltas (a clamped part may be 0)."""

    guild_id: int
    user_id: int
    xp: int
    gold: int
    reason: str
    actor_id: str
    channel_id: int | None
    journal_id: int | None = None  # the `manual_award` row: what another process re-reads (SPEC §16.3)


@dataclass(slots=True)
class Effects:
    """Work that may happen only after COMMIT succeeded."""

    cooldowns: dict[CooldownKey, datetime] = field(default_factory=dict)
    level_ups: list[LevelUp] = field(default_factory=list)
    achievements: list[Earned] = field(default_factory=list)
    role_syncs: dict[tuple[int, int], int] = field(default_factory=dict)
    awards: list[ManualAward] = field(default_factory=list)
    processed: int = 0
    duplicates: int = 0
    committed_ns: list[int] = field(default_factory=list)  # received_ns of each processed event (latency)
    full_templates: set[tuple[int, int]] = field(default_factory=set)  # found full: (id, templates_version)
