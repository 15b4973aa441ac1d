"""Members may stay off the public pages (issue 23, SPEC §17.2 `public_profile`).

Revision ID: 0008_public_profile
Revises: 0007_idempotency_reservations
Create Date: 2026-12-06 20:30:00+00:00

`member_preferences.public_profile` (default true, like the other preferences: no row means on). When false the
public API and pages show the member as "Anonymous member" without avatar or link, and the profile is 404.
Frozen in time like 0001: no import of the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_public_profile"
down_revision: str | Sequence[str] | None = "0007_idempotency_reservations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "member_preferences",
        sa.Column("public_profile", sa.Boolean(), nullable=False, server_default=sa.true()),
    )


def downgrade() -> None:
    op.drop_column("member_preferences", "public_profile")
