"""Pure hardening logic, without I/O: the snowflake parser, the rate limiter, error summaries, client IPs."""

from __future__ import annotations

import errno

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from synapse_async.api.body import json_depth_exceeds
from synapse_async.api.ratelimit import SlidingWindowLimiter
from synapse_async.db.errors import ErrorSummary
from synapse_async.db.faults import DatabaseUnavailable
from synapse_async.domain.snowflakes import SNOWFLAKE_MAX, InvalidSnowflake, parse_snowflake, to_snowflake


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("²", "invalid_type"),
        ("١٢٣", "invalid_type"),  # Arabic-Indic digits: int() accepts them
        ("１２３", "invalid_type"),  # fullwidth digits
        ("1" * 5000, "out_of_range"),  # int() refuses > 4,300 digits with a ValueError
        ("0" * 21 + "1", "out_of_range"),  # more than 20 digits, even if the value is small
        (str(2**63), "out_of_range"),
        ("0", "out_of_range"),
        (0, "out_of_range"),
        (-1, "out_of_range"),
        (2**64, "out_of_range"),
        ("", "invalid_type"),
        (" 1", "invalid_type"),
        ("1\n", "invalid_type"),
        ("+1", "invalid_type"),
        ("1_000", "invalid_type"),
        (True, "invalid_type"),
        (1.0, "invalid_type"),
        (None, "invalid_type"),
    ],
)
def test_snowflake_parser_refuses_what_isdigit_and_int_let_through(value: object, problem: str) -> None:
    with pytest.raises(InvalidSnowflake) as refused:
        to_snowflake(value)
    assert refused.value.problem == problem
    assert parse_snowflake(value) is None


@given(st.integers(1, SNOWFLAKE_MAX))
def test_snowflake_parser_accepts_every_id_as_string_and_int(n: int) -> None:
    assert to_snowflake(n) == to_snowflake(str(n)) == n


def test_snowflake_parser_bounds() -> None:
    assert to_snowflake(str(SNOWFLAKE_MAX)) == SNOWFLAKE_MAX
    assert to_snowflake("00000000000000000001") == 1  # 20 digits are allowed


def test_json_depth() -> None:
    nested: object = 1
    for _ in range(32):
        nested = [nested]
    assert not json_depth_exceeds(nested)
    assert json_depth_exceeds([nested])
    assert json_depth_exceeds({"a": {"b": [nested]}})
    assert not json_depth_exceeds({"a": 1, "b": [1, 2, {"c": None}]})


class FakeClock:
    def __init__(self, now: float = 6000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_rate_limit_allows_the_limit_then_refuses_with_retry_after() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, clock=clock)
    assert [limiter.hit("a").remaining for _ in range(3)] == [2, 1, 0]
    refused = limiter.hit("a")
    assert not refused.allowed and refused.headers()["Retry-After"] == str(refused.reset_seconds)
    assert limiter.hit("b").allowed  # other clients are unaffected
    # The refusal was not counted, and the window slides: after Retry-After the client gets a request again.
    clock.now += refused.reset_seconds
    assert limiter.hit("a").allowed
    assert not limiter.hit("a").allowed


def test_rate_limit_previous_window_still_counts_while_it_overlaps() -> None:
    clock = FakeClock(6059.0)  # one second before a window boundary
    limiter = SlidingWindowLimiter(10, clock=clock)
    for _ in range(10):
        assert limiter.hit("a").allowed
    clock.now = 6061.0  # a new fixed window, but the last 60 s still hold those 10 requests
    assert not limiter.hit("a").allowed
    clock.now = 6059.0 + 60 + 1  # the old window has slid out almost entirely
    assert limiter.hit("a").allowed


def test_rate_limit_map_is_bounded() -> None:
    limiter = SlidingWindowLimiter(1, max_clients=100, clock=FakeClock())
    for i in range(1000):
        limiter.hit(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100
    assert not limiter.hit("10.0.3.231").allowed  # the most recent clients are still tracked


def test_error_summary_never_carries_the_message() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('db.internal.example', 5432)")
    assert ErrorSummary.of(refused).as_json() == {"class": "ConnectionRefusedError", "code": "ECONNREFUSED"}
    auth = asyncpg.InvalidPasswordError('password authentication failed for user "synapse_admin"')
    assert ErrorSummary.of(auth).as_json() == {"class": "InvalidPasswordError", "code": "28P01"}
    assert ErrorSummary.of(TimeoutError()).code == "timeout"
    assert ErrorSummary.of(DatabaseUnavailable("pool at db.internal")).code == "transient"
    assert ErrorSummary.of(KeyError("SELECT secret FROM t")).as_json() == {"class": "KeyError", "code": "internal"}
