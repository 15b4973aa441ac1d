"""The achievement catalog becomes guild-first, so no table is left out of distribution by guild_id (issue 27,
docs/scale.md); with the event lake's key (migration 0012) `tools/check_distributable.py` has no known exceptions.

Revision ID: 0014_catalog_guild_keys
Revises: 0012_lean_hot_path
Create Date: 2026-12-06 22:50:00+00:00

- `achievement_categories`, `achievement_rarities`, `achievement_series`: the primary key becomes (guild_id, id);
  the id stays a BIGSERIAL, unique on its own, so nothing that reads it changes.
- `achievement_templates`: its three references become composite, (guild_id, category_id) → (guild_id, id) and so
  on, so the database itself refuses a template pointing at another guild's category, rarity or series. They are
  NO ACTION, not ON DELETE SET NULL: made composite, SET NULL would also null the template's guild_id, and
  PostgreSQL 14 (still supported) has no `SET NULL (column)`. "Deleting a category, rarity or series clears it on
  its templates" (SPEC §12.3, §20) is kept by a BEFORE DELETE trigger on each of the three tables that sets the
  template column to NULL for that guild and id; for a series, that UPDATE fires the existing
  `achievement_templates_clear_series_order` trigger exactly as the old SET NULL did. The trigger runs before the
  row is removed, so the NO ACTION check at the end of the statement finds no template left pointing at it; a
  template linked concurrently waits on the row lock the delete takes and is then cleared too (the trigger's
  UPDATE takes a fresh snapshot under READ COMMITTED).
- A template that (against the API's validation, e.g. data written by hand) already points at another guild's
  category, rarity or series loses that reference before the composite foreign key is created: to its own guild
  such a row is as absent as a deleted one, and the deletion rule is what the spec says happens then. No row is
  removed.
- `event_lake`: its primary key became (guild_id, occurred_at, id) in 0012 (the hot path's one lake index):
  every lake read is "one guild, by time" (the admin listing newest first is a backward scan of it, retention walks
  `guild_id = ? AND occurred_at < ?` oldest first), and the partition key must be in the key anyway.

Frozen in time like 0001: no import of the models; the trigger SQL is a copy of the models' `CATALOG_CLEAR_DDL`.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014_catalog_guild_keys"
down_revision: str | Sequence[str] | None = "0012_lean_hot_path"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (referenced table, template column)
_REFERENCES = (
    ("achievement_categories", "category_id"),
    ("achievement_rarities", "rarity_id"),
    ("achievement_series", "series_id"),
)


def _function(table: str, column: str) -> str:
    return f"""
CREATE FUNCTION {table}_clear_templates() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE achievement_templates SET {column} = NULL WHERE guild_id = OLD.guild_id AND {column} = OLD.id;
    RETURN OLD;
END
$$
""".strip()


def _trigger(table: str) -> str:
    return (
        f"CREATE TRIGGER {table}_clear_templates BEFORE DELETE ON {table}"
        f" FOR EACH ROW EXECUTE FUNCTION {table}_clear_templates()"
    )


def _rekey(table: str, columns: list[str]) -> None:
    op.drop_constraint(f"pk_{table}", table, type_="primary")
    op.create_primary_key(f"pk_{table}", table, columns)


def upgrade() -> None:
    for table, column in _REFERENCES:
        op.drop_constraint(f"fk_achievement_templates_{column}_{table}", "achievement_templates", type_="foreignkey")
        _rekey(table, ["guild_id", "id"])
        # A reference to another guild's row (never written by the API) is cleared, as its deletion would.
        op.execute(
            f"UPDATE achievement_templates t SET {column} = NULL WHERE t.{column} IS NOT NULL"
            f" AND NOT EXISTS (SELECT 1 FROM {table} r WHERE r.guild_id = t.guild_id AND r.id = t.{column})"
        )
        op.create_foreign_key(
            f"fk_achievement_templates_guild_id_{table}",
            "achievement_templates",
            table,
            ["guild_id", column],
            ["guild_id", "id"],
        )
        op.execute(_function(table, column))
        op.execute(_trigger(table))


def downgrade() -> None:
    for table, column in reversed(_REFERENCES):
        op.execute(f"DROP TRIGGER {table}_clear_templates ON {table}")
        op.execute(f"DROP FUNCTION {table}_clear_templates()")
        op.drop_constraint(f"fk_achievement_templates_guild_id_{table}", "achievement_templates", type_="foreignkey")
        _rekey(table, ["id"])
        op.create_foreign_key(
            f"fk_achievement_templates_{column}_{table}",
            "achievement_templates",
            table,
            [column],
            ["id"],
            ondelete="SET NULL",
        )
