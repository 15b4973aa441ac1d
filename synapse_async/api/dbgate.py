"""The only way HTTP handlers reach the database: bounded, fast-failing, on the API's own pool (SPEC §25).

An anonymous flood of public reads used to share the pipeline's pool: it held every connection, the lanes timed
out and backed off, and the outage buffer eventually dropped gateway events. Now HTTP work runs on
`Database.http_engine` (its own pool of `HTTP_DB_POOL_SIZE` connections) behind a semaphore of the same size.
A request that cannot get a slot within `HTTP_DB_WAIT_SECONDS` answers 503 `unavailable` with `Retry-After` at
once, instead of queueing behind thousands of others and tying up memory and sockets while it waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from synapse_async.api.errors import ApiError
from synapse_async.db.engine import Database


class HttpDatabaseGate:
    """Admits at most `concurrency` HTTP requests to the database at once; the rest wait briefly, then 503."""

    def __init__(self, concurrency: int, wait_seconds: float) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._wait_seconds = wait_seconds
        self.in_use = 0
        self.rejected = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._wait_seconds):
                await self._slots.acquire()
        except TimeoutError:
            self.rejected += 1
            raise ApiError(
                503, "unavailable", "The service is busy; try again shortly.", headers={"Retry-After": "1"}
            ) from None
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
            self._slots.release()

    @asynccontextmanager
    async def connect(self, db: Database) -> AsyncIterator[AsyncConnection]:
        """A connection of the HTTP pool, inside a slot (reads)."""
        async with self.slot(), db.http_engine.connect() as conn:
            yield conn

    def snapshot(self) -> dict[str, Any]:
        return {"slots": self._concurrency, "in_use": self.in_use, "rejected": self.rejected}
