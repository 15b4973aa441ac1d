"""The fault classifier decides by cause (SPEC §8.2, §27 #10): pure, no I/O."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from synapse_async.db.faults import (
    ConnectionLost,
    DatabaseUnavailable,
    Fault,
    RetryPolicy,
    classify,
    is_transient,
    retry_transient,
)


def _pg(cls: type[asyncpg.PostgresError], message: str = "boom") -> asyncpg.PostgresError:
    return cls(message)


def _raised_from(outer: BaseException, inner: BaseException) -> BaseException:
    """`outer` raised while handling `inner`, as `Transaction.__aexit__` does after a failed statement."""
    try:
        try:
            raise inner
        except BaseException:
            raise outer  # noqa: B904 - the implicit __context__ is the point
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InterfaceError("cannot call Transaction.__aexit__(): the underlying connection is closed"),
        asyncpg.InterfaceError("connection is closed"),
        _pg(asyncpg.ConnectionDoesNotExistError, "connection was closed in the middle of operation"),
        _pg(asyncpg.AdminShutdownError, "terminating connection due to administrator command"),
        _pg(asyncpg.CrashShutdownError),
        _pg(asyncpg.CannotConnectNowError, "the database system is starting up"),
        _pg(asyncpg.TooManyConnectionsError),
        _pg(asyncpg.SerializationError),
        _pg(asyncpg.DeadlockDetectedError),
        _pg(asyncpg.QueryCanceledError, "canceling statement due to statement timeout"),
        _pg(asyncpg.LockNotAvailableError),
        ConnectionResetError(104, "Connection reset by peer"),
        ConnectionRefusedError(111, "Connection refused"),
        OSError("network unreachable"),
        TimeoutError(),
        sa_exc.TimeoutError("QueuePool limit reached"),
        DatabaseUnavailable("pool timeout"),
        ConnectionLost("lost at COMMIT"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_connection_loss_unknown_outcome_and_contention_are_transient(error: BaseException) -> None:
    assert classify(error) is Fault.TRANSIENT
    assert is_transient(error)


def test_sqlalchemy_wrapped_errors_are_classified_by_their_driver_cause() -> None:
    lost = sa_exc.DBAPIError("COMMIT", None, asyncpg.InterfaceError("x"), connection_invalidated=True)
    assert classify(lost) is Fault.TRANSIENT
    shutdown = sa_exc.OperationalError("SELECT 1", None, _pg(asyncpg.AdminShutdownError))
    assert classify(shutdown) is Fault.TRANSIENT
    check = sa_exc.IntegrityError("INSERT", None, _pg(asyncpg.CheckViolationError))
    assert classify(check) is Fault.DATA


@pytest.mark.parametrize(
    "error",
    [
        _pg(asyncpg.CheckViolationError, 'new row violates check constraint "members_xp_check"'),
        _pg(asyncpg.UniqueViolationError),
        _pg(asyncpg.ForeignKeyViolationError),
        _pg(asyncpg.NotNullViolationError),
        _pg(asyncpg.NumericValueOutOfRangeError),
        _pg(asyncpg.StringDataRightTruncationError),
        _pg(asyncpg.InvalidTextRepresentationError),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_about_the_data_written_are_data_faults(error: BaseException) -> None:
    assert classify(error) is Fault.DATA
    assert not is_transient(error)


def test_a_failed_rollback_on_a_closed_connection_hides_nothing() -> None:
    """A data error followed by the connection dying is still a connection problem: the outcome is unknown."""
    error = _raised_from(
        asyncpg.InterfaceError("cannot call Transaction.rollback(): the underlying connection is closed"),
        _pg(asyncpg.CheckViolationError),
    )
    assert classify(error) is Fault.TRANSIENT
    # And the caller's own observation wins over any exception shape.
    assert classify(_pg(asyncpg.CheckViolationError), connection_closed=True) is Fault.TRANSIENT


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InterfaceError("the server expects 3 arguments for this query, 2 were passed"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        _pg(asyncpg.UndefinedTableError),
        _pg(asyncpg.PostgresSyntaxError),
        TypeError("unsupported operand"),
        KeyError("missing"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_bugs_and_schema_mismatches_are_unknown_never_data(error: BaseException) -> None:
    assert classify(error) is Fault.UNKNOWN


async def test_retry_runs_through_transient_faults_and_reports_each_retry() -> None:
    calls: list[int] = []
    seen: list[tuple[int, str]] = []

    async def op() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise asyncpg.InterfaceError("connection is closed")
        return "ok"

    policy = RetryPolicy(base_delay=0.001, max_delay=0.002, attempts=None)
    result = await retry_transient(op, policy=policy, on_retry=lambda a, e, d: seen.append((a, type(e).__name__)))
    assert result == "ok"
    assert seen == [(1, "InterfaceError"), (2, "InterfaceError")]


async def test_retry_raises_data_faults_at_once_and_transient_ones_after_the_last_attempt() -> None:
    calls = 0

    async def bad_data() -> None:
        nonlocal calls
        calls += 1
        raise _pg(asyncpg.CheckViolationError)

    with pytest.raises(asyncpg.CheckViolationError):
        await retry_transient(bad_data, policy=RetryPolicy(0.001, 0.001, attempts=5))
    assert calls == 1

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionRefusedError(111, "refused")

    calls = 0
    with pytest.raises(ConnectionRefusedError):
        await retry_transient(down, policy=RetryPolicy(0.001, 0.001, attempts=3))
    assert calls == 3


def test_backoff_doubles_to_the_cap_with_bounded_jitter() -> None:
    delays = RetryPolicy(base_delay=0.5, max_delay=4.0).delays()
    got = [next(delays) for _ in range(6)]
    for value, nominal in zip(got, [0.5, 1.0, 2.0, 4.0, 4.0, 4.0], strict=True):
        assert nominal * 0.8 <= value <= nominal * 1.2
