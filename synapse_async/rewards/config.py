"""The frozen per-guild configuration the hot path reads (SPEC §16.1): pure values, no I/O.

`cache/config_cache.py` loads these from the database and swaps a guild's `GuildConfig` as a whole; everything
that only READS configuration (the reward formula, multipliers, achievements, the ledger engine, the announcer)
depends on these types alone, never on the cache or SQLAlchemy. Row constructors (`TemplateInfo.from_row`) live
here so every loader builds the same value from the same columns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from synapse_async.rewards.leveling import LevelCurve, curve_for
from synapse_async.settings import ResolvedSettings


@dataclass(frozen=True, slots=True)
class Multiplier:
    xp: float
    stars: float


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    channel_id: int
    name: str
    type: str
    parent_id: int | None
    deleted: bool


@dataclass(frozen=True, slots=True)
class GuildInfo:
    guild_id: int
    name: str
    owner_id: int
    afk_channel_id: int | None
    icon_hash: str | None
    left: bool


@dataclass(frozen=True, slots=True)
class SeasonInfo:
    season_id: int
    name: str
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None = None
    active: bool = True

    def contains(self, at: datetime) -> bool:
        """SPEC §11 attribution: `at` ∈ [starts_at, COALESCE(ended_at, ends_at))."""
        return self.starts_at <= at < (self.ended_at if self.ended_at is not None else self.ends_at)


@dataclass(frozen=True, slots=True)
class NoXpTargets:
    channels: frozenset[int] = frozenset()
    roles: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    template_id: int
    name: str
    description: str | None
    category_id: int | None
    rarity_id: int | None
    series_id: int | None
    series_order: int | None
    trigger_type: str
    trigger_config: Mapping[str, Any]
    xp_reward: int
    gold_reward: int
    badge_image_url: str | None
    announce_channel_id: int | None
    is_hidden: bool
    max_earners: int | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TemplateInfo:
        """The one constructor from an `achievement_templates` row, for the cache loader (SQLAlchemy, JSONB decoded)
        and the grant path (asyncpg, JSON as text) alike, so both build exactly the same template."""
        config = row["trigger_config"]
        return cls(
            int(row["id"]),
            row["name"],
            row["description"],
            row["category_id"],
            row["rarity_id"],
            row["series_id"],
            row["series_order"],
            row["trigger_type"],
            dict(config) if isinstance(config, Mapping) else dict(json.loads(config or "{}")),
            int(row["xp_reward"]),
            int(row["gold_reward"]),
            row["badge_image_url"],
            row["announce_channel_id"],
            bool(row["is_hidden"]),
            row["max_earners"],
        )


@dataclass(frozen=True, slots=True)
class CategoryInfo:
    category_id: int
    name: str
    icon: str | None
    sort_order: int


@dataclass(frozen=True, slots=True)
class RarityInfo:
    rarity_id: int
    name: str
    color: str
    emoji: str | None
    sort_order: int


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    series_id: int
    name: str
    description: str | None


DEFAULT_SETTINGS = ResolvedSettings({})


@dataclass(frozen=True, slots=True)
class GuildConfig:
    """Everything the hot path needs about one guild, immutable and swapped as a whole."""

    guild_id: int
    settings: ResolvedSettings = field(default_factory=lambda: DEFAULT_SETTINGS)
    info: GuildInfo | None = None
    channels: Mapping[int, ChannelInfo] = field(default_factory=dict)
    type_defaults: Mapping[tuple[str, str], Multiplier] = field(default_factory=dict)
    overrides: Mapping[tuple[int, str], Multiplier] = field(default_factory=dict)
    role_multipliers: Mapping[int, Multiplier] = field(default_factory=dict)
    no_xp: NoXpTargets = NoXpTargets()
    level_roles: tuple[tuple[int, int], ...] = ()  # (level, role_id) ascending
    templates: tuple[TemplateInfo, ...] = ()  # active only, ordered by series, series_order, id
    # A fresh number on every load of `templates` (full or targeted): what the processor remembers about a
    # template's capacity is valid only for the load it was observed under (a revoke or reactivation reloads).
    templates_version: int = 0
    categories: Mapping[int, CategoryInfo] = field(default_factory=dict)
    rarities: Mapping[int, RarityInfo] = field(default_factory=dict)
    series: Mapping[int, SeriesInfo] = field(default_factory=dict)
    # The active season and those that ended recently, newest first: buffered events are attributed by their own
    # time (SPEC §11), so an event from before a rollover still finds the season it belongs to.
    seasons: tuple[SeasonInfo, ...] = ()
    # The level curve of `settings`, resolved when the configuration is built (never on the reward path); holding
    # it keeps the shared curve alive for as long as the guild uses it (see `curve_for`).
    curve: LevelCurve = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        curve = curve_for(self.settings.int("leveling.level_base"), self.settings.float("leveling.level_factor"))
        object.__setattr__(self, "curve", curve)

    @property
    def active_season(self) -> SeasonInfo | None:
        return next((s for s in self.seasons if s.active), None)


def season_at(guild: GuildConfig, at: datetime) -> SeasonInfo | None:
    """The season `at` belongs to (SPEC §11 attribution: [starts_at, COALESCE(ended_at, ends_at))), among the
    active and recently ended seasons the cache holds: an event buffered across a rollover keeps its season."""
    return next((s for s in guild.seasons if s.contains(at)), None)
