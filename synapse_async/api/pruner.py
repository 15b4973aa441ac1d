"""The hourly pruner of SPEC §23.1: expired OAuth states and revoked ids, old rate events and idempotency keys.

Each statement is one short DELETE on an indexed timestamp; nothing else reads these rows once they are past
their time (lookups already ignore them), so pruning only keeps the tables small.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from synapse_async.obs.logging import get_logger

log = get_logger(__name__)

PRUNE_INTERVAL_SECONDS: Final = 3600.0
_STATEMENTS: Final = {
    "oauth_states": "DELETE FROM oauth_states WHERE expires_at <= now()",
    "revoked_tokens": "DELETE FROM revoked_tokens WHERE expires_at <= now()",
    "admin_rate_events": "DELETE FROM admin_rate_events WHERE occurred_at < now() - interval '10 minutes'",
    "idempotency_keys": "DELETE FROM idempotency_keys WHERE created_at <= now() - interval '24 hours'",
}


async def prune(engine: AsyncEngine) -> dict[str, int]:
    """Delete what has expired; the number of rows removed per table."""
    removed: dict[str, int] = {}
    async with engine.begin() as conn:
        for table, sql in _STATEMENTS.items():
            result = await conn.execute(text(sql))
            removed[table] = int(result.rowcount or 0)
    if any(removed.values()):
        log.info("pruned", **removed)
    return removed
