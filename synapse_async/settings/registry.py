"""The settings registry of SPEC §5.2 as plain data.

Every per-guild tunable is declared here exactly once, with its type, default, bounds, category, admin-facing
description and whether the public API may show it. Nothing here does I/O: the config cache, the admin API and
the reward pipeline all read the same frozen definitions, so a bound or default can never disagree between them.

Value checking lives in :mod:`synapse_async.settings.validation`; this module only says *what* the rules are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from synapse_async.domain.vocabulary import LAKE_EVENT_TYPES as LAKE_EVENT_TYPES

SettingType = Literal["int", "float", "bool", "string", "enum", "snowflake", "snowflake_list"]

SETTING_TYPES: Final[tuple[SettingType, ...]] = (
    "int",
    "float",
    "bool",
    "string",
    "enum",
    "snowflake",
    "snowflake_list",
)


@dataclass(frozen=True, slots=True)
class SettingDef:
    """One setting: its rules and its admin-facing metadata.

    ``min``/``max`` mean the value range for ``int``/``float``, the length in code points (after trimming) for
    ``string`` and the number of distinct entries for ``snowflake_list``. Bounds are inclusive. Integer settings
    carry integer bounds so they render as ``0``–``1000`` rather than ``0.0``–``1000.0`` in the API.
    """

    key: str
    type: SettingType
    default: object
    category: str
    description: str
    public: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    nullable: bool = False
    pattern: str | None = None
    """For ``string``: a regular expression the whole trimmed value must match, stated in ``pattern_rule``."""
    pattern_rule: str | None = None


# SPEC §15.1, in the table's order. `lake.source.<type>` keys are generated from this tuple so a new event type
# can never be added to the lake without also getting its on/off switch.

_LAKE_TYPE_PHRASES: Final[Mapping[str, str]] = {
    "message_create": "new messages",
    "message_delete": "deleted messages",
    "reaction_add": "added reactions",
    "reaction_remove": "removed reactions",
    "thread_create": "new threads",
    "voice_join": "voice channel joins",
    "voice_leave": "voice channel leaves",
    "voice_move": "moves between voice channels",
    "member_join": "members joining the server",
    "member_leave": "members leaving the server",
}

# (reward kind, default XP, default stars, phrase used in the description)
_REWARD_KINDS: Final[tuple[tuple[str, int, int, str], ...]] = (
    ("message", 15, 1, "each message that qualifies for a reward"),
    ("reaction_given", 2, 1, "reacting to another member's message"),
    ("reaction_received", 3, 1, "receiving a reaction from another member"),
    ("thread_create", 20, 2, "starting a thread"),
    ("voice_tick", 10, 1, "each completed voice tick (every voice.tick_minutes in voice)"),
)


def _int(
    key: str, default: int, lo: int, hi: int, category: str, description: str, *, public: bool = False
) -> SettingDef:
    return SettingDef(key, "int", default, category, description, public=public, min=lo, max=hi)


def _float(key: str, default: float, lo: float, hi: float, category: str, description: str) -> SettingDef:
    return SettingDef(key, "float", default, category, description, min=lo, max=hi)


def _bool(key: str, default: bool, category: str, description: str) -> SettingDef:
    return SettingDef(key, "bool", default, category, description)


def _string(
    key: str, default: str, lo: int, hi: int, category: str, description: str, *, public: bool = False
) -> SettingDef:
    return SettingDef(key, "string", default, category, description, public=public, min=lo, max=hi)


def _enum(
    key: str, default: str, allowed: tuple[str, ...], category: str, description: str, *, public: bool = False
) -> SettingDef:
    return SettingDef(key, "enum", default, category, description, public=public, allowed=allowed)


def _build() -> tuple[SettingDef, ...]:
    """All definitions in SPEC §5.2 table order, which is also the order the admin API lists them in."""
    defs: list[SettingDef] = []
    for kind, xp, stars, phrase in _REWARD_KINDS:
        defs.append(
            _int(
                f"rewards.{kind}.xp",
                xp,
                0,
                1000,
                "rewards",
                f"Base XP paid for {phrase}, before multipliers and modifiers.",
            )
        )
        defs.append(
            _int(
                f"rewards.{kind}.stars",
                stars,
                0,
                100,
                "rewards",
                f"Base stars paid for {phrase}, before multipliers.",
            )
        )
    defs += [
        _int(
            "cooldown.seconds",
            30,
            0,
            3600,
            "anti_gaming",
            "Seconds after a paid message during which further messages earn nothing; 0 turns the cooldown off.",
        ),
        _enum(
            "cooldown.scope",
            "user",
            ("user", "channel"),
            "anti_gaming",
            "Whether the message cooldown applies per member across the server (user) or per member in each "
            "channel (channel).",
        ),
        _int(
            "message.min_length",
            5,
            0,
            2000,
            "anti_gaming",
            "Messages shorter than this many characters earn nothing unless they carry an attachment.",
        ),
        _int(
            "reactions.pair_cap",
            3,
            1,
            100,
            "anti_gaming",
            "Maximum paid reactions between the same reactor and author within the pair window.",
        ),
        _int(
            "reactions.pair_window_hours",
            24,
            1,
            168,
            "anti_gaming",
            "Length in hours of the window in which reactions between the same two members are counted.",
        ),
        _float(
            "reactions.pair_decay",
            1.0,
            0,
            10,
            "anti_gaming",
            "How quickly rewards shrink for repeated reactions between the same two members (0 = no decay).",
        ),
        _int(
            "reactions.unique_reactor_cap",
            10,
            1,
            1000,
            "anti_gaming",
            "Maximum number of reactors whose reactions pay the author of one message.",
        ),
        _int(
            "reactions.velocity_window_seconds",
            300,
            0,
            86400,
            "anti_gaming",
            "Reactions arriving within this many seconds of a message being posted can count as a burst; 0 "
            "turns the burst check off.",
        ),
        _int(
            "reactions.velocity_min_reactors",
            5,
            1,
            1000,
            "anti_gaming",
            "Number of members already paid for reacting to a message from which further reactions within the "
            "burst window are capped at reactions.velocity_xp_cap XP.",
        ),
        _int(
            "reactions.velocity_xp_cap",
            1,
            0,
            1000,
            "anti_gaming",
            "Most XP a received reaction can pay while its message is in a reaction burst.",
        ),
        _int(
            "quality.medium_chars",
            200,
            1,
            4000,
            "quality",
            "Messages longer than this many characters get the medium-length bonus; must be below quality.long_chars.",
        ),
        _float(
            "quality.medium_bonus",
            1.2,
            1,
            5,
            "quality",
            "XP factor for messages longer than quality.medium_chars.",
        ),
        _int(
            "quality.long_chars",
            500,
            1,
            4000,
            "quality",
            "Messages longer than this many characters get the long-message bonus; must exceed quality.medium_chars.",
        ),
        _float(
            "quality.long_bonus",
            1.5,
            1,
            5,
            "quality",
            "XP factor for messages longer than quality.long_chars (replaces the medium bonus).",
        ),
        _float(
            "quality.code_block_bonus",
            1.4,
            1,
            5,
            "quality",
            "XP factor for messages that contain a code block.",
        ),
        _float(
            "quality.link_bonus",
            1.25,
            1,
            5,
            "quality",
            "XP factor for messages that contain a link.",
        ),
        _float(
            "quality.attachment_bonus",
            1.1,
            1,
            5,
            "quality",
            "XP factor for messages that carry at least one attachment.",
        ),
        _int(
            "quality.emoji_spam_threshold",
            5,
            0,
            100,
            "quality",
            "Messages with more emoji than this count as emoji spam and get the emoji spam penalty.",
        ),
        _float(
            "quality.emoji_spam_penalty",
            0.5,
            0,
            1,
            "quality",
            "XP factor applied to emoji spam messages (lower means a harsher penalty).",
        ),
        _float(
            "quality.floor",
            0.1,
            0,
            1,
            "quality",
            "Lowest overall quality factor a message can end up with after all bonuses and penalties.",
        ),
        _int(
            "voice.tick_minutes",
            10,
            1,
            60,
            "voice",
            "Minutes between voice ticks; each tick pays members who are active in a voice channel.",
        ),
        _int(
            "voice.hourly_tick_cap",
            6,
            1,
            60,
            "voice",
            "Maximum paid voice ticks per member within any 60 minutes.",
        ),
        _bool(
            "voice.skip_muted_deafened",
            True,
            "voice",
            "Members who are both muted and deafened earn no voice ticks.",
        ),
        _bool(
            "voice.skip_afk_channel",
            True,
            "voice",
            "Members in the server's AFK channel earn no voice ticks.",
        ),
        _bool(
            "voice.require_others",
            True,
            "voice",
            "Voice ticks pay only when at least one other active, non-bot member is in the channel.",
        ),
        _int(
            "leveling.level_base",
            100,
            10,
            1_000_000,
            "leveling",
            "XP needed to leave level 1; changing it recalculates every member's level.",
        ),
        _float(
            "leveling.level_factor",
            1.25,
            1.01,
            5,
            "leveling",
            "Growth factor of the XP needed per level; changing it recalculates every member's level.",
        ),
        _int(
            "leveling.gold_per_level_up",
            50,
            0,
            1_000_000,
            "leveling",
            "Gold paid for each level a member reaches for the first time.",
        ),
        _int(
            "economy.coffee_cost",
            50,
            1,
            1_000_000,
            "economy",
            "Gold price of one coffee bought with /buy-coffee.",
        ),
        _string(
            "economy.xp_name",
            "XP",
            1,
            32,
            "display",
            "Name shown for experience points in messages and on the public leaderboard.",
            public=True,
        ),
        _string(
            "economy.gold_name",
            "Gold",
            1,
            32,
            "display",
            "Name shown for the gold currency in messages and on the public leaderboard.",
            public=True,
        ),
        _string(
            "economy.stars_name",
            "Stars",
            1,
            32,
            "display",
            "Name shown for stars in messages and on the public leaderboard.",
            public=True,
        ),
        _int(
            "leaderboard.size",
            25,
            5,
            50,
            "display",
            "Number of members shown on the leaderboard.",
            public=True,
        ),
        _enum(
            "card.theme",
            "dark",
            ("dark", "light"),
            "display",
            "Colours of the rank card (/rank and the public card image): dark or light.",
            public=True,
        ),
        SettingDef(
            "card.accent",
            "string",
            None,
            "display",
            "Accent colour of the rank card as #rrggbb; empty uses the colour of the guild's highest coloured role.",
            public=True,
            min=0,
            max=7,
            nullable=True,
            pattern=r"#[0-9a-fA-F]{6}",
            pattern_rule="must be a colour written #rrggbb (six hexadecimal digits), or empty for the role colour",
        ),
        _bool(
            "announce.level_up",
            True,
            "announcements",
            "Announce when a member reaches a new level.",
        ),
        _bool(
            "announce.achievements",
            True,
            "announcements",
            "Announce when a member earns or is granted an achievement.",
        ),
        _bool(
            "announce.manual_awards",
            True,
            "announcements",
            "Announce when an admin awards a member XP or gold.",
        ),
        SettingDef(
            "announce.channel_id",
            "snowflake",
            None,
            "announcements",
            "Text channel for announcements; when empty, announcements go to the channel where the activity happened.",
            nullable=True,
        ),
        _int(
            "season.default_days",
            90,
            1,
            730,
            "seasons",
            "Length in days of a new season when no end is given, including automatically renewed seasons.",
            public=True,
        ),
        _bool(
            "season.auto_renew",
            False,
            "seasons",
            "Start the next season automatically when the current one ends.",
        ),
        _string(
            "season.name_template",
            "Season {n}",
            1,
            100,
            "seasons",
            "Name of automatically started seasons; {n} is replaced by the season's number.",
        ),
        _enum(
            "level_roles.mode",
            "stack",
            ("stack", "replace"),
            "level_roles",
            "Whether members keep every level role up to their level (stack) or only the highest one "
            "(replace); changing it re-syncs everyone's roles.",
        ),
        _bool(
            "level_roles.restore_on_rejoin",
            False,
            "level_roles",
            "Give returning members their level roles again when they rejoin the server.",
        ),
        SettingDef(
            "access.admin_role_ids",
            "snowflake_list",
            (),
            "access",
            "Roles whose members may use the bot's admin commands and dashboard, in addition to server "
            "administrators and the owner.",
            max=25,
        ),
        _bool(
            "public_api.enabled",
            True,
            "access",
            "Allow anyone to read this server's leaderboard, profiles and achievements through the public API.",
        ),
        _int(
            "lake.retention_days",
            90,
            1,
            3650,
            "event_lake",
            "Days raw event-lake rows and daily counters are kept before being deleted.",
        ),
    ]
    for event_type in LAKE_EVENT_TYPES:
        defs.append(
            _bool(
                f"lake.source.{event_type}",
                True,
                "event_lake",
                f"Record {_LAKE_TYPE_PHRASES[event_type]} ({event_type}) in the event lake and its counters.",
            )
        )
    return tuple(defs)


def _index(defs: Iterable[SettingDef]) -> Mapping[str, SettingDef]:
    index: dict[str, SettingDef] = {}
    for d in defs:
        if d.key in index:  # pragma: no cover - a typo in the table above, caught at import
            raise RuntimeError(f"duplicate setting key {d.key!r}")
        index[d.key] = d
    return MappingProxyType(index)


REGISTRY: Final[Mapping[str, SettingDef]] = _index(_build())
"""Every setting by key, in SPEC §5.2 order (dicts keep insertion order; the proxy makes it read-only)."""

PUBLIC_KEYS: Final[tuple[str, ...]] = tuple(k for k, d in REGISTRY.items() if d.public)
"""Keys the unauthenticated `GET /api/public/guilds/{id}/settings` may expose (SPEC §19)."""

CATEGORIES: Final[tuple[str, ...]] = tuple(dict.fromkeys(d.category for d in REGISTRY.values()))

# SPEC §5.1: which settings changes queue which background job.
_JOB_TRIGGERS: Final[Mapping[str, str]] = {
    "leveling.level_base": "relevel",
    "leveling.level_factor": "relevel",
    "level_roles.mode": "level_role_sync",
}


def jobs_triggered(changed_keys: Iterable[str]) -> set[str]:
    """Job kinds a settings write must queue, given the keys whose value actually changed (SPEC §5.1).

    The caller passes only keys whose stored value differs from before, so re-saving an unchanged level curve
    does not recompute every member's level.
    """
    return {job for key in changed_keys if (job := _JOB_TRIGGERS.get(key)) is not None}


def lake_source_key(event_type: str) -> str:
    """The `lake.source.<type>` toggle for a §15.1 event type; KeyError for a type the lake does not know."""
    key = f"lake.source.{event_type}"
    if key not in REGISTRY:
        raise KeyError(event_type)
    return key
