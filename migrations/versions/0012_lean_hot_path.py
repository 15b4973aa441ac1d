"""Fewer index entries per message on the hot tables, and room for HOT updates of members (issue 27).

Revision ID: 0012_lean_hot_path
Revises: 0011_rank_buckets
Create Date: 2026-12-06 23:00:00+00:00

Every message writes a journal row, a lake row, a lake key and a member upsert. Per index, what it costs and who
reads it (docs/decisions.md, "Lean hot path"):

- `ix_members_guild_id_last_active_at`: no query reads it (the public metrics count active members while summing
  the whole guild's rows anyway), yet `last_active_at` moves on every message, so it made every member update
  non-HOT and wrote one entry into each of the table's indexes. Dropped; `members` gets `fillfactor = 85` so an
  update finds room for its new version on the same page (HOT needs both).
- `ix_reward_journal_guild_id_occurred_at_id`: its readers (the public activity list and its daily counts) only
  ever read paid reward items, level changes and achievements. Partial on exactly that, it no longer gets an entry
  for the unpaid messages (cooldown, no-XP channels, …), which are most of them.
- `event_lake`: the primary key `(id, occurred_at)` (nothing reads a lake row by id alone) and the
  `(guild_id, occurred_at DESC)` index become ONE guild-first primary key `(guild_id, occurred_at, id)`, which serves
  the time-ordered reads the other index did and can be distributed by guild_id (tools/check_distributable.py).

Frozen in time like 0001: no import of the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_lean_hot_path"
down_revision: str | Sequence[str] | None = "0011_rank_buckets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What the public activity list and its daily counts read (api/public_stats.py): paid reward items, level changes,
# achievements. Their WHERE clauses imply this predicate, so the planner can use the partial index.
PUBLIC_JOURNAL_ROWS = (
    "event_type IN ('level_change', 'achievement') OR (zero_reason IS NULL AND (xp_delta > 0 OR star_delta > 0))"
)


def upgrade() -> None:
    op.drop_index("ix_members_guild_id_last_active_at", table_name="members")
    op.execute("ALTER TABLE members SET (fillfactor = 85)")

    op.drop_index("ix_reward_journal_guild_id_occurred_at_id", table_name="reward_journal")
    op.create_index(
        "ix_reward_journal_guild_id_occurred_at_id",
        "reward_journal",
        ["guild_id", sa.text("occurred_at DESC"), sa.text("id DESC")],
        postgresql_where=sa.text(PUBLIC_JOURNAL_ROWS),
    )

    op.execute("ALTER TABLE event_lake DROP CONSTRAINT pk_event_lake")
    op.execute("DROP INDEX ix_event_lake_guild_id_occurred_at")
    op.execute("ALTER TABLE event_lake ADD CONSTRAINT pk_event_lake PRIMARY KEY (guild_id, occurred_at, id)")


def downgrade() -> None:
    op.execute("ALTER TABLE event_lake DROP CONSTRAINT pk_event_lake")
    op.execute("ALTER TABLE event_lake ADD CONSTRAINT pk_event_lake PRIMARY KEY (id, occurred_at)")
    op.execute("CREATE INDEX ix_event_lake_guild_id_occurred_at ON event_lake (guild_id, occurred_at DESC)")

    op.drop_index("ix_reward_journal_guild_id_occurred_at_id", table_name="reward_journal")
    op.create_index(
        "ix_reward_journal_guild_id_occurred_at_id",
        "reward_journal",
        ["guild_id", sa.text("occurred_at DESC"), sa.text("id DESC")],
    )

    op.execute("ALTER TABLE members RESET (fillfactor)")
    op.create_index("ix_members_guild_id_last_active_at", "members", ["guild_id", "last_active_at"])
