"""Index-backed public activity (issue 21): level changes indexed, the journal's time index ordered like the list.

Revision ID: 0005_public_read_indexes
Revises: 0004_level_role_grants
Create Date: 2026-12-06 20:00:00+00:00

`GET /api/guilds/{id}/activity` shows a `level_change` row only when it reaches a level the member never had
before: "no earlier level change of this member reached as high". Without an index of level changes that test
read every earlier journal row of the member (messages, reactions, voice ticks) through
`ix_reward_journal_guild_id_user_id_occurred_at`, for every level change in the window: with 220,000 journal rows
one 90-day activity page cost 8–15 s of database time. Level changes are a tiny share of the journal, so this
partial index is small and adds nothing to the per-message write path.

The activity list is ordered `occurred_at DESC, id DESC`; the time index had `occurred_at` only, so even page 1
sorted the whole window (0.5 s at 220,000 rows). It is replaced by `(guild_id, occurred_at DESC, id DESC)`: the
same number of entries per row (nothing more to write per message), and page 1 - or a deep page continued from
a known row (keyset) - reads just the rows it returns.
Frozen in time like 0001: no import of the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_public_read_indexes"
down_revision: str | Sequence[str] | None = "0004_level_role_grants"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_reward_journal_guild_id_occurred_at_id",
        "reward_journal",
        ["guild_id", sa.text("occurred_at DESC"), sa.text("id DESC")],
    )
    op.drop_index("ix_reward_journal_guild_id_occurred_at", table_name="reward_journal")
    op.create_index(
        "ix_reward_journal_level_changes",
        "reward_journal",
        ["guild_id", "user_id", "id"],
        postgresql_where=sa.text("event_type = 'level_change'"),
    )


def downgrade() -> None:
    op.drop_index("ix_reward_journal_level_changes", table_name="reward_journal")
    op.create_index(
        "ix_reward_journal_guild_id_occurred_at", "reward_journal", ["guild_id", sa.text("occurred_at DESC")]
    )
    op.drop_index("ix_reward_journal_guild_id_occurred_at_id", table_name="reward_journal")
