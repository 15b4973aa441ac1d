"""Keys start with guild_id, so every guild-owned table can be distributed by guild_id (issue 27, docs/scale.md).

Revision ID: 0010_guild_keys
Revises: 0009_partitioned_lake
Create Date: 2026-12-06 21:20:00+00:00

- `seasons`, `reward_journal`, `gold_ledger`, `achievement_templates`: the primary key becomes (guild_id, id); the
  id stays a BIGSERIAL, so it is still unique on its own and nothing that reads it changes.
- `season_stats`: primary key (guild_id, season_id, user_id), and its foreign key to seasons pairs guild_id too.
- `member_achievements`: the foreign key to its template pairs guild_id too (ON DELETE RESTRICT as before).
- The series-order unique index of templates starts with guild_id.

A composite foreign key also proves what the API checked alone so far: a season's stats and an earned badge belong
to the same guild as their season and template. What is left (the achievement catalog tables, whose ON DELETE SET
NULL foreign keys cannot be made composite on PostgreSQL 14, and the event lake) is listed in
`tools/check_distributable.py`. Frozen in time like 0001: no import of the models.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010_guild_keys"
down_revision: str | Sequence[str] | None = "0009_partitioned_lake"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SERIES_WHERE = "series_id IS NOT NULL"


def _rekey(table: str, columns: list[str]) -> None:
    op.drop_constraint(f"pk_{table}", table, type_="primary")
    op.create_primary_key(f"pk_{table}", table, columns)


def upgrade() -> None:
    op.drop_constraint("fk_season_stats_season_id_seasons", "season_stats", type_="foreignkey")
    op.drop_constraint(
        "fk_member_achievements_template_id_achievement_templates", "member_achievements", type_="foreignkey"
    )
    _rekey("seasons", ["guild_id", "season_id"])
    _rekey("season_stats", ["guild_id", "season_id", "user_id"])
    _rekey("reward_journal", ["guild_id", "id"])
    _rekey("gold_ledger", ["guild_id", "id"])
    _rekey("achievement_templates", ["guild_id", "id"])
    op.create_foreign_key(
        "fk_season_stats_guild_id_seasons",
        "season_stats",
        "seasons",
        ["guild_id", "season_id"],
        ["guild_id", "season_id"],
        ondelete="RESTRICT",
    )
    op.create_foreign_key(
        "fk_member_achievements_guild_id_achievement_templates",
        "member_achievements",
        "achievement_templates",
        ["guild_id", "template_id"],
        ["guild_id", "id"],
        ondelete="RESTRICT",
    )
    op.drop_index("uq_achievement_templates_series_id_series_order", table_name="achievement_templates")
    op.create_index(
        "uq_achievement_templates_guild_id_series_id_series_order",
        "achievement_templates",
        ["guild_id", "series_id", "series_order"],
        unique=True,
        postgresql_where=_SERIES_WHERE,
    )


def downgrade() -> None:
    op.drop_index("uq_achievement_templates_guild_id_series_id_series_order", table_name="achievement_templates")
    op.create_index(
        "uq_achievement_templates_series_id_series_order",
        "achievement_templates",
        ["series_id", "series_order"],
        unique=True,
        postgresql_where=_SERIES_WHERE,
    )
    op.drop_constraint("fk_member_achievements_guild_id_achievement_templates", "member_achievements", "foreignkey")
    op.drop_constraint("fk_season_stats_guild_id_seasons", "season_stats", type_="foreignkey")
    _rekey("achievement_templates", ["id"])
    _rekey("gold_ledger", ["id"])
    _rekey("reward_journal", ["id"])
    _rekey("season_stats", ["season_id", "user_id"])
    _rekey("seasons", ["season_id"])
    op.create_foreign_key(
        "fk_member_achievements_template_id_achievement_templates",
        "member_achievements",
        "achievement_templates",
        ["template_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    op.create_foreign_key(
        "fk_season_stats_season_id_seasons",
        "season_stats",
        "seasons",
        ["season_id"],
        ["season_id"],
        ondelete="RESTRICT",
    )
