"""Idempotency keys are reserved before the handler and scoped by principal AND route (SPEC §18, issue 22).

Revision ID: 0007_idempotency_reservations
Revises: 0006_import_jobs
Create Date: 2026-12-06 20:30:00+00:00

- `route` (method and path) joins the primary key: a key is the client's name for one operation on one route.
- `status` and `response` become nullable: a row with `status` NULL is a reservation whose handler is running;
  concurrent duplicates wait for it instead of running the handler again.

Existing rows (stored responses of the last 24 h, without a route) are dropped: they cannot be placed on a route.
Frozen in time like 0001: no import of the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_idempotency_reservations"
down_revision: str | Sequence[str] | None = "0006_import_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM idempotency_keys")
    op.add_column("idempotency_keys", sa.Column("route", sa.Text(), nullable=False))
    op.drop_constraint("pk_idempotency_keys", "idempotency_keys", type_="primary")
    op.create_primary_key("pk_idempotency_keys", "idempotency_keys", ["principal", "route", "key"])
    op.alter_column("idempotency_keys", "status", existing_type=sa.Integer(), nullable=True)
    op.alter_column("idempotency_keys", "response", existing_type=sa.dialects.postgresql.JSONB(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM idempotency_keys")
    op.alter_column("idempotency_keys", "response", existing_type=sa.dialects.postgresql.JSONB(), nullable=False)
    op.alter_column("idempotency_keys", "status", existing_type=sa.Integer(), nullable=False)
    op.drop_constraint("pk_idempotency_keys", "idempotency_keys", type_="primary")
    op.create_primary_key("pk_idempotency_keys", "idempotency_keys", ["principal", "key"])
    op.drop_column("idempotency_keys", "route")
