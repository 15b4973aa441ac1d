"""The SQLAlchemy asyncio engines over asyncpg, with bounded pools that never hang (SPEC §4, §25).

Three engines on the same server: `engine` for the bot (pipeline lanes, services, tasks), `http_engine`, a small
separate pool for the HTTP API, so no amount of HTTP traffic can take a connection the pipeline needs, and
`public_engine`, the anonymous reads' own share with a short statement timeout.

Technical-debt item 3 was a pool without a timeout: a request could wait forever for a connection. Here every
checkout waits at most `DB_POOL_TIMEOUT_SECONDS`; `db/faults.py` classifies the resulting error as transient, so
HTTP answers 503 and the pipeline retries. Sessions use `expire_on_commit=False` (debt item 4): returned rows stay
readable after commit without lazy loads on a closed session.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from synapse_async.db.transactions import HeldConnection, raw_transaction
from synapse_async.db.urls import to_sqlalchemy_url


@dataclass(slots=True)
class ProbeState:
    """Result of the periodic `SELECT 1` probe; read by /health and /ready without any I/O."""

    ok: bool = False
    at: datetime | None = None
    latency_ms: float | None = None
    error: str | None = None


class Database:
    """Owns the engine and session factory; created and disposed by the composition root only."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int,
        max_overflow: int,
        pool_timeout: float,
        statement_timeout_ms: int,
        http_pool_size: int = 2,
        public_pool_size: int = 2,
        public_statement_timeout_ms: int = 1500,
        application_name: str = "synapse-async",
    ) -> None:
        self.url = url

        def engine(
            size: int, overflow: int, name: str, timeout_ms: int = statement_timeout_ms, isolation: str | None = None
        ) -> AsyncEngine:
            return create_async_engine(
                to_sqlalchemy_url(url),
                **({"isolation_level": isolation} if isolation else {}),
                pool_size=size,
                max_overflow=overflow,
                pool_timeout=pool_timeout,
                pool_pre_ping=True,
                pool_recycle=1800,
                connect_args={
                    "timeout": 10,
                    "command_timeout": max(timeout_ms / 1000 * 2, 5),
                    "server_settings": {"statement_timeout": str(timeout_ms), "application_name": name},
                },
            )

        self.engine: AsyncEngine = engine(pool_size, max_overflow, application_name)
        # The HTTP API's own, smaller pool: however many requests arrive, they can never take a connection the
        # pipeline lanes (and the rest of the bot) need. `api.dbgate` bounds the requests waiting for it.
        self.http_engine: AsyncEngine = engine(http_pool_size, 0, f"{application_name}-http")
        # Anonymous reads (public API, public pages) get their own, smallest pool, every statement bounded by
        # `PUBLIC_QUERY_TIMEOUT_MS` on the server: a flood of them can neither take the admin API's connections nor
        # hold one for long (SPEC §19; `api.dbgate.PublicReadGate` admits the requests). Its reads are single
        # statements outside any transaction (AUTOCOMMIT): a checkout's liveness ping is one round trip instead of
        # BEGIN, ping, ROLLBACK, and a read needs no BEGIN/ROLLBACK around it (issue 27; docs/decisions.md).
        self.public_engine: AsyncEngine = engine(
            public_pool_size, 0, f"{application_name}-public", public_statement_timeout_ms, "AUTOCOMMIT"
        )
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(self.engine, expire_on_commit=False)
        self.probe_state = ProbeState()

    def pool_stats(self, *, http: bool = False, public: bool = False) -> dict[str, int]:
        """Pool size, connections checked out and overflow in use (in-memory, for /health)."""
        pool = (self.public_engine if public else self.http_engine if http else self.engine).pool
        size = getattr(pool, "size", lambda: 0)()
        return {
            "size": int(size),
            "checked_out": int(getattr(pool, "checkedout", lambda: 0)()),
            "overflow": max(0, int(getattr(pool, "overflow", lambda: 0)())),
        }

    async def ping(self, timeout: float = 2.0) -> None:
        """One `SELECT 1`; raises on failure. Used at startup and by the probe task."""
        async with asyncio.timeout(timeout):
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

    async def probe(self, timeout: float = 2.0) -> ProbeState:
        """Run the liveness probe and record its outcome."""
        started = time.perf_counter()
        try:
            await self.ping(timeout)
        except Exception as exc:
            self.probe_state = ProbeState(False, datetime.now(UTC), None, type(exc).__name__)
        else:
            latency = round((time.perf_counter() - started) * 1000, 2)
            self.probe_state = ProbeState(True, datetime.now(UTC), latency, None)
        return self.probe_state

    async def run_probe(self) -> None:
        """The periodic probe task's body (SPEC §24.1: every `DB_PROBE_SECONDS`, 2 s timeout)."""
        await self.probe(2.0)

    async def wait_until_reachable(self, deadline_seconds: float, *, interval: float = 0.5) -> None:
        """Retry connecting until it works or the deadline passes (SPEC §3.2 step 5); raise the last error."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_seconds
        while True:
            try:
                await self.ping(timeout=5.0)
                self.probe_state = ProbeState(True, datetime.now(UTC), None, None)
                return
            except Exception:
                if loop.time() >= end:
                    raise
                await asyncio.sleep(interval)

    def raw_transaction(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        """One raw asyncpg transaction on a pooled connection (the pipeline's lanes, the economy, the relevel job):
        their statements are asyncpg's (prepared and cached) and share this one transaction; a connection lost
        mid-way becomes `ConnectionLost` (see `db/transactions.py`)."""
        return raw_transaction(self.engine)

    def held_connection(self) -> HeldConnection:
        """A pooled connection for several consecutive raw transactions (a busy lane); `release()` it when done."""
        return HeldConnection(self.engine)

    async def dispose(self) -> None:
        await self.public_engine.dispose()
        await self.http_engine.dispose()
        await self.engine.dispose()
