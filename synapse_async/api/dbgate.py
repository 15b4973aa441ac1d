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


class PublicReadGate:
    """The share of the database all anonymous reads of a process get (SPEC §19, issue 21 item 2).

        Public endpoints (and the public web pages) read on `Database.public_engine`, a pool of exactly
        `PUBLIC_DB_CONCURRENCY` connections whose server-side `statement_timeout` is `PUBLIC_QUERY_TIMEOUT_MS`: however
        expensive the requests, they never hold more than that many connections nor any connection for longer, and
        never one of the pipeline's or the admin API's. One client IP holds at most `concurrency - 1` of them at once
        (at least one), so a single client flooding the most expensive reads queues behind its own requests while
        everyone else still finds a free connection. A request that waits longer than `wait_seconds`
    (`HTTP_DB_WAIT_SECONDS`) gets 503 at once: the flooding client's surplus is refused quickly instead of queueing.

        `peak` (most connections ever held at once) and `acquired` (connections handed out) are what the tests and
        the benchmark check: the bound held, and concurrent identical requests ran one query.
    """

    def __init__(self, concurrency: int, wait_seconds: float) -> None:
        self.concurrency = concurrency
        self.per_client = max(1, concurrency - 1)
        self._slots = asyncio.Semaphore(concurrency)
        self._clients: dict[str, tuple[asyncio.Semaphore, int]] = {}  # client -> (its slots, requests using it)
        self._wait_seconds = wait_seconds
        self.in_use = 0
        self.peak = 0
        self.acquired = 0
        self.rejected = 0

    def _client(self, client: str) -> asyncio.Semaphore:
        slots, users = self._clients.get(client, (None, 0))
        if slots is None:
            slots = asyncio.Semaphore(self.per_client)
        self._clients[client] = (slots, users + 1)
        return slots

    def _leave(self, client: str) -> None:
        slots, users = self._clients[client]
        if users <= 1:
            del self._clients[client]  # bounded: only clients with a request in progress have an entry
        else:
            self._clients[client] = (slots, users - 1)

    @asynccontextmanager
    async def slot(self, client: str) -> AsyncIterator[None]:
        own = self._client(client)
        try:
            try:
                async with asyncio.timeout(self._wait_seconds):
                    await own.acquire()
                    try:
                        await self._slots.acquire()
                    except BaseException:
                        own.release()
                        raise
            except TimeoutError:
                self.rejected += 1
                raise ApiError(
                    503, "unavailable", "The service is busy; try again shortly.", headers={"Retry-After": "1"}
                ) from None
            self.in_use += 1
            self.acquired += 1
            self.peak = max(self.peak, self.in_use)
            try:
                yield
            finally:
                self.in_use -= 1
                self._slots.release()
                own.release()
        finally:
            self._leave(client)

    @asynccontextmanager
    async def connect(self, db: Database, client: str) -> AsyncIterator[AsyncConnection]:
        """A connection of the public pool, inside a slot of the gate (reads only)."""
        async with self.slot(client), db.public_engine.connect() as conn:
            yield conn

    def snapshot(self) -> dict[str, Any]:
        return {
            "slots": self.concurrency,
            "in_use": self.in_use,
            "peak": self.peak,
            "acquired": self.acquired,
            "rejected": self.rejected,
        }
