"""The LISTEN connection that keeps the config cache fresh, as one supervised coroutine (SPEC §16.2).

The seed design ran this in a daemon thread that retried forever (technical-debt items 2 and 5). Here it is a
coroutine on the application's event loop, using asyncpg's `add_listener` on a dedicated connection outside the
pool. It pings the connection and watches asyncpg's termination callback; on failure it reconnects with capped
exponential backoff and jitter. After `LISTEN_MAX_FAILURES` consecutive failures the circuit opens: the cache
falls back to polling full reloads every `CACHE_POLL_SECONDS`, and one reconnect is tried every
`LISTEN_HALF_OPEN_SECONDS`. It never gives up, and every state is visible in `/health`. Every successful
(re)connection is followed by a full reload, because notifications sent while disconnected are lost.

A targeted reload that fails (pool timeout, statement timeout, a lock held too long) while the listener itself
stays connected would otherwise be lost for good: no reconnect follows, so no full reload covers it. It is
therefore queued again after the same capped backoff as reconnects (SPEC §16.1, §27.8), until it succeeds.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg
from sqlalchemy import exc as sa_exc

from synapse_async.cache.config_cache import ConfigCache
from synapse_async.db.errors import ErrorSummary, summary_json
from synapse_async.db.notify import CONFIG_CHANNEL, EVENTS_CHANNEL, ConfigChange, parse_config_payload
from synapse_async.db.urls import to_asyncpg_dsn
from synapse_async.obs.logging import get_logger
from synapse_async.timeutil import iso

log = get_logger(__name__)

# Errors that mean "the database is not reachable right now"; anything else is a bug and goes to the supervisor.
_CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    ConnectionError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # The dedicated connection's protocol got out of step (seen when the server kills the backend while a ping
    # starts); a new connection is the cure, exactly as for a lost one.
    asyncpg.InternalClientError,
    sa_exc.DBAPIError,
    sa_exc.TimeoutError,
)

EventHandler = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]


class ListenerState(StrEnum):
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CIRCUIT_OPEN = "circuit_open"


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    ping_seconds: float = 15.0
    max_failures: int = 10
    backoff_max_seconds: float = 60.0
    half_open_seconds: float = 60.0
    poll_seconds: float = 30.0
    ping_timeout_seconds: float = 5.0
    connect_timeout_seconds: float = 5.0
    # Distinct pending (table, guild) reloads kept; beyond it they collapse into one full reload (SPEC §25). A
    # batched start-up sync notifies up to three tables of hundreds of guilds per commit, and the worker reloads
    # whatever is queued one query per table, so a few batches' worth must fit: at 1,000, a 10,000-guild start
    # overflowed fourteen times into full reloads of every guild (issue 27). 20,000 entries are about 2 MB.
    reload_queue_max: int = 20_000


# Queued in place of many targeted reloads once the queue is full: one full reload covers them all.
_FULL_RELOAD = ConfigChange("*", None)


class ConfigListener:
    """Owns the LISTEN connection, the reconnect/circuit state machine and the reload queue."""

    def __init__(
        self,
        url: str,
        cache: ConfigCache,
        settings: ListenerSettings,
        *,
        on_event: EventHandler | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._dsn = to_asyncpg_dsn(url)
        self._cache = cache
        self._settings = settings
        self._on_event_handler = on_event
        self._jitter = jitter
        # Any database role can NOTIFY, so the queue is bounded: `_pending` mirrors the queue's contents, and
        # `_enqueue` never lets it grow past `reload_queue_max` + the one full-reload marker.
        self._queue: asyncio.Queue[ConfigChange] = asyncio.Queue()
        self._pending: set[ConfigChange] = set()
        self._full_reload_queued = False
        self.reload_queue_high_water = 0
        self.reload_overflows = 0
        self._event_tasks: set[asyncio.Task[None]] = set()
        self._retries: set[asyncio.TimerHandle] = set()
        self.reload_failures = 0  # consecutive failed targeted reloads; sets the retry backoff
        self.reloads_in_flight = 0  # changes the worker is reloading now (taken off the queue together)
        self._conn: asyncpg.Connection | None = None
        self.state = ListenerState.RECONNECTING
        self.consecutive_failures = 0
        self.last_notification_at: datetime | None = None
        self.last_error: ErrorSummary | None = None  # class and code only: /health is unauthenticated
        self.connections = 0
        self.backend_pid: int | None = None
        self.poll_reloads = 0
        # Set once the first connection attempt has ended either way, so startup can LISTEN before going on.
        self.first_attempt_done = asyncio.Event()
        self._next_poll_at: float | None = None

    @property
    def queued_reloads(self) -> int:
        """Reloads waiting for the worker (at most `reload_queue_max`, or 1 after an overflow)."""
        return self._queue.qsize()

    @property
    def mode(self) -> str:
        return "polling" if self.state is ListenerState.CIRCUIT_OPEN else "listen"

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "mode": self.mode,
            "consecutive_failures": self.consecutive_failures,
            "last_notification_at": iso(self.last_notification_at),
            "last_full_reload_at": iso(self._cache.last_full_reload_at),
            "last_error": summary_json(self.last_error),
            "queued_reloads": self.queued_reloads,
            "reload_overflows": self.reload_overflows,
        }

    # --- the supervised coroutine ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until cancelled. Connection problems are handled here; anything else propagates to the supervisor."""
        worker = asyncio.create_task(self._reload_worker(), name="config-reload-worker")
        try:
            while True:
                await self._session()
                await self._after_failure()
        finally:
            worker.cancel()
            for handle in self._retries:
                handle.cancel()
            self._retries.clear()
            await asyncio.gather(worker, return_exceptions=True)
            await self.close()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                async with asyncio.timeout(2):
                    await conn.close()
            except _CONNECTION_ERRORS:
                conn.terminate()
            except asyncio.CancelledError:
                conn.terminate()
                raise

    async def _session(self) -> None:
        """Connect, LISTEN, full reload, then watch the connection until it fails."""
        lost = asyncio.Event()
        try:
            self._conn = conn = await asyncpg.connect(self._dsn, timeout=self._settings.connect_timeout_seconds)
            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(CONFIG_CHANNEL, self._on_config)
            await conn.add_listener(EVENTS_CHANNEL, self._on_events)
            # LISTEN is active before the reload starts, so no change can fall between the two.
            await self._cache.full_reload()
            self._on_connected(conn)
            self.first_attempt_done.set()
            while True:
                try:
                    async with asyncio.timeout(self._settings.ping_seconds):
                        await lost.wait()
                    raise ConnectionError("listener connection was terminated")
                except TimeoutError:
                    pass
                try:
                    async with asyncio.timeout(self._settings.ping_timeout_seconds):
                        await conn.fetchval("SELECT 1")
                except Exception as exc:
                    # A ping racing the server's termination can fail with asyncpg's InternalClientError ("another
                    # operation is in progress"), which is not a connection error by type; on a connection known to
                    # be gone, any ping failure is the loss itself, not a bug.
                    if lost.is_set() or conn.is_closed():
                        raise ConnectionError("listener connection was terminated during a ping") from exc
                    raise
        except _CONNECTION_ERRORS as exc:
            self._on_failure(exc)
        finally:
            self.first_attempt_done.set()
            await self.close()

    def _on_connected(self, conn: asyncpg.Connection) -> None:
        reopened = self.state is ListenerState.CIRCUIT_OPEN
        self.state = ListenerState.CONNECTED
        self.consecutive_failures = 0
        self.last_error = None
        self.connections += 1
        self.backend_pid = conn.get_server_pid()
        self._next_poll_at = None
        log.info("cache_listener_connected", circuit_closed=reopened, backend_pid=self.backend_pid)

    def _on_failure(self, exc: BaseException) -> None:
        self.consecutive_failures += 1
        self.last_error = ErrorSummary.of(exc)
        detail = f"{type(exc).__name__}: {exc}"[:300]  # the full text goes to the log only
        if self.consecutive_failures >= self._settings.max_failures:
            if self.state is not ListenerState.CIRCUIT_OPEN:
                log.error("cache_listener_circuit_open", failures=self.consecutive_failures, error=detail)
            self.state = ListenerState.CIRCUIT_OPEN
        else:
            self.state = ListenerState.RECONNECTING
            log.warning("cache_listener_failed", failures=self.consecutive_failures, error=detail)

    def backoff_seconds(self, failures: int | None = None) -> float:
        """min(2^(n−1), cap) plus 0–50 % jitter; n is the consecutive connection failures unless given."""
        n = max(self.consecutive_failures if failures is None else failures, 1)
        base = min(2.0 ** (n - 1), self._settings.backoff_max_seconds)
        return base * (1.0 + 0.5 * self._jitter())

    async def _after_failure(self) -> None:
        if self.state is not ListenerState.CIRCUIT_OPEN:
            await asyncio.sleep(self.backoff_seconds())
            return
        # Circuit open: poll full reloads every poll interval (a schedule that survives half-open attempts) and
        # return when the next half-open reconnect attempt is due.
        loop = asyncio.get_running_loop()
        retry_at = loop.time() + self._settings.half_open_seconds
        if self._next_poll_at is None:
            self._next_poll_at = loop.time() + self._settings.poll_seconds
        while (now := loop.time()) < retry_at:
            if now >= self._next_poll_at:
                await self._poll_reload()
                self._next_poll_at = loop.time() + self._settings.poll_seconds
                continue
            await asyncio.sleep(min(retry_at, self._next_poll_at) - now)

    async def _poll_reload(self) -> None:
        self.poll_reloads += 1
        try:
            await self._cache.full_reload()
        except _CONNECTION_ERRORS as exc:
            log.warning("cache_poll_reload_failed", error=f"{type(exc).__name__}: {exc}"[:300])

    # --- notifications -----------------------------------------------------------------------------------------
    def _on_config(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.last_notification_at = datetime.now(UTC)
        change = parse_config_payload(payload)
        if change is None:
            log.warning("config_notification_ignored", payload=payload[:100])
            return
        self._enqueue(change)

    def _enqueue(self, change: ConfigChange) -> None:
        """Coalesce bursts (one pending reload per (table, guild)); on overflow replace all with a full reload."""
        if self._full_reload_queued or change in self._pending:
            return  # already covered by a queued reload
        if len(self._pending) >= self._settings.reload_queue_max:
            while not self._queue.empty():
                self._queue.get_nowait()
            self._pending.clear()
            self._full_reload_queued = True
            self._queue.put_nowait(_FULL_RELOAD)
            self.reload_overflows += 1
            log.warning("config_reload_queue_overflow", limit=self._settings.reload_queue_max)
        else:
            self._pending.add(change)
            self._queue.put_nowait(change)
        self.reload_queue_high_water = max(self.reload_queue_high_water, self._queue.qsize())

    def _on_events(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.last_notification_at = datetime.now(UTC)
        try:
            event = json.loads(payload)
        except ValueError:
            log.warning("event_notification_unparsable")
            return
        if not isinstance(event, dict) or event.get("v") != 1 or self._on_event_handler is None:
            return
        task = asyncio.create_task(self._on_event_handler(event))
        self._event_tasks.add(task)
        task.add_done_callback(self._event_done)

    def _event_done(self, task: asyncio.Task[None]) -> None:
        self._event_tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("event_notification_handler_failed", error=f"{type(exc).__name__}: {exc}"[:300])

    async def _reload_worker(self) -> None:
        while True:
            change = await self._queue.get()
            # Everything else already queued is reloaded with it, one query per table (issue 27): a batched
            # guild sync notifies hundreds of guilds at once. Taken before reloading, so a change that arrives
            # during the reload is queued again after it.
            batch = [change]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._pending.difference_update(batch)
            self.reloads_in_flight = len(batch)
            try:
                await self._reload_batch(batch)
            finally:
                self.reloads_in_flight = 0

    async def _reload_batch(self, batch: list[ConfigChange]) -> None:
        if _FULL_RELOAD in batch:
            # Cleared before reloading: a change that arrives during the reload is queued again after it.
            self._full_reload_queued = False
            groups: dict[str, list[ConfigChange]] = {_FULL_RELOAD.table: batch}
        else:
            groups = {}
            for change in batch:
                groups.setdefault(change.table, []).append(change)
        for table, changes in groups.items():
            try:
                if table == _FULL_RELOAD.table:
                    await self._cache.full_reload()
                elif any(c.guild_id is None for c in changes):
                    await self._cache.reload(table, None)  # the whole table covers its guilds too
                elif len(changes) == 1:
                    await self._cache.reload(table, changes[0].guild_id)
                else:
                    await self._cache.reload_guilds(table, {c.guild_id for c in changes if c.guild_id is not None})
            except _CONNECTION_ERRORS as exc:
                self._retry_later(changes, exc)
            else:
                self.reload_failures = 0

    def _retry_later(self, changes: list[ConfigChange], exc: BaseException) -> None:
        """Queue the changes again after a backoff: the listener may be fine, so no full reload would cover them."""
        self.reload_failures += 1
        delay = self.backoff_seconds(self.reload_failures)
        log.warning(
            "config_reload_failed",
            table=changes[0].table,
            guild_id=changes[0].guild_id if len(changes) == 1 else None,
            guilds=len(changes),
            error=f"{type(exc).__name__}: {exc}"[:200],
            retry_in_s=round(delay, 2),
        )
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._retries.discard(handle)
            for change in changes:
                self._enqueue(change)

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._retries.add(handle)
