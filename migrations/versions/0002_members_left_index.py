"""Leaderboard indexes for ranked members only, and an index of members who left (SPEC §17.1).

Revision ID: 0002_members_left_index
Revises: 0001_initial
Create Date: 2026-12-03 12:40:00+00:00

Rankings leave out members who left. With that condition in the (guild, value DESC, user_id) indexes themselves
(partial `WHERE left_at IS NULL`), "1 + members strictly higher" and "N ranked members" are index-only scans
even for a member near the bottom, instead of a sequential scan of the members table; the number of indexes a
member update touches stays the same. Season rankings count `season_stats` rows and exclude leavers with an
anti-join on the second, small index: only members who left are in it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_members_left_index"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_LEADERBOARD = {
    "xp": "ix_members_guild_id_xp",
    "gold": "ix_members_guild_id_gold",
    "lifetime_stars": "ix_members_guild_id_lifetime_stars",
}


def _leaderboard_indexes(*, ranked_only: bool) -> None:
    for column, name in _LEADERBOARD.items():
        op.drop_index(name, table_name="members")
        op.create_index(
            name,
            "members",
            ["guild_id", sa.text(f"{column} DESC"), "user_id"],
            postgresql_where=sa.text("left_at IS NULL") if ranked_only else None,
        )


def upgrade() -> None:
    _leaderboard_indexes(ranked_only=True)
    op.create_index(
        "ix_members_guild_id_user_id_left",
        "members",
        ["guild_id", "user_id"],
        postgresql_where=sa.text("left_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_members_guild_id_user_id_left", table_name="members")
    _leaderboard_indexes(ranked_only=False)
