"""Lifetime-XP ranks from per-guild counts kept by triggers, not from a count of rows per request (issue 27).

Revision ID: 0011_rank_buckets
Revises: 0010_guild_keys
Create Date: 2026-12-06 22:40:00+00:00

`xp_rank_counts (guild_id, level, key, members)`: how many ranked members (present, XP > 0) have `xp >> 8·level =
key`, for levels 0–3 (`services.ranks`). Statement-level triggers on `members` (INSERT, UPDATE, DELETE, with
transition tables; TRUNCATE) apply the aggregated change of each statement in the same transaction, so the counts
are exact at every commit, seen alike by every process. The upgrade fills the table from the existing members.
Frozen in time like 0001: a copy of `models.XP_RANK_COUNTS_DDL`, no import of the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_rank_buckets"
down_revision: str | Sequence[str] | None = "0010_guild_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DDL = (
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
_FILL = """
INSERT INTO xp_rank_counts (guild_id, level, key, members)
SELECT m.guild_id, l.level, m.xp >> (8 * l.level), count(*)
  FROM members m CROSS JOIN generate_series(0, 3) AS l(level)
 WHERE m.left_at IS NULL AND m.xp > 0
 GROUP BY 1, 2, 3
"""


def upgrade() -> None:
    op.create_table(
        "xp_rank_counts",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("members", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("guild_id", "level", "key", name=op.f("pk_xp_rank_counts")),
    )
    # Members keep changing while this runs only if the app is up during the upgrade; the lock makes the fill
    # and the triggers' first statement see the same rows.
    op.execute("LOCK TABLE members IN SHARE ROW EXCLUSIVE MODE")
    for statement in _DDL:
        op.execute(statement)
    op.execute(_FILL)


def downgrade() -> None:
    for suffix in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER members_xp_rank_counts_{suffix} ON members")
    op.execute("DROP FUNCTION members_xp_rank_counts()")
    op.drop_table("xp_rank_counts")
