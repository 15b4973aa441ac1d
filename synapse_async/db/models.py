"""The complete relational schema (SPEC §6) as SQLAlchemy 2 typed declarative models.

These classes are the single source of truth for table shapes in Python code (typed Core statements, result
rows). The database itself is created ONLY by the Alembic revisions in `migrations/versions`, which are frozen
copies written by hand; `tests/test_schema.py` proves the two agree, catalog object by catalog object.

Conventions applied throughout, and why:

- Snowflakes, XP, gold, stars and counts are BIGINT; bounded small numbers (levels, positions, sort orders) are
  INTEGER. Timestamps are `TIMESTAMP WITH TIME ZONE`, so every value read back is UTC-aware.
- Every NOT NULL column with a default has a SERVER default, never only a Python-side one: the hot paths write
  with hand-built `INSERT ... ON CONFLICT` statements, raw asyncpg and SQL upserts, which never run ORM
  defaults, and operators fixing data in `psql` get the same defaults as the application.
- Bookkeeping times (`created_at`, `updated_at`, `synced_at`, `recorded_at`, `revoked_at`, `earned_at`,
  `guilds.joined_at`, `admin_rate_events.occurred_at`) default to the transaction's `now()`. Domain times
  (journal and lake `occurred_at`, `starts_at`, `ends_at`, `expires_at`) have NO default: event time is never
  wall-clock time (SPEC §7.2), so forgetting to pass it must fail loudly instead of storing the wrong time.
  `updated_at` is maintained by the writers (there is no ON UPDATE in PostgreSQL and no trigger for it here).
- CHECK constraints mirror the validation ranges of the spec, so a bug in a writer is a constraint violation
  instead of silently corrupt money. Enum-like text columns are `TEXT` + `CHECK ... IN (...)` rather than
  PostgreSQL ENUM types: changing the vocabulary later is a constraint swap in one transactional revision, while
  an ENUM value can never be removed and a newly added one is unusable in the transaction that added it.
- Strings the spec bounds (`≤ n`) are `VARCHAR(n)`; strings it leaves open (Discord names, hashes) are `TEXT`,
  so a Discord-side limit change can never make the event pipeline fail.
- Columns naming a principal (`actor_id`, `updated_by`, `created_by`, `granted_by`, `requested_by`, `subject`)
  are `VARCHAR(40)` text, exactly like `audit_log.actor_id`: a principal is a Discord user id OR a service
  identity `svc:<name>` (SPEC §2, §21.2), which does not fit a BIGINT.
- Every constraint and index has a stable name (naming convention below, or an explicit name), so later
  revisions can alter or drop them by name on every deployment.
- No foreign keys beyond those the spec lists: members are upserted by the pipeline before or without a guild
  row, and journal/ledger rows must outlive anything they reference.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Final

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedColumn, mapped_column

from synapse_async.domain.vocabulary import (
    JOB_KINDS,
    JOB_STATUSES,
    LAKE_EVENT_TYPES,
    REWARD_KINDS,
    TRIGGER_TYPES,
    ZERO_REASONS,
)

# --------------------------------------------------------------------------------------------------------------
# Vocabulary shared with the application (and copied, frozen, into the initial migration).
# --------------------------------------------------------------------------------------------------------------

JOURNAL_EVENT_TYPES: Final = (*REWARD_KINDS, "manual_award", "achievement", "level_change", "import", "revoke")
GOLD_REASONS: Final = ("level_up", "achievement", "manual_award", "purchase", "import", "revoke")
CHANNEL_TYPES: Final = ("text", "announcement", "forum", "media", "voice", "stage", "category")
MULTIPLIER_CHANNEL_TYPES: Final = tuple(t for t in CHANNEL_TYPES if t != "category")
MULTIPLIER_EVENT_TYPES: Final = (*REWARD_KINDS, "*")
NO_XP_TARGET_TYPES: Final = ("channel", "role")
SEASON_STATUSES: Final = ("active", "ended")
ACHIEVEMENT_SOURCES: Final = ("auto", "grant", "import")
ACTOR_KINDS: Final = ("user", "service", "system")
AUDIT_VIA: Final = ("api", "command", "cli", "system")
JOB_ACTIVE_STATUSES: Final = ("queued", "running")
JOB_FINISHED_STATUSES: Final = ("succeeded", "failed", "cancelled")

MAX_LEVEL: Final = 1000
MAX_TEMPLATE_REWARD: Final = 1_000_000

NAMING_CONVENTION: Final = {
    "pk": "pk_%(table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
}


def _quoted(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _one_of(column: str, values: Iterable[str]) -> str:
    """SQL text `column IN ('a', 'b')` for an enum-like CHECK constraint."""
    return f"{column} IN ({_quoted(values)})"


def _is_object(column: str) -> str:
    return f"jsonb_typeof({column}) = 'object'"


def _between(column: str, low: int | str, high: int | str) -> str:
    return f"{column} >= {low} AND {column} <= {high}"


# --------------------------------------------------------------------------------------------------------------
# Column helpers: one place decides what "a snowflake", "a counter", "a multiplier" look like in the database.
# --------------------------------------------------------------------------------------------------------------


def _snowflake(*, primary_key: bool = False, nullable: bool = False) -> MappedColumn[Any]:
    # autoincrement=False: a single-column BIGINT primary key would otherwise become BIGSERIAL.
    return mapped_column(
        BigInteger, primary_key=primary_key, nullable=nullable, autoincrement=False if primary_key else "auto"
    )


def _serial_pk() -> MappedColumn[Any]:
    """BIGSERIAL surrogate key (the spec says BIGSERIAL, not IDENTITY)."""
    return mapped_column(BigInteger, primary_key=True, autoincrement=True)


def _guild_serial_pk() -> MappedColumn[Any]:
    """BIGSERIAL id inside a guild-first primary key, `(guild_id, id)` or the lake's `(guild_id, occurred_at, id)`
    (docs/scale.md, migrations 0010 and 0014): still unique on its own, but every key starts with the distribution
    column so the table can be sharded."""
    return mapped_column(BigInteger, autoincrement=True, nullable=False)


def _counter() -> MappedColumn[Any]:
    """A BIGINT amount or count that starts at 0."""
    return mapped_column(BigInteger, nullable=False, server_default=text("0"))


def _flag(default: bool) -> MappedColumn[Any]:
    return mapped_column(Boolean, nullable=False, server_default=text("true" if default else "false"))


def _multiplier() -> MappedColumn[Any]:
    # NUMERIC(6,3), not float: multipliers are typed by admins as decimals and must round-trip exactly.
    # No default: every write (PUT) states both multipliers explicitly.
    return mapped_column(Numeric(6, 3, asdecimal=True), nullable=False)


def _tstz(*, nullable: bool) -> MappedColumn[Any]:
    return mapped_column(DateTime(timezone=True), nullable=nullable)


def _now() -> MappedColumn[Any]:
    """A NOT NULL bookkeeping timestamp defaulting to the transaction's `now()`."""
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def _principal(*, nullable: bool) -> MappedColumn[Any]:
    return mapped_column(String(40), nullable=nullable)


def _json_object(default: str | None = "'{}'::jsonb") -> MappedColumn[Any]:
    return mapped_column(
        JSONB(none_as_null=True),
        nullable=False,
        server_default=text(default) if default is not None else None,
    )


class Base(DeclarativeBase):
    """Declarative base whose metadata carries the naming convention (pk_, uq_, ix_, ck_, fk_).

    Stable, predictable constraint names matter because later Alembic revisions alter constraints BY NAME; names
    generated by PostgreSQL (`members_pkey`, `members_check1`) would differ between a migrated database and
    one built by `create_all`. The type map is a safety net: an `int` column someone forgets to type explicitly
    becomes BIGINT and a `datetime` one becomes TIMESTAMPTZ, never INTEGER or a naive timestamp.
    """

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        int: BigInteger(),
        datetime: DateTime(timezone=True),
        Decimal: Numeric(6, 3),
        str: Text(),
        dict[str, Any]: JSONB(none_as_null=True),
        uuid.UUID: UUID(as_uuid=True),
    }


# ==============================================================================================================
# §6.1 Guild structure and reward rules
# ==============================================================================================================


class Guild(Base):
    """A Discord server the bot serves or has served (`left_at` set = data kept, events ignored).

    `defaults_seeded_at` makes rarity seeding happen once per guild: an admin who deletes the seeded rarities is
    not overruled at the next reconnect (SPEC §3.2 step 9).
    """

    __tablename__ = "guilds"

    guild_id: Mapped[int] = _snowflake(primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    owner_id: Mapped[int] = _snowflake()
    afk_channel_id: Mapped[int | None] = _snowflake(nullable=True)
    icon_hash: Mapped[str | None] = mapped_column(Text)
    joined_at: Mapped[datetime] = _now()
    left_at: Mapped[datetime | None] = _tstz(nullable=True)
    defaults_seeded_at: Mapped[datetime | None] = _tstz(nullable=True)
    updated_at: Mapped[datetime] = _now()


class GuildChannel(Base):
    """Synced copy of a guild's channels (threads excluded: their parent arrives with each event).

    Rows are soft-deleted (`deleted_at`) so overrides on removed channels stay visible and flagged, and so any
    process, not only the gateway owner, can validate channel ids and resolve categories.
    """

    __tablename__ = "guild_channels"

    guild_id: Mapped[int] = _snowflake(primary_key=True)
    channel_id: Mapped[int] = _snowflake(primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    type: Mapped[str] = mapped_column(Text, nullable=False)
    parent_id: Mapped[int | None] = _snowflake(nullable=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    deleted_at: Mapped[datetime | None] = _tstz(nullable=True)
    synced_at: Mapped[datetime] = _now()

    __table_args__ = (
        CheckConstraint(_one_of("type", CHANNEL_TYPES), name="type_allowed"),
        Index("ix_guild_channels_guild_id_parent_id", "guild_id", "parent_id"),
    )


class GuildRole(Base):
    """Synced copy of a guild's roles: lets any process validate role ids and answer admin-role questions
    without the gateway cache (SPEC §6.1)."""

    __tablename__ = "guild_roles"

    guild_id: Mapped[int] = _snowflake(primary_key=True)
    role_id: Mapped[int] = _snowflake(primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    # Discord's permission bitfield; BIGINT per spec (the highest bit in use is far below 2^63).
    permissions: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    managed: Mapped[bool] = _flag(False)
    deleted_at: Mapped[datetime | None] = _tstz(nullable=True)
    synced_at: Mapped[datetime] = _now()


class Setting(Base):
    """A per-guild override of one registry key (SPEC §5); no row means the registry default.

    `value` is JSONB holding exactly the JSON the registry validated. JSON `null` (a nullable snowflake such as
    `announce.channel_id` set to null) is stored as the JSON value `null`, not SQL NULL: the column is NOT NULL,
    so "row present" always means "explicit override".
    """

    __tablename__ = "settings"

    guild_id: Mapped[int] = _snowflake(primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    # none_as_null=False (the default): Python None is written as JSON 'null', which is what we want here.
    value: Mapped[Any] = mapped_column(JSONB, nullable=False)
    updated_at: Mapped[datetime] = _now()
    updated_by: Mapped[str | None] = _principal(nullable=True)


class ChannelTypeDefault(Base):
    """Multipliers per (channel type, reward kind or `*`), step 4 of the multiplier resolution (SPEC §9.1)."""

    __tablename__ = "channel_type_defaults"

    guild_id: Mapped[int] = _snowflake(primary_key=True)
    channel_type: Mapped[str] = mapped_column(Text, primary_key=True)
    event_type: Mapped[str] = mapped_column(Text, primary_key=True)
    xp_multiplier: Mapped[Decimal] = _multiplier()
    star_multiplier: Mapped[Decimal] = _multiplier()
    updated_at: Mapped[datetime] = _now()

    __table_args__ = (
        CheckConstraint(_one_of("channel_type", MULTIPLIER_CHANNEL_TYPES), name="channel_type_allowed"),
        CheckConstraint(_one_of("event_type", MULTIPLIER_EVENT_TYPES), name="event_type_allowed"),
        CheckConstraint(_between("xp_multiplier", 0, 10), name="xp_multiplier_range"),
        CheckConstraint(_between("star_multiplier", 0, 10), name="star_multiplier_range"),
    )


class ChannelOverride(Base):
    """Multipliers for one channel or category and reward kind (or `*`), steps 1–3 of SPEC §9.1.

    Not a foreign key to `guild_channels`: overrides on deleted channels must survive (they are shown flagged).
    """

    __tablename__ = "channel_overrides"

    guild_id: Mapped[int] = _snowflake(primary_key=True)
    channel_id: Mapped[int] = _snowflake(primary_key=True)
    event_type: Mapped[str] = mapped_column(Text, primary_key=True)
    xp_multiplier: Mapped[Decimal] = _multiplier()
    star_multiplier: Mapped[Decimal] = _multiplier()
    reason: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = _now()

    __table_args__ = (
        CheckConstraint(_one_of("event_type", MULTIPLIER_EVENT_TYPES), name="event_type_allowed"),
        CheckConstraint(_between("xp_multiplier", 0, 10), name="xp_multiplier_range"),
        CheckConstraint(_between("star_multiplier", 0, 10), name="star_multiplier_range"),
    )


class RoleMultiplier(Base):
    """Per-role multipliers; the highest XP and highest star factor among a member's roles apply (SPEC §9.1)."""

    __tablename__ = "role_multipliers"

    guild_id: Mapped[int] = _snowflake(primary_key=True)
    role_id: Mapped[int] = _snowflake(primary_key=True)
    xp_multiplier: Mapped[Decimal] = _multiplier()
    star_multiplier: Mapped[Decimal] = _multiplier()
    updated_at: Mapped[datetime] = _now()

    __table_args__ = (
        CheckConstraint(_between("xp_multiplier", 0, 10), name="xp_multiplier_range"),
        CheckConstraint(_between("star_multiplier", 0, 10), name="star_multiplier_range"),
    )


class NoXpTarget(Base):
    """A channel/category or role whose events or members earn nothing (`zero_reason = no_xp`)."""

    __tablename__ = "no_xp_targets"

    guild_id: Mapped[int] = _snowflake(primary_key=True)
    target_type: Mapped[str] = mapped_column(Text, primary_key=True)
    target_id: Mapped[int] = _snowflake(primary_key=True)
    # The spec gives no length limit for this reason (unlike overrides), so TEXT.
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()

    __table_args__ = (CheckConstraint(_one_of("target_type", NO_XP_TARGET_TYPES), name="target_type_allowed"),)


class LevelRoleReward(Base):
    """A role granted at a level (SPEC §13). The limit of 50 rows per guild is enforced by the API, not here."""

    __tablename__ = "level_role_rewards"

    guild_id: Mapped[int] = _snowflake(primary_key=True)
    role_id: Mapped[int] = _snowflake(primary_key=True)
    level: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = _now()

    __table_args__ = (
        CheckConstraint(_between("level", 1, MAX_LEVEL), name="level_range"),
        Index("ix_level_role_rewards_guild_id_level", "guild_id", "level"),
    )


class LevelRoleGrant(Base):
    """A level-reward role the bot added to a member (SPEC §13): the only reward roles a sync may remove.

    Empty after the upgrade that created it (0004): roles members held before are never removed by the bot.
    """

    __tablename__ = "level_role_grants"

    guild_id: Mapped[int] = _snowflake(primary_key=True)
    user_id: Mapped[int] = _snowflake(primary_key=True)
    role_id: Mapped[int] = _snowflake(primary_key=True)
    granted_at: Mapped[datetime] = _now()


# ==============================================================================================================
# §6.2 Members and seasons
# ==============================================================================================================


class Member(Base):
    """One (guild, user) pair and its balances; XP/gold/stars change only by atomic SQL increments (P3).

    The CHECKs are the last line of defence for invariants the writers already keep: balances never negative,
    `level` within 1–1000 and never above `peak_level` (peak is "highest level ever reached", raised with
    GREATEST in the same UPDATE that sets the level). There is no index on names: this row is rewritten on every
    event, and a trigram index would add an entry per trigram each time (docs/decisions.md, hot-path indexes).
    """

    __tablename__ = "members"

    guild_id: Mapped[int] = _snowflake(primary_key=True)
    user_id: Mapped[int] = _snowflake(primary_key=True)
    display_name: Mapped[str] = mapped_column(String(100), nullable=False)
    avatar_hash: Mapped[str | None] = mapped_column(Text)
    xp: Mapped[int] = _counter()
    level: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    peak_level: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    gold: Mapped[int] = _counter()
    lifetime_stars: Mapped[int] = _counter()
    messages_sent: Mapped[int] = _counter()
    reactions_given: Mapped[int] = _counter()
    reactions_received: Mapped[int] = _counter()
    threads_created: Mapped[int] = _counter()
    voice_minutes: Mapped[int] = _counter()
    github_username: Mapped[str | None] = mapped_column(String(39))
    joined_at: Mapped[datetime | None] = _tstz(nullable=True)
    left_at: Mapped[datetime | None] = _tstz(nullable=True)
    last_active_at: Mapped[datetime | None] = _tstz(nullable=True)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()

    __table_args__ = (
        CheckConstraint("xp >= 0", name="xp_non_negative"),
        CheckConstraint("gold >= 0", name="gold_non_negative"),
        CheckConstraint("lifetime_stars >= 0", name="lifetime_stars_non_negative"),
        CheckConstraint(_between("level", 1, MAX_LEVEL), name="level_range"),
        CheckConstraint(_between("peak_level", "level", MAX_LEVEL), name="peak_level_range"),
        CheckConstraint(
            "messages_sent >= 0 AND reactions_given >= 0 AND reactions_received >= 0"
            " AND threads_created >= 0 AND voice_minutes >= 0",
            name="stats_non_negative",
        ),
        # GitHub's rules (SPEC §17.2): alphanumerics and single inner hyphens; the length is the VARCHAR(39).
        CheckConstraint(
            "github_username ~ '^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$'",
            name="github_username_format",
        ),
        # Room on each page for the new version of an updated row: with no indexed column changed (a message within
        # its cooldown moves counters and `last_active_at` only), the update is HOT and writes no index entry.
        {"postgresql_with": {"fillfactor": "85"}},
    )


# Leaderboard indexes: (guild, value DESC, user_id) answers "top N" and "rank = 1 + count(higher)" by index scan,
# with user_id as the documented tie-breaker (SPEC §17.1).
# Partial (`left_at IS NULL`): members who left are never ranked, so counting those above a value is an index-only
# scan even near the bottom of a 100,000-member guild.
for _column in (Member.xp, Member.gold, Member.lifetime_stars):
    Index(
        f"ix_members_guild_id_{_column.key}",
        Member.guild_id,
        _column.desc(),
        Member.user_id,
        postgresql_where=Member.left_at.is_(None),
    )
# Members who left (a small set): season rankings exclude them with an anti-join on this index (SPEC §17.1).
Index(
    "ix_members_guild_id_user_id_left",
    Member.guild_id,
    Member.user_id,
    postgresql_where=Member.left_at.isnot(None),
)


class XpRankCount(Base):
    """How many ranked members (present, XP > 0) sit under one node of a guild's lifetime-XP radix tree.

    Level 0 counts each exact XP value, level k the values with the same `xp >> 8k` (`services.ranks`). Written
    only by the triggers of `XP_RANK_COUNTS_DDL` on `members`, in the transaction that changes a member, so a
    rank read from it is exact at every commit and in every process (issue 27: no count of rows per request).
    Nodes that fall to 0 members are deleted. No foreign key: the rows follow the members, whose deletion (guild
    removal included) decrements them."""

    __tablename__ = "xp_rank_counts"

    guild_id: Mapped[int] = _snowflake(primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    members: Mapped[int] = mapped_column(BigInteger, nullable=False)


class MemberPreference(Base):
    """Per-member announcement opt-outs and public visibility; no row means everything on. Cascades with the
    member row."""

    __tablename__ = "member_preferences"

    guild_id: Mapped[int] = _snowflake(primary_key=True)
    user_id: Mapped[int] = _snowflake(primary_key=True)
    announce_level_up: Mapped[bool] = _flag(True)
    announce_achievements: Mapped[bool] = _flag(True)
    announce_awards: Mapped[bool] = _flag(True)
    updated_at: Mapped[datetime] = _now()
    # Off: "Anonymous member" on public pages and the API, without avatar or link; profile and card 404 (§17.2).
    # After `updated_at` because migration 0006 added it to the existing table.
    public_profile: Mapped[bool] = _flag(True)

    __table_args__ = (
        ForeignKeyConstraint(
            ["guild_id", "user_id"],
            ["members.guild_id", "members.user_id"],
            ondelete="CASCADE",
        ),
    )


class Season(Base):
    """A time-boxed competition; at most one `active` per guild, enforced by the partial unique index
    `uq_seasons_one_active` so that even two racing processes cannot both start one (SPEC §11, §27.5).

    `ended_at` is set exactly when the status becomes `ended`; attribution uses
    `[starts_at, COALESCE(ended_at, ends_at))`, so an active season must have `ended_at` NULL.
    """

    __tablename__ = "seasons"

    season_id: Mapped[int] = _guild_serial_pk()
    guild_id: Mapped[int] = _snowflake()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    starts_at: Mapped[datetime] = _tstz(nullable=False)
    ends_at: Mapped[datetime] = _tstz(nullable=False)
    # No default: starting and ending are explicit state changes.
    status: Mapped[str] = mapped_column(Text, nullable=False)
    ended_at: Mapped[datetime | None] = _tstz(nullable=True)
    created_by: Mapped[str | None] = _principal(nullable=True)
    created_at: Mapped[datetime] = _now()

    __table_args__ = (
        PrimaryKeyConstraint("guild_id", "season_id"),
        UniqueConstraint("guild_id", "name"),
        CheckConstraint(_one_of("status", SEASON_STATUSES), name="status_allowed"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("(status = 'ended') = (ended_at IS NOT NULL)", name="ended_at_matches_status"),
        Index(
            "uq_seasons_one_active",
            "guild_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
    )


Index("ix_seasons_guild_id_starts_at", Season.guild_id, Season.starts_at.desc())


class SeasonStat(Base):
    """A member's per-season totals; ON DELETE RESTRICT keeps a season with stats from being deleted.

    All values are non-negative by construction: season XP is `GREATEST(xp + Δ, 0)` and `gold_earned` counts
    positive movements only (SPEC §11).
    """

    __tablename__ = "season_stats"

    season_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    user_id: Mapped[int] = _snowflake()
    guild_id: Mapped[int] = _snowflake()
    stars: Mapped[int] = _counter()
    xp: Mapped[int] = _counter()
    gold_earned: Mapped[int] = _counter()
    messages_sent: Mapped[int] = _counter()
    reactions_given: Mapped[int] = _counter()
    reactions_received: Mapped[int] = _counter()
    threads_created: Mapped[int] = _counter()
    voice_minutes: Mapped[int] = _counter()

    __table_args__ = (
        PrimaryKeyConstraint("guild_id", "season_id", "user_id"),
        ForeignKeyConstraint(["guild_id", "season_id"], ["seasons.guild_id", "seasons.season_id"], ondelete="RESTRICT"),
        CheckConstraint(
            "stars >= 0 AND xp >= 0 AND gold_earned >= 0 AND messages_sent >= 0 AND reactions_given >= 0"
            " AND reactions_received >= 0 AND threads_created >= 0 AND voice_minutes >= 0",
            name="values_non_negative",
        ),
    )


Index("ix_season_stats_season_id_stars", SeasonStat.season_id, SeasonStat.stars.desc(), SeasonStat.user_id)
Index("ix_season_stats_season_id_xp", SeasonStat.season_id, SeasonStat.xp.desc(), SeasonStat.user_id)
Index(
    "ix_season_stats_season_id_gold_earned",
    SeasonStat.season_id,
    SeasonStat.gold_earned.desc(),
    SeasonStat.user_id,
)


# ==============================================================================================================
# §6.3 Journal, ledger and event lake
# ==============================================================================================================


class RewardJournal(Base):
    """Append-only record of every reward item and XP/star change; its unique key is what makes every effect
    exactly-once (SPEC P2: the insert conflicts on a duplicate and nothing else happens).

    Windows for anti-gaming are counted from these rows (paid = `zero_reason IS NULL`), hence the two partial
    indexes: per (reactor, author) pairs and per message. The CHECKs encode SPEC §9.4: a zeroed item pays
    nothing, and event rewards are never negative (only awards, revokes and imports may subtract).
    """

    __tablename__ = "reward_journal"

    id: Mapped[int] = _guild_serial_pk()
    guild_id: Mapped[int] = _snowflake()
    user_id: Mapped[int] = _snowflake()
    event_type: Mapped[str] = mapped_column(Text, nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(160), nullable=False)
    season_id: Mapped[int | None] = mapped_column(BigInteger)
    channel_id: Mapped[int | None] = _snowflake(nullable=True)
    counterpart_id: Mapped[int | None] = _snowflake(nullable=True)
    ref_id: Mapped[int | None] = _snowflake(nullable=True)
    # No defaults on the deltas: every writer states the amount it applied.
    xp_delta: Mapped[int] = mapped_column(BigInteger, nullable=False)
    star_delta: Mapped[int] = mapped_column(BigInteger, nullable=False)
    zero_reason: Mapped[str | None] = mapped_column(Text)
    actor_id: Mapped[str | None] = _principal(nullable=True)
    details: Mapped[dict[str, Any]] = _json_object()
    occurred_at: Mapped[datetime] = _tstz(nullable=False)
    recorded_at: Mapped[datetime] = _now()

    __table_args__ = (
        PrimaryKeyConstraint("guild_id", "id"),
        UniqueConstraint("guild_id", "idempotency_key"),
        CheckConstraint(_one_of("event_type", JOURNAL_EVENT_TYPES), name="event_type_allowed"),
        CheckConstraint(
            f"zero_reason IS NULL OR ({_one_of('zero_reason', ZERO_REASONS)} AND xp_delta = 0 AND star_delta = 0)",
            name="zero_reason_pays_nothing",
        ),
        CheckConstraint(
            f"NOT ({_one_of('event_type', REWARD_KINDS)}) OR (xp_delta >= 0 AND star_delta >= 0)",
            name="event_rewards_non_negative",
        ),
        CheckConstraint(_is_object("details"), name="details_is_object"),
        Index(
            "ix_reward_journal_counterpart",
            "guild_id",
            "user_id",
            "counterpart_id",
            "event_type",
            "occurred_at",
            postgresql_where=text("counterpart_id IS NOT NULL"),
        ),
        # Only the reactor count (§9.3 `r`) reads it: messages carry a ref_id too but need no entry (migration 0002).
        Index(
            "ix_reward_journal_ref_id",
            "guild_id",
            "ref_id",
            postgresql_where=text("event_type = 'reaction_received'"),
        ),
    )


Index(
    "ix_reward_journal_guild_id_user_id_occurred_at",
    RewardJournal.guild_id,
    RewardJournal.user_id,
    RewardJournal.occurred_at.desc(),
)
# Ordered like the public activity list, so its pages (and keyset continuations) are index scans (migration 0008).
# Partial on what that list and its daily counts read (migration 0012): unpaid messages, most of them, get no entry.
PUBLIC_JOURNAL_ROWS = (
    "event_type IN ('level_change', 'achievement') OR (zero_reason IS NULL AND (xp_delta > 0 OR star_delta > 0))"
)
Index(
    "ix_reward_journal_guild_id_occurred_at_id",
    RewardJournal.guild_id,
    RewardJournal.occurred_at.desc(),
    RewardJournal.id.desc(),
    postgresql_where=text(PUBLIC_JOURNAL_ROWS),
)
# The public activity's "new peak level" test reads earlier level changes of one member only (migration 0008).
Index(
    "ix_reward_journal_level_changes",
    RewardJournal.guild_id,
    RewardJournal.user_id,
    RewardJournal.id,
    postgresql_where=text("event_type = 'level_change'"),
)


class GoldLedger(Base):
    """Every gold movement with the balance after it (SPEC §10.3); the sum of deltas equals `members.gold`.

    A zero movement is not a movement (`delta <> 0`), and the sign is fixed for the kinds that have one:
    level-up and achievement gold is paid, a purchase or revoke takes gold away.
    """

    __tablename__ = "gold_ledger"

    id: Mapped[int] = _guild_serial_pk()
    guild_id: Mapped[int] = _snowflake()
    user_id: Mapped[int] = _snowflake()
    delta: Mapped[int] = mapped_column(BigInteger, nullable=False)
    balance_after: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    journal_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_id: Mapped[str | None] = _principal(nullable=True)
    idempotency_key: Mapped[str] = mapped_column(String(160), nullable=False)
    note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()

    __table_args__ = (
        PrimaryKeyConstraint("guild_id", "id"),
        UniqueConstraint("guild_id", "idempotency_key"),
        CheckConstraint("delta <> 0", name="delta_non_zero"),
        CheckConstraint("balance_after >= 0", name="balance_after_non_negative"),
        CheckConstraint(_one_of("reason", GOLD_REASONS), name="reason_allowed"),
        CheckConstraint(
            "(reason NOT IN ('level_up', 'achievement') OR delta > 0)"
            " AND (reason NOT IN ('purchase', 'revoke') OR delta < 0)",
            name="delta_sign_matches_reason",
        ),
    )


Index(
    "ix_gold_ledger_guild_id_user_id_created_at",
    GoldLedger.guild_id,
    GoldLedger.user_id,
    GoldLedger.created_at.desc(),
)


class EventLake(Base):
    """Metadata-only record of gateway activity (never message content, SPEC P5 / §15).

    Partitioned by day on `occurred_at` (issue 27): retention drops whole old partitions instead of deleting rows,
    and time-bounded reads scan only the partitions they touch. Daily partitions are created ahead by
    `db/lake_partitions.py`; the DEFAULT partition made here catches any time no daily partition covers. The
    primary key holds the partition key, as PostgreSQL requires, so the duplicate gate lives in `EventLakeKey`.

    The primary key is (guild_id, occurred_at, id) (migration 0014): guild first so the lake can be distributed by
    guild, then time because every lake read is one guild by time (the admin listing newest first, retention
    oldest first); `id` is the tie-breaker those reads sort by. Nothing reads a lake row by id alone.
    """

    __tablename__ = "event_lake"

    id: Mapped[int] = _guild_serial_pk()
    guild_id: Mapped[int] = _snowflake()
    user_id: Mapped[int | None] = _snowflake(nullable=True)
    event_type: Mapped[str] = mapped_column(Text, nullable=False)
    channel_id: Mapped[int | None] = _snowflake(nullable=True)
    target_id: Mapped[int | None] = _snowflake(nullable=True)
    source_key: Mapped[str] = mapped_column(String(160), nullable=False)
    payload: Mapped[dict[str, Any]] = _json_object()
    occurred_at: Mapped[datetime] = _tstz(nullable=False)
    recorded_at: Mapped[datetime] = _now()

    __table_args__ = (
        PrimaryKeyConstraint("guild_id", "occurred_at", "id"),
        CheckConstraint(_one_of("event_type", LAKE_EVENT_TYPES), name="event_type_allowed"),
        CheckConstraint(_is_object("payload"), name="payload_is_object"),
        {"postgresql_partition_by": "RANGE (occurred_at)"},
    )


event.listen(
    EventLake.__table__,
    "after_create",
    DDL("CREATE TABLE event_lake_default PARTITION OF event_lake DEFAULT"),  # type: ignore[no-untyped-call]
)


class EventLakeKey(Base):
    """The lake's exactly-once gate: one row per `(guild_id, source_key)` ever written (SPEC §8.1).

    It cannot be a UNIQUE on the partitioned lake (that would have to include `occurred_at`, and several lake
    types take their time from the moment of receipt, so a redelivery may carry another time). The pipeline
    inserts here `ON CONFLICT DO NOTHING` and writes the lake row only when that inserted. Rows are narrow and
    carry the lake row's `user_id` (the author lookup by key reads it here: one probe, not one per partition) and
    `occurred_at`; retention prunes them after the rows they guard.
    """

    __tablename__ = "event_lake_keys"

    guild_id: Mapped[int] = _snowflake(primary_key=True)
    source_key: Mapped[str] = mapped_column(String(160), primary_key=True)
    user_id: Mapped[int | None] = _snowflake(nullable=True)
    occurred_at: Mapped[datetime] = _tstz(nullable=False)

    __table_args__ = (Index("ix_event_lake_keys_guild_id_occurred_at", "guild_id", "occurred_at"),)


class EventCounter(Base):
    """Insert-or-increment counters per (member, lake type, period) (SPEC §15.2).

    `period` is one of `lifetime`, `season:<id>`, `day:YYYY-MM-DD`; the CHECK pins that grammar because
    retention deletes by prefix and must never match a `lifetime` or `season:` row by accident.
    """

    __tablename__ = "event_counters"

    guild_id: Mapped[int] = _snowflake(primary_key=True)
    user_id: Mapped[int] = _snowflake(primary_key=True)
    event_type: Mapped[str] = mapped_column(Text, primary_key=True)
    period: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = _counter()
    updated_at: Mapped[datetime] = _now()

    __table_args__ = (
        CheckConstraint("count >= 0", name="count_non_negative"),
        CheckConstraint(_one_of("event_type", LAKE_EVENT_TYPES), name="event_type_allowed"),
        CheckConstraint(
            "period = 'lifetime' OR period ~ '^season:[0-9]+$' OR period ~ '^day:[0-9]{4}-[0-9]{2}-[0-9]{2}$'",
            name="period_format",
        ),
        Index("ix_event_counters_guild_id_period", "guild_id", "period"),
        # Room for the new version of an incremented counter on its own page: the increment changes no indexed
        # column, so it is HOT and writes no index entry (migration 0015).
        {"postgresql_with": {"fillfactor": "85"}},
    )


# ==============================================================================================================
# §6.4 Achievements
# ==============================================================================================================


class AchievementCategory(Base):
    """Groups templates in the gallery; deleting one nulls `achievement_templates.category_id` (trigger
    `achievement_categories_clear_templates`, see `CATALOG_CLEAR_DDL`)."""

    __tablename__ = "achievement_categories"

    id: Mapped[int] = _guild_serial_pk()
    guild_id: Mapped[int] = _snowflake()
    name: Mapped[str] = mapped_column(String(50), nullable=False)
    icon: Mapped[str | None] = mapped_column(String(64))
    sort_order: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))

    __table_args__ = (PrimaryKeyConstraint("guild_id", "id"), UniqueConstraint("guild_id", "name"))


class AchievementRarity(Base):
    """Name, colour and emoji shown with earned badges; seeded once per guild (SPEC §12.1). Deleting one nulls
    `achievement_templates.rarity_id` (trigger `achievement_rarities_clear_templates`)."""

    __tablename__ = "achievement_rarities"

    id: Mapped[int] = _guild_serial_pk()
    guild_id: Mapped[int] = _snowflake()
    name: Mapped[str] = mapped_column(String(50), nullable=False)
    color: Mapped[str] = mapped_column(String(7), nullable=False)
    emoji: Mapped[str | None] = mapped_column(String(64))
    sort_order: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))

    __table_args__ = (
        PrimaryKeyConstraint("guild_id", "id"),
        UniqueConstraint("guild_id", "name"),
        CheckConstraint("color ~ '^#[0-9A-Fa-f]{6}$'", name="color_format"),
    )


class AchievementSeries(Base):
    """Chains templates into tiers ordered by `achievement_templates.series_order`. Deleting one nulls the
    templates' `series_id` and, through `achievement_templates_clear_series_order`, their `series_order`
    (trigger `achievement_series_clear_templates`)."""

    __tablename__ = "achievement_series"

    id: Mapped[int] = _guild_serial_pk()
    guild_id: Mapped[int] = _snowflake()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    description: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (PrimaryKeyConstraint("guild_id", "id"), UniqueConstraint("guild_id", "name"))


class AchievementTemplate(Base):
    """An achievement definition: trigger, rewards and presentation (SPEC §12).

    `max_earners` is enforced by the database as well as by the conditional `earned_count` increment, so no
    race can exceed it (SPEC §27.5).

    Category, rarity and series are composite foreign keys `(guild_id, x_id) → (guild_id, id)` (migration 0014),
    so the database refuses a reference to another guild's row. They are NO ACTION rather than ON DELETE SET
    NULL: made composite, SET NULL would also null `guild_id`, and PostgreSQL 14 has no `SET NULL (column)`.
    Deleting a category, rarity or series still clears it here, through a BEFORE DELETE trigger on that table
    (`CATALOG_CLEAR_DDL`). `series_order` is required exactly when `series_id` is set; because deleting a series
    nulls `series_id`, the trigger `achievement_templates_clear_series_order` (see `TEMPLATE_SERIES_DDL`) clears
    `series_order` in the same row update, otherwise that CHECK would make every series with tiers undeletable.
    """

    __tablename__ = "achievement_templates"

    id: Mapped[int] = _guild_serial_pk()
    guild_id: Mapped[int] = _snowflake()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    description: Mapped[str | None] = mapped_column(String(500))
    category_id: Mapped[int | None] = mapped_column(BigInteger)
    rarity_id: Mapped[int | None] = mapped_column(BigInteger)
    series_id: Mapped[int | None] = mapped_column(BigInteger)
    series_order: Mapped[int | None] = mapped_column(Integer)
    trigger_type: Mapped[str] = mapped_column(Text, nullable=False)
    # Validated per trigger type by the API (SPEC §12.2); `manual` has `{}`, hence the default.
    trigger_config: Mapped[dict[str, Any]] = _json_object()
    xp_reward: Mapped[int] = _counter()
    gold_reward: Mapped[int] = _counter()
    badge_image_url: Mapped[str | None] = mapped_column(String(500))
    announce_channel_id: Mapped[int | None] = _snowflake(nullable=True)
    is_hidden: Mapped[bool] = _flag(False)
    max_earners: Mapped[int | None] = mapped_column(BigInteger)
    earned_count: Mapped[int] = _counter()
    active: Mapped[bool] = _flag(True)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()

    __table_args__ = (
        PrimaryKeyConstraint("guild_id", "id"),
        UniqueConstraint("guild_id", "name"),
        ForeignKeyConstraint(
            ["guild_id", "category_id"], ["achievement_categories.guild_id", "achievement_categories.id"]
        ),
        ForeignKeyConstraint(["guild_id", "rarity_id"], ["achievement_rarities.guild_id", "achievement_rarities.id"]),
        ForeignKeyConstraint(["guild_id", "series_id"], ["achievement_series.guild_id", "achievement_series.id"]),
        CheckConstraint("series_order >= 1", name="series_order_positive"),
        CheckConstraint("(series_id IS NULL) = (series_order IS NULL)", name="series_order_iff_series"),
        CheckConstraint(_one_of("trigger_type", TRIGGER_TYPES), name="trigger_type_allowed"),
        CheckConstraint(_is_object("trigger_config"), name="trigger_config_is_object"),
        CheckConstraint(_between("xp_reward", 0, MAX_TEMPLATE_REWARD), name="xp_reward_range"),
        CheckConstraint(_between("gold_reward", 0, MAX_TEMPLATE_REWARD), name="gold_reward_range"),
        CheckConstraint("badge_image_url ~* '^https://'", name="badge_image_url_https"),
        CheckConstraint("max_earners >= 1", name="max_earners_positive"),
        CheckConstraint("earned_count >= 0", name="earned_count_non_negative"),
        CheckConstraint("max_earners IS NULL OR earned_count <= max_earners", name="max_earners_not_exceeded"),
        Index(
            "uq_achievement_templates_guild_id_series_id_series_order",
            "guild_id",
            "series_id",
            "series_order",
            unique=True,
            postgresql_where=text("series_id IS NOT NULL"),
        ),
        Index("ix_achievement_templates_guild_id_active", "guild_id", "active"),
    )


class MemberAchievement(Base):
    """An earned badge. ON DELETE RESTRICT on the template: a template anyone has earned cannot be deleted
    (the API answers 409 and suggests deactivating it, SPEC §12.3)."""

    __tablename__ = "member_achievements"

    guild_id: Mapped[int] = _snowflake(primary_key=True)
    user_id: Mapped[int] = _snowflake(primary_key=True)
    template_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    earned_at: Mapped[datetime] = _now()
    source: Mapped[str] = mapped_column(Text, nullable=False)
    granted_by: Mapped[str | None] = _principal(nullable=True)
    journal_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        ForeignKeyConstraint(
            ["guild_id", "template_id"],
            ["achievement_templates.guild_id", "achievement_templates.id"],
            ondelete="RESTRICT",
        ),
        CheckConstraint(_one_of("source", ACHIEVEMENT_SOURCES), name="source_allowed"),
        CheckConstraint("source <> 'grant' OR granted_by IS NOT NULL", name="grant_has_granter"),
        Index("ix_member_achievements_template_id", "template_id"),
    )


Index(
    "ix_member_achievements_guild_id_earned_at",
    MemberAchievement.guild_id,
    MemberAchievement.earned_at.desc(),
)


# ==============================================================================================================
# §6.5 Platform
# ==============================================================================================================


class AuditLog(Base):
    """One row per admin mutation, written in the changing transaction (SPEC §22).

    Append-only is enforced by the DATABASE, not by convention: the triggers in `AUDIT_LOG_DDL` raise on
    UPDATE, DELETE (row level) and TRUNCATE (statement level), so neither an application bug nor an
    over-eager maintenance script can rewrite history.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = _serial_pk()
    guild_id: Mapped[int | None] = _snowflake(nullable=True)
    actor_id: Mapped[str] = _principal(nullable=False)
    actor_kind: Mapped[str] = mapped_column(Text, nullable=False)
    via: Mapped[str] = mapped_column(Text, nullable=False)
    action: Mapped[str] = mapped_column(String(48), nullable=False)
    target_type: Mapped[str] = mapped_column(String(32), nullable=False)
    target_id: Mapped[str | None] = mapped_column(String(100))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    reason: Mapped[str | None] = mapped_column(String(500))
    # The raw asyncpg driver returns ipaddress objects for INET unless the engine is created with
    # native_inet_types=False; writers may pass either a str or an ipaddress object.
    client_ip: Mapped[str | None] = mapped_column(INET)
    # X-Request-ID is `[A-Za-z0-9_-]{1,64}` (SPEC §18) or a generated UUID, hence 64.
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now()

    __table_args__ = (
        CheckConstraint(_one_of("actor_kind", ACTOR_KINDS), name="actor_kind_allowed"),
        CheckConstraint(_one_of("via", AUDIT_VIA), name="via_allowed"),
    )


Index("ix_audit_log_guild_id_created_at", AuditLog.guild_id, AuditLog.created_at.desc())
Index(
    "ix_audit_log_guild_id_actor_id_created_at",
    AuditLog.guild_id,
    AuditLog.actor_id,
    AuditLog.created_at.desc(),
)
Index(
    "ix_audit_log_guild_id_action_created_at",
    AuditLog.guild_id,
    AuditLog.action,
    AuditLog.created_at.desc(),
)
Index(
    "ix_audit_log_guild_id_target_type_target_id_created_at",
    AuditLog.guild_id,
    AuditLog.target_type,
    AuditLog.target_id,
    AuditLog.created_at.desc(),
)


class OAuthState(Base):
    """A single-use OAuth2 `state` (consumed atomically by DELETE ... RETURNING); pruned hourly once expired."""

    __tablename__ = "oauth_states"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    # A validated relative path; the spec sets no bound, so TEXT.
    next_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = _tstz(nullable=False)

    __table_args__ = (
        CheckConstraint("expires_at > created_at", name="expires_after_created"),
        Index("ix_oauth_states_expires_at", "expires_at"),
    )


class RevokedToken(Base):
    """A logged-out JWT id, kept until the token would have expired anyway (then pruned)."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    subject: Mapped[str] = _principal(nullable=False)
    revoked_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = _tstz(nullable=False)

    __table_args__ = (Index("ix_revoked_tokens_expires_at", "expires_at"),)


class IdempotencyKey(Base):
    """An `Idempotency-Key` of a write, reserved before its handler runs and then holding the first response
    (kept 24 h, SPEC §18).

    Keys are scoped by principal AND route (`route` = method and path), as §18 says. `status` NULL marks a
    reservation whose handler is still running (no response yet, `response` NULL too); concurrent duplicates wait
    on it. `request_hash` is a hex digest of method, path and body; 128 characters fits up to SHA-512.
    """

    __tablename__ = "idempotency_keys"

    principal: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(128), nullable=False)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response: Mapped[Any] = mapped_column(JSONB, nullable=True)
    created_at: Mapped[datetime] = _now()
    route: Mapped[str] = mapped_column(Text)  # added by 0005, hence last

    __table_args__ = (
        PrimaryKeyConstraint("principal", "route", "key"),
        CheckConstraint("key ~ '^[A-Za-z0-9_-]{8,64}$'", name="key_format"),
        CheckConstraint(_between("status", 100, 599), name="status_range"),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )


class AdminRateEvent(Base):
    """One accepted admin mutation, for the sliding-window limit shared by all processes (SPEC §21.4)."""

    __tablename__ = "admin_rate_events"

    id: Mapped[int] = _serial_pk()
    principal: Mapped[str] = _principal(nullable=False)
    occurred_at: Mapped[datetime] = _now()


Index(
    "ix_admin_rate_events_principal_occurred_at",
    AdminRateEvent.principal,
    AdminRateEvent.occurred_at.desc(),
)


class Job(Base):
    """A long-running maintenance task (SPEC §23.2), claimed with `FOR UPDATE SKIP LOCKED`.

    The partial unique index `uq_jobs_one_active` allows one queued-or-running job per (guild, kind), so a
    second request gets a unique violation the API turns into 409. `finished_at` is set exactly for terminal
    statuses. Column decisions the spec leaves open:

    - `job_id` defaults to `gen_random_uuid()` (built in since PostgreSQL 13), although writers usually pass
      the id they return in the 202.
    - `params` is JSONB NOT NULL DEFAULT '{}': every kind has parameters, possibly none, and "no params" must
      not be distinguishable from "{}".
    - `progress` is JSONB NOT NULL DEFAULT '{"done": 0, "total": 0}', the exact shape the API returns.
    - `rerun_requested` (not in the §6.5 table) implements SPEC §5.1: a settings write that needs a job of a
      kind already queued or running marks it "run once more after it ends" instead of failing.
    """

    __tablename__ = "jobs"

    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    guild_id: Mapped[int] = _snowflake()
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'queued'"))
    params: Mapped[dict[str, Any]] = _json_object()
    progress: Mapped[dict[str, Any]] = _json_object("""'{"done": 0, "total": 0}'::jsonb""")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    error: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = _principal(nullable=False)
    # `<hostname>:<pid>:<process start uuid>`; hostnames alone may be 253 characters, so TEXT.
    owner_instance: Mapped[str | None] = mapped_column(Text)
    heartbeat_at: Mapped[datetime | None] = _tstz(nullable=True)
    rerun_requested: Mapped[bool] = _flag(False)
    created_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = _tstz(nullable=True)
    finished_at: Mapped[datetime | None] = _tstz(nullable=True)

    __table_args__ = (
        CheckConstraint(_one_of("kind", JOB_KINDS), name="kind_allowed"),
        CheckConstraint(_one_of("status", JOB_STATUSES), name="status_allowed"),
        CheckConstraint(
            f"({_one_of('status', JOB_FINISHED_STATUSES)}) = (finished_at IS NOT NULL)",
            name="finished_at_matches_status",
        ),
        CheckConstraint(_is_object("params"), name="params_is_object"),
        CheckConstraint(_is_object("progress"), name="progress_is_object"),
        Index(
            "uq_jobs_one_active",
            "guild_id",
            "kind",
            unique=True,
            postgresql_where=text(_one_of("status", JOB_ACTIVE_STATUSES)),
        ),
    )


Index("ix_jobs_guild_id_created_at", Job.guild_id, Job.created_at.desc())


class JobPayload(Base):
    """A job's bulky input (e.g. an import document), kept apart so listing jobs never reads it; cascades with
    the job and is deleted when the job's status becomes final (trigger `jobs_drop_payload`, migration 0007)."""

    __tablename__ = "job_payloads"

    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True
    )
    body: Mapped[Any] = mapped_column(JSONB, nullable=False)


# ==============================================================================================================
# Triggers. The migrations that made them (0001, 0007, 0014) carry frozen copies of this SQL; these DDL hooks make
# `Base.metadata.create_all()` produce the same database, which `tests/test_schema.py` verifies.
# ==============================================================================================================

AUDIT_LOG_DDL: Final = (
    """
CREATE FUNCTION audit_log_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'insufficient_privilege',
        MESSAGE = 'audit_log is append-only: ' || TG_OP || ' is not allowed';
    RETURN NULL;
END
$$
""".strip(),
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log"
    " FOR EACH ROW EXECUTE FUNCTION audit_log_reject_change()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log"
    " FOR EACH STATEMENT EXECUTE FUNCTION audit_log_reject_change()",
)

TEMPLATE_SERIES_DDL: Final = (
    """
CREATE FUNCTION achievement_templates_clear_series_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.series_order := NULL;
    RETURN NEW;
END
$$
""".strip(),
    "CREATE TRIGGER achievement_templates_clear_series_order BEFORE UPDATE OF series_id"
    " ON achievement_templates FOR EACH ROW WHEN (NEW.series_id IS NULL)"
    " EXECUTE FUNCTION achievement_templates_clear_series_order()",
)


def _catalog_clear_ddl(table: str, column: str) -> tuple[str, str]:
    """A BEFORE DELETE trigger on a catalog table that clears `column` on the guild's templates pointing at the
    deleted row: the ON DELETE SET NULL the composite foreign key cannot have on PostgreSQL 14 (migration 0014)."""
    return (
        f"""
CREATE FUNCTION {table}_clear_templates() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE achievement_templates SET {column} = NULL WHERE guild_id = OLD.guild_id AND {column} = OLD.id;
    RETURN OLD;
END
$$
""".strip(),
        f"CREATE TRIGGER {table}_clear_templates BEFORE DELETE ON {table}"
        f" FOR EACH ROW EXECUTE FUNCTION {table}_clear_templates()",
    )


CATALOG_CLEAR_DDL: Final = {
    "achievement_categories": _catalog_clear_ddl("achievement_categories", "category_id"),
    "achievement_rarities": _catalog_clear_ddl("achievement_rarities", "rarity_id"),
    "achievement_series": _catalog_clear_ddl("achievement_series", "series_id"),
}


JOB_PAYLOAD_DDL: Final = (
    """
CREATE FUNCTION jobs_drop_payload() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_payloads WHERE job_id = NEW.job_id;
    RETURN NULL;
END
$$
""".strip(),
    "CREATE TRIGGER jobs_drop_payload AFTER UPDATE OF status ON jobs FOR EACH ROW"
    " WHEN (NEW.status IN ('succeeded', 'failed', 'cancelled')) EXECUTE FUNCTION jobs_drop_payload()",
)


# Migration 0011 holds a frozen copy. Statement-level, with transition tables: one aggregated upsert per statement
# (a batch of the pipeline is one UPDATE), its keys in order so concurrent statements lock nodes in the same order.
XP_RANK_COUNTS_DDL: Final = (
    """
CREATE FUNCTION members_xp_rank_counts() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    guild_ids bigint[] := '{}';
    xps bigint[] := '{}';
    signs integer[] := '{}';
    gone_guilds bigint[];
    gone_levels smallint[];
    gone_keys bigint[];
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM xp_rank_counts;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT guild_ids || array_agg(r.guild_id), xps || array_agg(r.xp), signs || array_agg(1)
          INTO guild_ids, xps, signs
          FROM new_rows r WHERE r.left_at IS NULL AND r.xp > 0;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT guild_ids || array_agg(r.guild_id), xps || array_agg(r.xp), signs || array_agg(-1)
          INTO guild_ids, xps, signs
          FROM old_rows r WHERE r.left_at IS NULL AND r.xp > 0;
    END IF;
    IF cardinality(guild_ids) = 0 THEN
        RETURN NULL;
    END IF;
    WITH delta AS (
        SELECT d.guild_id, l.level, d.xp >> (8 * l.level) AS key, sum(d.n) AS n
          FROM unnest(guild_ids, xps, signs) AS d(guild_id, xp, n) CROSS JOIN generate_series(0, 3) AS l(level)
         GROUP BY 1, 2, 3 HAVING sum(d.n) <> 0
    ), changed AS (
        INSERT INTO xp_rank_counts AS c (guild_id, level, key, members)
        SELECT delta.guild_id, delta.level, delta.key, delta.n FROM delta ORDER BY 1, 2, 3
        ON CONFLICT (guild_id, level, key) DO UPDATE SET members = c.members + excluded.members
        RETURNING c.guild_id, c.level, c.key, c.members
    )
    SELECT array_agg(changed.guild_id), array_agg(changed.level), array_agg(changed.key)
      INTO gone_guilds, gone_levels, gone_keys
      FROM changed WHERE changed.members = 0;
    IF gone_guilds IS NOT NULL THEN
        DELETE FROM xp_rank_counts c USING unnest(gone_guilds, gone_levels, gone_keys) AS z(guild_id, level, key)
         WHERE c.guild_id = z.guild_id AND c.level = z.level AND c.key = z.key AND c.members = 0;
    END IF;
    RETURN NULL;
END
$$
""".strip(),
    "CREATE TRIGGER members_xp_rank_counts_insert AFTER INSERT ON members REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION members_xp_rank_counts()",
    "CREATE TRIGGER members_xp_rank_counts_update AFTER UPDATE ON members"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION members_xp_rank_counts()",
    "CREATE TRIGGER members_xp_rank_counts_delete AFTER DELETE ON members REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION members_xp_rank_counts()",
    "CREATE TRIGGER members_xp_rank_counts_truncate AFTER TRUNCATE ON members"
    " FOR EACH STATEMENT EXECUTE FUNCTION members_xp_rank_counts()",
)


def _attach_ddl(table: Any, statements: Iterable[str], function: str) -> None:
    for statement in statements:
        event.listen(table, "after_create", DDL(statement))  # type: ignore[no-untyped-call]
    # Triggers go with their table; the function must be dropped explicitly.
    event.listen(
        table,
        "after_drop",
        DDL(f"DROP FUNCTION IF EXISTS {function}()"),  # type: ignore[no-untyped-call]
    )


# The migrations create `pg_trgm` (0001; its member-name index was dropped in 0003): the models keep it too, so a
# metadata-built database has the same extensions as a migrated one.
event.listen(
    Base.metadata,
    "before_create",
    DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm"),  # type: ignore[no-untyped-call]
)
_attach_ddl(AuditLog.__table__, AUDIT_LOG_DDL, "audit_log_reject_change")
_attach_ddl(AchievementTemplate.__table__, TEMPLATE_SERIES_DDL, "achievement_templates_clear_series_order")
# Migration 0014: deleting a category, rarity or series clears it on the guild's templates.
for _model in (AchievementCategory, AchievementRarity, AchievementSeries):
    _attach_ddl(_model.__table__, CATALOG_CLEAR_DDL[_model.__tablename__], f"{_model.__tablename__}_clear_templates")
_attach_ddl(Job.__table__, JOB_PAYLOAD_DDL, "jobs_drop_payload")  # migration 0007: a payload ends with its job
# The XP rank counts' triggers are on `members` but write `xp_rank_counts`: created once both tables exist.
for _statement in XP_RANK_COUNTS_DDL:
    event.listen(Base.metadata, "after_create", DDL(_statement))  # type: ignore[no-untyped-call]
event.listen(
    Base.metadata,
    "after_drop",
    DDL("DROP FUNCTION IF EXISTS members_xp_rank_counts()"),  # type: ignore[no-untyped-call]
)
