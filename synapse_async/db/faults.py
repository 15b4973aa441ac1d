"""What a database failure says about the work that hit it, and the one way the project retries (SPEC §8.2, §27 #10).

A fault is not a verdict on the data. Every writer (pipeline lanes, economy services, jobs, guild sync, settings)
asks `classify` the same question: did this fail because of the data we sent, or because of the connection, the
server or contention? The answer is derived from the *cause*, not from a list of exception classes:

- `TRANSIENT`: the connection is closed, broken or was terminated (whatever exception the driver chose to report
  it with, including `Transaction.__aexit__` on a closed connection), the server is shutting down or refusing
  connections, the pool had no connection in time, the statement timed out, or the transaction lost a
  serialization/deadlock race. This includes *outcome unknown*: a COMMIT whose acknowledgement never arrived may
  or may not have happened. Retrying is safe because every write is keyed (journal idempotency keys, request ids,
  job ids), so a replay of committed work is recognised and pays nothing twice.
- `DATA`: PostgreSQL rejected what we sent: SQLSTATE class 22 (data exception) or 23 (integrity constraint
  violation). Only this may drop a pipeline event, and only that one event.
- `UNKNOWN`: anything else (a bug, a schema mismatch). Not a verdict on the data either; callers retry it a few
  times and decide with the database's health in hand (see `pipeline/lanes.py`).

`retry_transient` is the single retry loop: exponential backoff with jitter, capped, optionally bounded in
attempts, calling a hook before each wait so callers can count, log and enforce their own bounds.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
from sqlalchemy import exc as sa_exc

T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database cannot serve this request now (pool timeout, connection lost, server shutting down)."""


class ConnectionLost(DatabaseUnavailable):
    """The connection closed while work was in flight on it: the outcome (even of a COMMIT) is unknown."""


class Fault(enum.Enum):
    TRANSIENT = "transient"
    DATA = "data"
    UNKNOWN = "unknown"


# SQLSTATE classes whose every member is about the connection, the server or contention (retry).
_TRANSIENT_CLASSES = frozenset(
    {
        "08",  # connection exception
        "40",  # transaction rollback: serialization failure, deadlock, statement completion unknown
        "53",  # insufficient resources: too many connections, out of memory, disk full
        "57",  # operator intervention: admin/crash shutdown, cannot connect now, query canceled (timeout)
        "58",  # system error: I/O error
    }
)
_TRANSIENT_STATES = frozenset(
    {
        "55P03",  # lock_not_available (lock_timeout)
        "25P03",  # idle_in_transaction_session_timeout
        "XX000",  # internal_error: the server's own fault, not ours
    }
)
# SQLSTATE classes that are provably about the data written.
_DATA_CLASSES = frozenset({"22", "23"})
# How asyncpg and SQLAlchemy word "the connection is gone" when they raise a generic interface error for it.
_CLOSED_WORDS = ("connection is closed", "connection was closed", "underlying connection is closed")


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, the driver error SQLAlchemy wrapped, and their causes/contexts (each once, bounded)."""
    seen: set[int] = set()
    stack = [error]
    while stack and len(seen) < 16:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        for linked in (current.__context__, current.__cause__, orig if isinstance(orig, BaseException) else None):
            if linked is not None:
                stack.append(linked)


def _sqlstate(error: BaseException) -> str | None:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return state if isinstance(state, str) and len(state) == 5 else None


def _says_connection_closed(error: BaseException) -> bool:
    if not isinstance(error, asyncpg.InterfaceError | sa_exc.InterfaceError | sa_exc.ResourceClosedError):
        return False
    message = str(error).lower()
    return any(words in message for words in _CLOSED_WORDS)


def _transient_by_cause(error: BaseException) -> bool:
    if isinstance(error, DatabaseUnavailable | sa_exc.TimeoutError | TimeoutError | OSError):
        return True  # includes ConnectionResetError / ConnectionRefusedError and every other socket failure
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, asyncpg.PostgresConnectionError):  # ConnectionDoesNotExistError, ConnectionFailureError
        return True
    if _says_connection_closed(error):
        return True
    state = _sqlstate(error)
    return state is not None and (state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES)


def classify(error: BaseException, *, connection_closed: bool = False) -> Fault:
    """Why did this work fail? `connection_closed`: the caller saw its connection closed afterwards."""
    if connection_closed:
        return Fault.TRANSIENT
    chain = list(_chain(error))
    # Connection trouble anywhere in the chain wins: a rollback that failed on a dead connection (raised from
    # `Transaction.__aexit__`) hides the real cause in __context__, and the data was never the problem.
    if any(_transient_by_cause(e) for e in chain):
        return Fault.TRANSIENT
    for e in chain:
        state = _sqlstate(e)
        if state is not None and state[:2] in _DATA_CLASSES:
            return Fault.DATA
    return Fault.UNKNOWN


def is_transient(error: BaseException) -> bool:
    """True for errors that go away by themselves: retry, or answer 503 / the busy reply, never 500."""
    return classify(error) is Fault.TRANSIENT


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff `base_delay` doubling to `max_delay` (±20 % jitter); `attempts` None means until it works."""

    base_delay: float = 0.5
    max_delay: float = 30.0
    attempts: int | None = 6

    def delays(self) -> Iterator[float]:
        delay = self.base_delay
        while True:
            yield delay * random.uniform(0.8, 1.2)  # jitter, not cryptography
            delay = min(delay * 2, self.max_delay)


OnRetry = Callable[[int, BaseException, float], None]

# Writers whose caller is waiting (a command, an HTTP request, a Discord listener): a few attempts over ~4 s, then
# the transient error is raised (busy reply / 503 / "the next GUILD_CREATE syncs again").
INTERACTIVE = RetryPolicy(base_delay=0.25, max_delay=2.0, attempts=5)
# Background writers that must not give up quickly (guild sync after READY, job bookkeeping): ~1 minute.
BACKGROUND = RetryPolicy(base_delay=0.5, max_delay=30.0, attempts=6)


def log_retries(what: str, **context: object) -> OnRetry:
    """An `on_retry` hook that logs one WARNING per retry with the error class only (never its text: §24)."""
    from synapse_async.obs.logging import get_logger

    log = get_logger(__name__)

    def hook(attempt: int, error: BaseException, delay: float) -> None:
        log.warning(
            "db_retry", what=what, attempt=attempt, delay_s=round(delay, 3), error=type(error).__name__, **context
        )

    return hook


async def retry_transient(
    op: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    on_retry: OnRetry | None = None,
) -> T:
    """Run `op` until it succeeds; retry TRANSIENT faults per `policy`, raise anything else at once.

    `on_retry(attempt, error, delay)` runs before each wait (count, log, enforce buffer bounds). When the attempts
    are exhausted the last transient error is raised, so callers answer 503 / the busy reply.
    """
    delays = policy.delays()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await op()
        except Exception as exc:
            if not is_transient(exc) or (policy.attempts is not None and attempt >= policy.attempts):
                raise
            delay = next(delays)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            await asyncio.sleep(delay)
