"""Fewer index entries per event on the hot tables (issue 13): drop what no query reads, narrow what reads little.

Revision ID: 0003_hot_path_indexes
Revises: 0002_members_left_index
Create Date: 2026-12-03 13:00:00+00:00

Every message inserts a journal row and a lake row and updates its member row (xp, stars, counters and
`last_active_at` change, all of them indexed, so the update is never HOT and every index of `members` gets a new
entry). Per message that wrote one entry into each index below although nothing reads them:

- `ix_members_display_name_trgm`: no query searches names; a GIN trigram index on the most-updated table adds one
  entry per trigram of the name (≈ length + 2) on every event;
- `ix_event_lake_guild_id_user_id_occurred_at`, `…_event_type_occurred_at`, `…_channel_id_occurred_at`: the only
  reader of the lake on the event path is the author lookup by `(guild_id, source_key)` (the unique constraint);
  the maintenance jobs scan by time, which `ix_event_lake_guild_id_occurred_at` (kept) serves;
- `ix_reward_journal_ref_id` covered every row with a message id (all messages), while its one query counts
  `reaction_received` rows of a message: it now holds only those.

The `pg_trgm` extension stays (harmless; a future name search would index a table written only on renames).
Frozen in time like 0001: no import of the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_hot_path_indexes"
down_revision: str | Sequence[str] | None = "0002_members_left_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LAKE = (
    ("ix_event_lake_guild_id_user_id_occurred_at", ["guild_id", "user_id", "occurred_at DESC"], None),
    ("ix_event_lake_guild_id_event_type_occurred_at", ["guild_id", "event_type", "occurred_at DESC"], None),
    (
        "ix_event_lake_guild_id_channel_id_occurred_at",
        ["guild_id", "channel_id", "occurred_at DESC"],
        "channel_id IS NOT NULL",
    ),
)


def _columns(columns: list[str]) -> list[sa.TextClause | str]:
    return [sa.text(c) if " " in c else c for c in columns]


def upgrade() -> None:
    op.drop_index("ix_members_display_name_trgm", table_name="members")
    for name, _, _ in _LAKE:
        op.drop_index(name, table_name="event_lake")
    op.drop_index("ix_reward_journal_ref_id", table_name="reward_journal")
    op.create_index(
        "ix_reward_journal_ref_id",
        "reward_journal",
        ["guild_id", "ref_id"],
        postgresql_where=sa.text("event_type = 'reaction_received'"),
    )


def downgrade() -> None:
    op.drop_index("ix_reward_journal_ref_id", table_name="reward_journal")
    op.create_index(
        "ix_reward_journal_ref_id",
        "reward_journal",
        ["guild_id", "ref_id", "event_type"],
        postgresql_where=sa.text("ref_id IS NOT NULL"),
    )
    for name, columns, where in _LAKE:
        op.create_index(
            name, "event_lake", _columns(columns), postgresql_where=sa.text(where) if where is not None else None
        )
    op.create_index(
        "ix_members_display_name_trgm",
        "members",
        ["display_name"],
        postgresql_using="gin",
        postgresql_ops={"display_name": "gin_trgm_ops"},
    )
