"""The admin mutation limit (SPEC §21.4): per principal, sliding 60 s, shared by every process via the database.

Check-and-record is one transaction serialized per principal by a transaction-scoped advisory lock: count the
principal's rows of the last 60 s, refuse when the limit is reached (nothing recorded), else insert one. So 40
concurrent mutations against a limit of 30 admit exactly 30, whichever processes they reach. The reset is the
time until the oldest counted row leaves the window. `clock_timestamp()`, not `now()`: a transaction that
waited for the lock must not count or stamp with the time it started waiting.
"""

from __future__ import annotations

import math

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from synapse_async.api.ratelimit import Decision

WINDOW = "interval '60 seconds'"
_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")
_COUNT = text(
    f"""
    SELECT count(*) AS n,
           extract(epoch FROM (min(occurred_at) + {WINDOW} - clock_timestamp())) AS reset
      FROM admin_rate_events
     WHERE principal = :p AND occurred_at > clock_timestamp() - {WINDOW}
    """
)
_RECORD = text("INSERT INTO admin_rate_events (principal, occurred_at) VALUES (:p, clock_timestamp())")


async def admit(conn: AsyncConnection, principal: str, limit: int) -> Decision:
    """Check and (if allowed) record one mutation of `principal` in its own transaction."""
    async with conn.begin():
        await conn.execute(_LOCK, {"k": f"admin_rate:{principal}"})
        row = (await conn.execute(_COUNT, {"p": principal})).one()
        used = int(row.n)
        reset = max(1, math.ceil(float(row.reset))) if row.reset is not None else 60
        if used >= limit:
            return Decision(False, limit, 0, reset)
        await conn.execute(_RECORD, {"p": principal})
    return Decision(True, limit, limit - used - 1, reset)
