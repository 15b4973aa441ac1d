"""Initial schema: every table of SPEC §6, the pg_trgm extension and the database-side guards.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-29 18:30:00+00:00

This revision is frozen in time: it never imports `synapse_async.db.models`. Value lists and trigger SQL are
copied here on purpose, so later edits to the models cannot change what this revision creates; schema changes
are new revisions. `tests/test_schema.py` proves that the models and the database built here agree.

Besides tables, constraints and indexes it creates:

- the `pg_trgm` extension (trusted since PostgreSQL 13, so the database owner may create it), first, because the
  member-name search index uses `gin_trgm_ops`;
- `audit_log_reject_change()`, fired BEFORE UPDATE OR DELETE (per row) and BEFORE TRUNCATE (per statement) on
  `audit_log`, which makes the audit log append-only at the database level (SPEC §22);
- `achievement_templates_clear_series_order()`, fired when `series_id` becomes NULL (including the ON DELETE SET
  NULL of a deleted series), so the CHECK "series_order iff series_id" never blocks deleting a series.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ---- Frozen vocabulary (as of this revision) -------------------------------------------------------------------

REWARD_KINDS = ("message", "reaction_given", "reaction_received", "thread_create", "voice_tick")
JOURNAL_EVENT_TYPES = (*REWARD_KINDS, "manual_award", "achievement", "level_change", "import", "revoke")
ZERO_REASONS = (
    "cooldown",
    "too_short",
    "no_xp",
    "self",
    "bot_target",
    "unknown_target",
    "pair_cap",
    "reactor_cap",
    "hourly_cap",
)
GOLD_REASONS = ("level_up", "achievement", "manual_award", "purchase", "import", "revoke")
LAKE_EVENT_TYPES = (
    "message_create",
    "message_delete",
    "reaction_add",
    "reaction_remove",
    "thread_create",
    "voice_join",
    "voice_leave",
    "voice_move",
    "member_join",
    "member_leave",
)
CHANNEL_TYPES = ("text", "announcement", "forum", "media", "voice", "stage", "category")
MULTIPLIER_CHANNEL_TYPES = ("text", "announcement", "forum", "media", "voice", "stage")
MULTIPLIER_EVENT_TYPES = (*REWARD_KINDS, "*")
TRIGGER_TYPES = ("stat_threshold", "xp_milestone", "level_reached", "star_threshold", "event_count", "manual")
JOB_KINDS = ("retention", "reconciliation", "backfill", "import", "level_role_sync", "relevel")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")

AUDIT_LOG_FUNCTION = """
CREATE FUNCTION audit_log_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'insufficient_privilege',
        MESSAGE = 'audit_log is append-only: ' || TG_OP || ' is not allowed';
    RETURN NULL;
END
$$
""".strip()
AUDIT_LOG_ROW_TRIGGER = (
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log"
    " FOR EACH ROW EXECUTE FUNCTION audit_log_reject_change()"
)
AUDIT_LOG_TRUNCATE_TRIGGER = (
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log"
    " FOR EACH STATEMENT EXECUTE FUNCTION audit_log_reject_change()"
)
SERIES_ORDER_FUNCTION = """
CREATE FUNCTION achievement_templates_clear_series_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.series_order := NULL;
    RETURN NEW;
END
$$
""".strip()
SERIES_ORDER_TRIGGER = (
    "CREATE TRIGGER achievement_templates_clear_series_order BEFORE UPDATE OF series_id"
    " ON achievement_templates FOR EACH ROW WHEN (NEW.series_id IS NULL)"
    " EXECUTE FUNCTION achievement_templates_clear_series_order()"
)

# ---- Column and constraint builders (local copies; see the module docstring) -----------------------------------


def _snowflake(name: str, *, nullable: bool = False) -> sa.Column[int]:
    # autoincrement=False: a lone BIGINT primary key (guilds.guild_id) must not become BIGSERIAL.
    return sa.Column(name, sa.BigInteger(), autoincrement=False, nullable=nullable)


def _serial_id(name: str = "id") -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), autoincrement=True, nullable=False)


def _counter(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False)


def _integer(name: str, *, default: int | None = None, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(
        name,
        sa.Integer(),
        server_default=sa.text(str(default)) if default is not None else None,
        nullable=nullable,
    )


def _flag(name: str, default: bool) -> sa.Column[bool]:
    return sa.Column(name, sa.Boolean(), server_default=sa.text("true" if default else "false"), nullable=False)


def _text(name: str, *, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _varchar(name: str, length: int, *, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def _multiplier(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Numeric(precision=6, scale=3), nullable=False)


def _tstz(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _now(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)


def _jsonb(name: str, *, default: str | None = None, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(
        name,
        postgresql.JSONB(astext_type=sa.Text()),
        server_default=sa.text(default) if default is not None else None,
        nullable=nullable,
    )


def _quoted(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _check(table: str, name: str, sql: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(sql, name=op.f(f"ck_{table}_{name}"))


def _one_of(table: str, column: str, values: Iterable[str], name: str | None = None) -> sa.CheckConstraint:
    return _check(table, name or f"{column}_allowed", f"{column} IN ({_quoted(values)})")


def _range(table: str, column: str, low: int | str, high: int | str, name: str | None = None) -> sa.CheckConstraint:
    return _check(table, name or f"{column}_range", f"{column} >= {low} AND {column} <= {high}")


def _is_object(table: str, column: str) -> sa.CheckConstraint:
    return _check(table, f"{column}_is_object", f"jsonb_typeof({column}) = 'object'")


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*columns, name=op.f(f"pk_{table}"))


def _unique(table: str, *columns: str) -> sa.UniqueConstraint:
    return sa.UniqueConstraint(*columns, name=op.f(f"uq_{table}_{'_'.join(columns)}"))


def _index(name: str, table: str, columns: list[str], *, unique: bool = False, where: str | None = None) -> None:
    """Create an index; a column written as `"xp DESC"` becomes a descending key."""
    op.create_index(
        op.f(name),
        table,
        [sa.text(c) if " " in c else c for c in columns],
        unique=unique,
        postgresql_where=sa.text(where) if where is not None else None,
    )


# ---- upgrade ---------------------------------------------------------------------------------------------------


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    _guild_structure()
    _members_and_seasons()
    _journal_ledger_lake()
    _achievements()
    _platform()


def _guild_structure() -> None:
    """SPEC §6.1."""
    op.create_table(
        "guilds",
        _snowflake("guild_id"),
        _text("name"),
        _snowflake("owner_id"),
        _snowflake("afk_channel_id", nullable=True),
        _text("icon_hash", nullable=True),
        _now("joined_at"),
        _tstz("left_at", nullable=True),
        _tstz("defaults_seeded_at", nullable=True),
        _now("updated_at"),
        _pk("guilds", "guild_id"),
    )
    op.create_table(
        "guild_channels",
        _snowflake("guild_id"),
        _snowflake("channel_id"),
        _text("name"),
        _text("type"),
        _snowflake("parent_id", nullable=True),
        _integer("position", default=0),
        _tstz("deleted_at", nullable=True),
        _now("synced_at"),
        _pk("guild_channels", "guild_id", "channel_id"),
        _one_of("guild_channels", "type", CHANNEL_TYPES),
    )
    _index("ix_guild_channels_guild_id_parent_id", "guild_channels", ["guild_id", "parent_id"])
    op.create_table(
        "guild_roles",
        _snowflake("guild_id"),
        _snowflake("role_id"),
        _text("name"),
        _integer("position", default=0),
        sa.Column("permissions", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        _flag("managed", False),
        _tstz("deleted_at", nullable=True),
        _now("synced_at"),
        _pk("guild_roles", "guild_id", "role_id"),
    )
    op.create_table(
        "settings",
        _snowflake("guild_id"),
        _text("key"),
        _jsonb("value"),
        _now("updated_at"),
        _varchar("updated_by", 40, nullable=True),
        _pk("settings", "guild_id", "key"),
    )
    op.create_table(
        "channel_type_defaults",
        _snowflake("guild_id"),
        _text("channel_type"),
        _text("event_type"),
        _multiplier("xp_multiplier"),
        _multiplier("star_multiplier"),
        _now("updated_at"),
        _pk("channel_type_defaults", "guild_id", "channel_type", "event_type"),
        _one_of("channel_type_defaults", "channel_type", MULTIPLIER_CHANNEL_TYPES),
        _one_of("channel_type_defaults", "event_type", MULTIPLIER_EVENT_TYPES),
        _range("channel_type_defaults", "xp_multiplier", 0, 10),
        _range("channel_type_defaults", "star_multiplier", 0, 10),
    )
    op.create_table(
        "channel_overrides",
        _snowflake("guild_id"),
        _snowflake("channel_id"),
        _text("event_type"),
        _multiplier("xp_multiplier"),
        _multiplier("star_multiplier"),
        _varchar("reason", 200, nullable=True),
        _now("updated_at"),
        _pk("channel_overrides", "guild_id", "channel_id", "event_type"),
        _one_of("channel_overrides", "event_type", MULTIPLIER_EVENT_TYPES),
        _range("channel_overrides", "xp_multiplier", 0, 10),
        _range("channel_overrides", "star_multiplier", 0, 10),
    )
    op.create_table(
        "role_multipliers",
        _snowflake("guild_id"),
        _snowflake("role_id"),
        _multiplier("xp_multiplier"),
        _multiplier("star_multiplier"),
        _now("updated_at"),
        _pk("role_multipliers", "guild_id", "role_id"),
        _range("role_multipliers", "xp_multiplier", 0, 10),
        _range("role_multipliers", "star_multiplier", 0, 10),
    )
    op.create_table(
        "no_xp_targets",
        _snowflake("guild_id"),
        _text("target_type"),
        _snowflake("target_id"),
        _text("reason", nullable=True),
        _now("created_at"),
        _pk("no_xp_targets", "guild_id", "target_type", "target_id"),
        _one_of("no_xp_targets", "target_type", ("channel", "role")),
    )
    op.create_table(
        "level_role_rewards",
        _snowflake("guild_id"),
        _snowflake("role_id"),
        _integer("level"),
        _now("created_at"),
        _pk("level_role_rewards", "guild_id", "role_id"),
        _range("level_role_rewards", "level", 1, 1000),
    )
    _index("ix_level_role_rewards_guild_id_level", "level_role_rewards", ["guild_id", "level"])


def _members_and_seasons() -> None:
    """SPEC §6.2."""
    op.create_table(
        "members",
        _snowflake("guild_id"),
        _snowflake("user_id"),
        _varchar("display_name", 100),
        _text("avatar_hash", nullable=True),
        _counter("xp"),
        _integer("level", default=1),
        _integer("peak_level", default=1),
        _counter("gold"),
        _counter("lifetime_stars"),
        _counter("messages_sent"),
        _counter("reactions_given"),
        _counter("reactions_received"),
        _counter("threads_created"),
        _counter("voice_minutes"),
        _varchar("github_username", 39, nullable=True),
        _tstz("joined_at", nullable=True),
        _tstz("left_at", nullable=True),
        _tstz("last_active_at", nullable=True),
        _now("created_at"),
        _now("updated_at"),
        _pk("members", "guild_id", "user_id"),
        _check("members", "xp_non_negative", "xp >= 0"),
        _check("members", "gold_non_negative", "gold >= 0"),
        _check("members", "lifetime_stars_non_negative", "lifetime_stars >= 0"),
        _range("members", "level", 1, 1000),
        _range("members", "peak_level", "level", 1000),
        _check(
            "members",
            "stats_non_negative",
            "messages_sent >= 0 AND reactions_given >= 0 AND reactions_received >= 0"
            " AND threads_created >= 0 AND voice_minutes >= 0",
        ),
        _check("members", "github_username_format", "github_username ~ '^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$'"),
    )
    _index("ix_members_guild_id_xp", "members", ["guild_id", "xp DESC", "user_id"])
    _index("ix_members_guild_id_gold", "members", ["guild_id", "gold DESC", "user_id"])
    _index("ix_members_guild_id_lifetime_stars", "members", ["guild_id", "lifetime_stars DESC", "user_id"])
    _index("ix_members_guild_id_last_active_at", "members", ["guild_id", "last_active_at"])
    op.create_index(
        op.f("ix_members_display_name_trgm"),
        "members",
        ["display_name"],
        postgresql_using="gin",
        postgresql_ops={"display_name": "gin_trgm_ops"},
    )

    op.create_table(
        "member_preferences",
        _snowflake("guild_id"),
        _snowflake("user_id"),
        _flag("announce_level_up", True),
        _flag("announce_achievements", True),
        _flag("announce_awards", True),
        _now("updated_at"),
        _pk("member_preferences", "guild_id", "user_id"),
        sa.ForeignKeyConstraint(
            ["guild_id", "user_id"],
            ["members.guild_id", "members.user_id"],
            name=op.f("fk_member_preferences_guild_id_members"),
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "seasons",
        _serial_id("season_id"),
        _snowflake("guild_id"),
        _varchar("name", 100),
        _tstz("starts_at", nullable=False),
        _tstz("ends_at", nullable=False),
        _text("status"),
        _tstz("ended_at", nullable=True),
        _varchar("created_by", 40, nullable=True),
        _now("created_at"),
        _pk("seasons", "season_id"),
        _unique("seasons", "guild_id", "name"),
        _one_of("seasons", "status", ("active", "ended")),
        _check("seasons", "ends_after_start", "ends_at > starts_at"),
        _check("seasons", "ended_at_matches_status", "(status = 'ended') = (ended_at IS NOT NULL)"),
    )
    _index("uq_seasons_one_active", "seasons", ["guild_id"], unique=True, where="status = 'active'")
    _index("ix_seasons_guild_id_starts_at", "seasons", ["guild_id", "starts_at DESC"])

    op.create_table(
        "season_stats",
        _snowflake("season_id"),
        _snowflake("user_id"),
        _snowflake("guild_id"),
        _counter("stars"),
        _counter("xp"),
        _counter("gold_earned"),
        _counter("messages_sent"),
        _counter("reactions_given"),
        _counter("reactions_received"),
        _counter("threads_created"),
        _counter("voice_minutes"),
        _pk("season_stats", "season_id", "user_id"),
        sa.ForeignKeyConstraint(
            ["season_id"],
            ["seasons.season_id"],
            name=op.f("fk_season_stats_season_id_seasons"),
            ondelete="RESTRICT",
        ),
        _check(
            "season_stats",
            "values_non_negative",
            "stars >= 0 AND xp >= 0 AND gold_earned >= 0 AND messages_sent >= 0 AND reactions_given >= 0"
            " AND reactions_received >= 0 AND threads_created >= 0 AND voice_minutes >= 0",
        ),
    )
    _index("ix_season_stats_season_id_stars", "season_stats", ["season_id", "stars DESC", "user_id"])
    _index("ix_season_stats_season_id_xp", "season_stats", ["season_id", "xp DESC", "user_id"])
    _index("ix_season_stats_season_id_gold_earned", "season_stats", ["season_id", "gold_earned DESC", "user_id"])


def _journal_ledger_lake() -> None:
    """SPEC §6.3."""
    op.create_table(
        "reward_journal",
        _serial_id(),
        _snowflake("guild_id"),
        _snowflake("user_id"),
        _text("event_type"),
        _varchar("idempotency_key", 160),
        sa.Column("season_id", sa.BigInteger(), nullable=True),
        _snowflake("channel_id", nullable=True),
        _snowflake("counterpart_id", nullable=True),
        _snowflake("ref_id", nullable=True),
        sa.Column("xp_delta", sa.BigInteger(), nullable=False),
        sa.Column("star_delta", sa.BigInteger(), nullable=False),
        _text("zero_reason", nullable=True),
        _varchar("actor_id", 40, nullable=True),
        _jsonb("details", default="'{}'::jsonb"),
        _tstz("occurred_at", nullable=False),
        _now("recorded_at"),
        _pk("reward_journal", "id"),
        _unique("reward_journal", "guild_id", "idempotency_key"),
        _one_of("reward_journal", "event_type", JOURNAL_EVENT_TYPES),
        _check(
            "reward_journal",
            "zero_reason_pays_nothing",
            f"zero_reason IS NULL OR (zero_reason IN ({_quoted(ZERO_REASONS)}) AND xp_delta = 0 AND star_delta = 0)",
        ),
        _check(
            "reward_journal",
            "event_rewards_non_negative",
            f"NOT (event_type IN ({_quoted(REWARD_KINDS)})) OR (xp_delta >= 0 AND star_delta >= 0)",
        ),
        _is_object("reward_journal", "details"),
    )
    _index(
        "ix_reward_journal_guild_id_user_id_occurred_at",
        "reward_journal",
        ["guild_id", "user_id", "occurred_at DESC"],
    )
    _index("ix_reward_journal_guild_id_occurred_at", "reward_journal", ["guild_id", "occurred_at DESC"])
    _index(
        "ix_reward_journal_counterpart",
        "reward_journal",
        ["guild_id", "user_id", "counterpart_id", "event_type", "occurred_at"],
        where="counterpart_id IS NOT NULL",
    )
    _index(
        "ix_reward_journal_ref_id",
        "reward_journal",
        ["guild_id", "ref_id", "event_type"],
        where="ref_id IS NOT NULL",
    )

    op.create_table(
        "gold_ledger",
        _serial_id(),
        _snowflake("guild_id"),
        _snowflake("user_id"),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        _text("reason"),
        sa.Column("journal_id", sa.BigInteger(), nullable=True),
        _varchar("actor_id", 40, nullable=True),
        _varchar("idempotency_key", 160),
        _varchar("note", 200, nullable=True),
        _now("created_at"),
        _pk("gold_ledger", "id"),
        _unique("gold_ledger", "guild_id", "idempotency_key"),
        _check("gold_ledger", "delta_non_zero", "delta <> 0"),
        _check("gold_ledger", "balance_after_non_negative", "balance_after >= 0"),
        _one_of("gold_ledger", "reason", GOLD_REASONS),
        _check(
            "gold_ledger",
            "delta_sign_matches_reason",
            "(reason NOT IN ('level_up', 'achievement') OR delta > 0)"
            " AND (reason NOT IN ('purchase', 'revoke') OR delta < 0)",
        ),
    )
    _index(
        "ix_gold_ledger_guild_id_user_id_created_at",
        "gold_ledger",
        ["guild_id", "user_id", "created_at DESC"],
    )

    op.create_table(
        "event_lake",
        _serial_id(),
        _snowflake("guild_id"),
        _snowflake("user_id", nullable=True),
        _text("event_type"),
        _snowflake("channel_id", nullable=True),
        _snowflake("target_id", nullable=True),
        _varchar("source_key", 160),
        _jsonb("payload", default="'{}'::jsonb"),
        _tstz("occurred_at", nullable=False),
        _now("recorded_at"),
        _pk("event_lake", "id"),
        _unique("event_lake", "guild_id", "source_key"),
        _one_of("event_lake", "event_type", LAKE_EVENT_TYPES),
        _is_object("event_lake", "payload"),
    )
    _index("ix_event_lake_guild_id_occurred_at", "event_lake", ["guild_id", "occurred_at DESC"])
    _index(
        "ix_event_lake_guild_id_user_id_occurred_at",
        "event_lake",
        ["guild_id", "user_id", "occurred_at DESC"],
    )
    _index(
        "ix_event_lake_guild_id_event_type_occurred_at",
        "event_lake",
        ["guild_id", "event_type", "occurred_at DESC"],
    )
    _index(
        "ix_event_lake_guild_id_channel_id_occurred_at",
        "event_lake",
        ["guild_id", "channel_id", "occurred_at DESC"],
        where="channel_id IS NOT NULL",
    )

    op.create_table(
        "event_counters",
        _snowflake("guild_id"),
        _snowflake("user_id"),
        _text("event_type"),
        _varchar("period", 32),
        _counter("count"),
        _now("updated_at"),
        _pk("event_counters", "guild_id", "user_id", "event_type", "period"),
        _check("event_counters", "count_non_negative", "count >= 0"),
        _one_of("event_counters", "event_type", LAKE_EVENT_TYPES),
        _check(
            "event_counters",
            "period_format",
            "period = 'lifetime' OR period ~ '^season:[0-9]+$' OR period ~ '^day:[0-9]{4}-[0-9]{2}-[0-9]{2}$'",
        ),
    )
    _index("ix_event_counters_guild_id_period", "event_counters", ["guild_id", "period"])


def _achievements() -> None:
    """SPEC §6.4."""
    op.create_table(
        "achievement_categories",
        _serial_id(),
        _snowflake("guild_id"),
        _varchar("name", 50),
        _varchar("icon", 64, nullable=True),
        _integer("sort_order", default=0),
        _pk("achievement_categories", "id"),
        _unique("achievement_categories", "guild_id", "name"),
    )
    op.create_table(
        "achievement_rarities",
        _serial_id(),
        _snowflake("guild_id"),
        _varchar("name", 50),
        _varchar("color", 7),
        _varchar("emoji", 64, nullable=True),
        _integer("sort_order", default=0),
        _pk("achievement_rarities", "id"),
        _unique("achievement_rarities", "guild_id", "name"),
        _check("achievement_rarities", "color_format", "color ~ '^#[0-9A-Fa-f]{6}$'"),
    )
    op.create_table(
        "achievement_series",
        _serial_id(),
        _snowflake("guild_id"),
        _varchar("name", 100),
        _varchar("description", 500, nullable=True),
        _pk("achievement_series", "id"),
        _unique("achievement_series", "guild_id", "name"),
    )
    op.create_table(
        "achievement_templates",
        _serial_id(),
        _snowflake("guild_id"),
        _varchar("name", 100),
        _varchar("description", 500, nullable=True),
        sa.Column("category_id", sa.BigInteger(), nullable=True),
        sa.Column("rarity_id", sa.BigInteger(), nullable=True),
        sa.Column("series_id", sa.BigInteger(), nullable=True),
        _integer("series_order", nullable=True),
        _text("trigger_type"),
        _jsonb("trigger_config", default="'{}'::jsonb"),
        _counter("xp_reward"),
        _counter("gold_reward"),
        _varchar("badge_image_url", 500, nullable=True),
        _snowflake("announce_channel_id", nullable=True),
        _flag("is_hidden", False),
        sa.Column("max_earners", sa.BigInteger(), nullable=True),
        _counter("earned_count"),
        _flag("active", True),
        _now("created_at"),
        _now("updated_at"),
        _pk("achievement_templates", "id"),
        _unique("achievement_templates", "guild_id", "name"),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["achievement_categories.id"],
            name=op.f("fk_achievement_templates_category_id_achievement_categories"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["rarity_id"],
            ["achievement_rarities.id"],
            name=op.f("fk_achievement_templates_rarity_id_achievement_rarities"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["achievement_series.id"],
            name=op.f("fk_achievement_templates_series_id_achievement_series"),
            ondelete="SET NULL",
        ),
        _check("achievement_templates", "series_order_positive", "series_order >= 1"),
        _check("achievement_templates", "series_order_iff_series", "(series_id IS NULL) = (series_order IS NULL)"),
        _one_of("achievement_templates", "trigger_type", TRIGGER_TYPES),
        _is_object("achievement_templates", "trigger_config"),
        _range("achievement_templates", "xp_reward", 0, 1000000),
        _range("achievement_templates", "gold_reward", 0, 1000000),
        _check("achievement_templates", "badge_image_url_https", "badge_image_url ~* '^https://'"),
        _check("achievement_templates", "max_earners_positive", "max_earners >= 1"),
        _check("achievement_templates", "earned_count_non_negative", "earned_count >= 0"),
        _check(
            "achievement_templates",
            "max_earners_not_exceeded",
            "max_earners IS NULL OR earned_count <= max_earners",
        ),
    )
    _index(
        "uq_achievement_templates_series_id_series_order",
        "achievement_templates",
        ["series_id", "series_order"],
        unique=True,
        where="series_id IS NOT NULL",
    )
    _index("ix_achievement_templates_guild_id_active", "achievement_templates", ["guild_id", "active"])
    op.execute(SERIES_ORDER_FUNCTION)
    op.execute(SERIES_ORDER_TRIGGER)

    op.create_table(
        "member_achievements",
        _snowflake("guild_id"),
        _snowflake("user_id"),
        _snowflake("template_id"),
        _now("earned_at"),
        _text("source"),
        _varchar("granted_by", 40, nullable=True),
        sa.Column("journal_id", sa.BigInteger(), nullable=True),
        _pk("member_achievements", "guild_id", "user_id", "template_id"),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["achievement_templates.id"],
            name=op.f("fk_member_achievements_template_id_achievement_templates"),
            ondelete="RESTRICT",
        ),
        _one_of("member_achievements", "source", ("auto", "grant", "import")),
        _check("member_achievements", "grant_has_granter", "source <> 'grant' OR granted_by IS NOT NULL"),
    )
    _index("ix_member_achievements_guild_id_earned_at", "member_achievements", ["guild_id", "earned_at DESC"])
    _index("ix_member_achievements_template_id", "member_achievements", ["template_id"])


def _platform() -> None:
    """SPEC §6.5."""
    op.create_table(
        "audit_log",
        _serial_id(),
        _snowflake("guild_id", nullable=True),
        _varchar("actor_id", 40),
        _text("actor_kind"),
        _text("via"),
        _varchar("action", 48),
        _varchar("target_type", 32),
        _varchar("target_id", 100, nullable=True),
        _jsonb("before", nullable=True),
        _jsonb("after", nullable=True),
        _varchar("reason", 500, nullable=True),
        sa.Column("client_ip", postgresql.INET(), nullable=True),
        _varchar("request_id", 64, nullable=True),
        _now("created_at"),
        _pk("audit_log", "id"),
        _one_of("audit_log", "actor_kind", ("user", "service", "system")),
        _one_of("audit_log", "via", ("api", "command", "cli", "system")),
    )
    _index("ix_audit_log_guild_id_created_at", "audit_log", ["guild_id", "created_at DESC"])
    _index("ix_audit_log_guild_id_actor_id_created_at", "audit_log", ["guild_id", "actor_id", "created_at DESC"])
    _index("ix_audit_log_guild_id_action_created_at", "audit_log", ["guild_id", "action", "created_at DESC"])
    _index(
        "ix_audit_log_guild_id_target_type_target_id_created_at",
        "audit_log",
        ["guild_id", "target_type", "target_id", "created_at DESC"],
    )
    op.execute(AUDIT_LOG_FUNCTION)
    op.execute(AUDIT_LOG_ROW_TRIGGER)
    op.execute(AUDIT_LOG_TRUNCATE_TRIGGER)

    op.create_table(
        "oauth_states",
        _varchar("state", 64),
        _text("next_url", nullable=True),
        _now("created_at"),
        _tstz("expires_at", nullable=False),
        _pk("oauth_states", "state"),
        _check("oauth_states", "expires_after_created", "expires_at > created_at"),
    )
    _index("ix_oauth_states_expires_at", "oauth_states", ["expires_at"])

    op.create_table(
        "revoked_tokens",
        sa.Column("jti", postgresql.UUID(as_uuid=True), nullable=False),
        _varchar("subject", 40),
        _now("revoked_at"),
        _tstz("expires_at", nullable=False),
        _pk("revoked_tokens", "jti"),
    )
    _index("ix_revoked_tokens_expires_at", "revoked_tokens", ["expires_at"])

    op.create_table(
        "idempotency_keys",
        _varchar("principal", 40),
        _varchar("key", 64),
        _varchar("request_hash", 128),
        _integer("status"),
        _jsonb("response"),
        _now("created_at"),
        _pk("idempotency_keys", "principal", "key"),
        _check("idempotency_keys", "key_format", "key ~ '^[A-Za-z0-9_-]{8,64}$'"),
        _range("idempotency_keys", "status", 100, 599),
    )
    _index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])

    op.create_table(
        "admin_rate_events",
        _serial_id(),
        _varchar("principal", 40),
        _now("occurred_at"),
        _pk("admin_rate_events", "id"),
    )
    _index("ix_admin_rate_events_principal_occurred_at", "admin_rate_events", ["principal", "occurred_at DESC"])

    op.create_table(
        "jobs",
        sa.Column(
            "job_id",
            postgresql.UUID(as_uuid=True),
            server_default=sa.text("gen_random_uuid()"),
            nullable=False,
        ),
        _snowflake("guild_id"),
        _text("kind"),
        sa.Column("status", sa.Text(), server_default=sa.text("'queued'"), nullable=False),
        _jsonb("params", default="'{}'::jsonb"),
        _jsonb("progress", default="""'{"done": 0, "total": 0}'::jsonb"""),
        _jsonb("result", nullable=True),
        _text("error", nullable=True),
        _varchar("requested_by", 40),
        _text("owner_instance", nullable=True),
        _tstz("heartbeat_at", nullable=True),
        _flag("rerun_requested", False),
        _now("created_at"),
        _tstz("started_at", nullable=True),
        _tstz("finished_at", nullable=True),
        _pk("jobs", "job_id"),
        _one_of("jobs", "kind", JOB_KINDS),
        _one_of("jobs", "status", JOB_STATUSES),
        _check(
            "jobs",
            "finished_at_matches_status",
            "(status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)",
        ),
        _is_object("jobs", "params"),
        _is_object("jobs", "progress"),
    )
    _index(
        "uq_jobs_one_active",
        "jobs",
        ["guild_id", "kind"],
        unique=True,
        where="status IN ('queued', 'running')",
    )
    _index("ix_jobs_guild_id_created_at", "jobs", ["guild_id", "created_at DESC"])

    op.create_table(
        "job_payloads",
        sa.Column("job_id", postgresql.UUID(as_uuid=True), nullable=False),
        _jsonb("body"),
        _pk("job_payloads", "job_id"),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.job_id"],
            name=op.f("fk_job_payloads_job_id_jobs"),
            ondelete="CASCADE",
        ),
    )


# ---- downgrade -------------------------------------------------------------------------------------------------

# Children before parents; indexes, constraints and triggers go with their tables.
_TABLES_IN_DROP_ORDER = (
    "job_payloads",
    "jobs",
    "admin_rate_events",
    "idempotency_keys",
    "revoked_tokens",
    "oauth_states",
    "audit_log",
    "member_achievements",
    "achievement_templates",
    "achievement_series",
    "achievement_rarities",
    "achievement_categories",
    "event_counters",
    "event_lake",
    "gold_ledger",
    "reward_journal",
    "season_stats",
    "seasons",
    "member_preferences",
    "members",
    "level_role_rewards",
    "no_xp_targets",
    "role_multipliers",
    "channel_overrides",
    "channel_type_defaults",
    "settings",
    "guild_roles",
    "guild_channels",
    "guilds",
)


def downgrade() -> None:
    for table in _TABLES_IN_DROP_ORDER:
        op.drop_table(table)
    op.execute("DROP FUNCTION IF EXISTS audit_log_reject_change()")
    op.execute("DROP FUNCTION IF EXISTS achievement_templates_clear_series_order()")
    # Created with IF NOT EXISTS above, so it may predate this schema; dropping it fails loudly (instead of
    # cascading) if anything else in the database still uses it.
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")
