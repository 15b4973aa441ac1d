"""A job's stored payload goes when the job ends, in any state (SPEC §20.1: an import document is up to 20 MiB).

Revision ID: 0006_import_jobs
Revises: 0005_public_read_indexes
Create Date: 2026-12-06 20:30:00+00:00

The import handler deletes its payload itself when it ends (done, cancelled, stopped or failed), but a job can end
without its handler: cancelled while still queued, or marked `failed` (`interrupted`) by the stale check after its
process died. The trigger deletes the payload whenever a job's status becomes final, so no path leaves a document
behind. Frozen in time like 0001: no import of the models.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006_import_jobs"
down_revision: str | Sequence[str] | None = "0005_public_read_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = """
CREATE FUNCTION jobs_drop_payload() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_payloads WHERE job_id = NEW.job_id;
    RETURN NULL;
END
$$
""".strip()
_TRIGGER = (
    "CREATE TRIGGER jobs_drop_payload AFTER UPDATE OF status ON jobs FOR EACH ROW"
    " WHEN (NEW.status IN ('succeeded', 'failed', 'cancelled')) EXECUTE FUNCTION jobs_drop_payload()"
)


def upgrade() -> None:
    op.execute(_FUNCTION)
    op.execute(_TRIGGER)
    # Documents of jobs that already ended before this revision.
    op.execute(
        "DELETE FROM job_payloads p USING jobs j"
        " WHERE j.job_id = p.job_id AND j.status IN ('succeeded', 'failed', 'cancelled')"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS jobs_drop_payload ON jobs")
    op.execute("DROP FUNCTION IF EXISTS jobs_drop_payload()")
