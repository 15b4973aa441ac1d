"""The event lake's maintenance jobs (SPEC §15.3), keyed by job kind, configured from the process settings."""

from __future__ import annotations

from synapse_async.config import Config
from synapse_async.db.engine import Database
from synapse_async.jobs.backfill import backfill_handler
from synapse_async.jobs.reconciliation import reconciliation_handler
from synapse_async.jobs.retention import RetentionSettings, retention_handler
from synapse_async.jobs.runner import JobHandler

LAKE_JOB_KINDS = ("retention", "reconciliation", "backfill")


def lake_job_handlers(db: Database, config: Config) -> dict[str, JobHandler]:
    pacing = RetentionSettings(
        budget_seconds=config.lake_retention_budget_seconds, pause_seconds=config.lake_retention_pause_seconds
    )
    return {
        "retention": retention_handler(db, pacing),
        "reconciliation": reconciliation_handler(db),
        "backfill": backfill_handler(db),
    }
