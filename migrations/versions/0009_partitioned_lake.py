"""The event lake becomes a table partitioned by day on `occurred_at`, without losing a row (issue 27, SPEC §15).

Revision ID: 0009_partitioned_lake
Revises: 0008_public_profile
Create Date: 2026-12-06 21:20:00+00:00

- `event_lake` is rebuilt as `PARTITION BY RANGE (occurred_at)` with the same columns, defaults, CHECKs and id
  sequence; its primary key becomes `(id, occurred_at)` (a partitioned table's keys must hold the partition key).
- The exactly-once gate `UNIQUE (guild_id, source_key)` cannot live on the partitioned table (several lake types
  take `occurred_at` from the moment of receipt, so a redelivery may carry another time): it moves to the small
  unpartitioned `event_lake_keys (guild_id, source_key) → user_id, occurred_at` (docs/decisions.md), which also
  answers the author lookup by key in one probe instead of one per partition.
- A DEFAULT partition catches any time no daily partition covers, so an insert never fails; daily partitions are
  created for every day that holds rows and for today and the next 7 days (the maintenance job keeps that up).
- Every row is copied with its id; the old table is dropped only after the copy, in the same transaction.

Frozen in time like 0001: no import of the models or of the partition helpers.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009_partitioned_lake"
down_revision: str | Sequence[str] | None = "0008_public_profile"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = "id, guild_id, user_id, event_type, channel_id, target_id, source_key, payload, occurred_at, recorded_at"

# One daily partition per day with rows and for today + 7 days, named event_lake_pYYYYMMDD, bounds at UTC midnight.
_DAILY_PARTITIONS = """
DO $$
DECLARE
    d date;
BEGIN
    FOR d IN
        SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date FROM event_lake_unpartitioned
        UNION SELECT (now() AT TIME ZONE 'UTC')::date + i FROM generate_series(0, 7) AS i
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF event_lake FOR VALUES FROM (%L) TO (%L)',
            'event_lake_p' || to_char(d, 'YYYYMMDD'),
            d::text || ' 00:00:00+00',
            (d + 1)::text || ' 00:00:00+00'
        );
    END LOOP;
END
$$
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE event_lake_keys (
            guild_id BIGINT NOT NULL,
            source_key VARCHAR(160) NOT NULL,
            user_id BIGINT,
            occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
            CONSTRAINT pk_event_lake_keys PRIMARY KEY (guild_id, source_key)
        )
        """
    )
    op.execute("CREATE INDEX ix_event_lake_keys_guild_id_occurred_at ON event_lake_keys (guild_id, occurred_at)")

    op.execute("ALTER TABLE event_lake RENAME TO event_lake_unpartitioned")
    op.execute("ALTER TABLE event_lake_unpartitioned DROP CONSTRAINT pk_event_lake")
    op.execute("ALTER TABLE event_lake_unpartitioned DROP CONSTRAINT uq_event_lake_guild_id_source_key")
    op.execute("DROP INDEX ix_event_lake_guild_id_occurred_at")
    op.execute("ALTER SEQUENCE event_lake_id_seq OWNED BY NONE")
    # LIKE copies the columns in order, NOT NULLs, the id default (the same sequence) and the named CHECKs.
    op.execute(
        "CREATE TABLE event_lake (LIKE event_lake_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        " PARTITION BY RANGE (occurred_at)"
    )
    op.execute("ALTER TABLE event_lake ADD CONSTRAINT pk_event_lake PRIMARY KEY (id, occurred_at)")
    op.execute("CREATE INDEX ix_event_lake_guild_id_occurred_at ON event_lake (guild_id, occurred_at DESC)")
    op.execute("CREATE TABLE event_lake_default PARTITION OF event_lake DEFAULT")
    op.execute(_DAILY_PARTITIONS)

    op.execute(f"INSERT INTO event_lake ({_COLUMNS}) SELECT {_COLUMNS} FROM event_lake_unpartitioned")
    op.execute(
        "INSERT INTO event_lake_keys (guild_id, source_key, user_id, occurred_at)"
        " SELECT guild_id, source_key, user_id, occurred_at FROM event_lake_unpartitioned"
    )
    op.execute("DROP TABLE event_lake_unpartitioned")
    op.execute("ALTER SEQUENCE event_lake_id_seq OWNED BY event_lake.id")


def downgrade() -> None:
    op.execute("ALTER TABLE event_lake RENAME TO event_lake_partitioned")
    op.execute("ALTER TABLE event_lake_partitioned DROP CONSTRAINT pk_event_lake")
    op.execute("DROP INDEX ix_event_lake_guild_id_occurred_at")
    op.execute("ALTER SEQUENCE event_lake_id_seq OWNED BY NONE")
    op.execute("CREATE TABLE event_lake (LIKE event_lake_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    op.execute("ALTER TABLE event_lake ADD CONSTRAINT pk_event_lake PRIMARY KEY (id)")
    op.execute("ALTER TABLE event_lake ADD CONSTRAINT uq_event_lake_guild_id_source_key UNIQUE (guild_id, source_key)")
    op.execute("CREATE INDEX ix_event_lake_guild_id_occurred_at ON event_lake (guild_id, occurred_at DESC)")
    op.execute(f"INSERT INTO event_lake ({_COLUMNS}) SELECT {_COLUMNS} FROM event_lake_partitioned")
    op.execute("DROP TABLE event_lake_partitioned")
    op.execute("ALTER SEQUENCE event_lake_id_seq OWNED BY event_lake.id")
    op.execute("DROP TABLE event_lake_keys")
