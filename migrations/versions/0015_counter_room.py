"""Room on `event_counters` pages for HOT updates (issue 27).

Revision ID: 0015_counter_room
Revises: 0014_catalog_guild_keys
Create Date: 2026-12-07 02:30:00+00:00

Every lake event increments three counters (lifetime, its day, its season). The increment changes no indexed
column, so it can be a HOT update (no new entry in the primary key or the `(guild_id, period)` index) as long as
the row's page has room for the new version. Pages filled to 100 % by the day's new rows had none: measured on
`bench/pipeline.py`, 0.8–0.9 counter index entries per message. `fillfactor = 85` leaves that room on every page
written from now on (existing pages keep their fill until they are rewritten); members got the same in 0012.

Frozen in time like 0001: no import of the models.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015_counter_room"
down_revision: str | Sequence[str] | None = "0014_catalog_guild_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE event_counters SET (fillfactor = 85)")


def downgrade() -> None:
    op.execute("ALTER TABLE event_counters RESET (fillfactor)")
