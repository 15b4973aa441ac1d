"""Switching event-lake data sources on or off (SPEC §15.2): a settings write, so it lives with the services.

The lake's read side (`lake/queries.py`) checks the request body; this module stores it through the one settings
writer, so the switches are audited per key and NOTIFYed in the same transaction like any other setting.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from synapse_async.lake.queries import source_values
from synapse_async.services.audit import Actor
from synapse_async.services.settings import update_settings


async def set_data_sources(
    sessions: async_sessionmaker[AsyncSession], guild_id: int, sources: object, actor: Actor
) -> dict[str, bool]:
    """Switch sources on or off all-or-nothing: one settings write (audited per key, NOTIFY in the transaction,
    so every process's cache — and with it the pipeline — follows at once). Returns the switches written."""
    values = source_values(sources)
    await update_settings(sessions, guild_id, values, actor, action="data_sources.update")
    return {key.removeprefix("lake.source."): bool(v) for key, v in values.items()}
