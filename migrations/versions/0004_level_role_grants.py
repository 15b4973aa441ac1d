"""Level roles the bot granted, so a sync removes only those (SPEC §13 "The bot only takes back what it gave").

Revision ID: 0004_level_role_grants
Revises: 0003_hot_path_indexes
Create Date: 2026-12-06 20:30:00+00:00

One row per (guild, member, role) the bot added as a level reward. A sync and `replace` mode remove a reward role
only where such a row exists. The table starts EMPTY on existing installs: nobody can tell which of the roles
members hold today the bot gave, so none of them is ever removed by the bot; only roles it adds from now on are
(docs/decisions.md). Reads are by guild and member, the primary key's prefix, so no other index is needed.
Frozen in time like 0001: no import of the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_level_role_grants"
down_revision: str | Sequence[str] | None = "0003_hot_path_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "level_role_grants",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("role_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("guild_id", "user_id", "role_id", name=op.f("pk_level_role_grants")),
    )


def downgrade() -> None:
    op.drop_table("level_role_grants")
