"""The JSON rows of a set-based message batch and the per-message member rows recovered from the final ones (no I/O).

The integration test (tests/integration/test_pipeline_batching.py) proves batch = one-by-one on the database; this
one pins down the pure parts it relies on: per-member sums, the name/avatar rules of the one-by-one upsert, rows
sorted by user, counters summed per (member, period), and the row after each message.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from synapse_async.domain.events import MemberRef, MessageCreated
from synapse_async.domain.metadata import derive_metadata
from synapse_async.pipeline.batch import MessageBatch, PlannedMessage, row_after, xp_after
from synapse_async.pipeline.lake import LakeRow
from synapse_async.rewards.formula import Reward

GUILD = 1
AT = datetime(2026, 3, 1, tzinfo=UTC)


def _plan(i: int, user: int, name: str, avatar: str | None, xp: int, season: int | None) -> PlannedMessage:
    event = MessageCreated(
        guild_id=GUILD,
        occurred_at=AT + timedelta(seconds=10 - i),  # out of order: the latest time is the FIRST message's
        channel_id=5,
        parent_id=None,
        message_id=100 + i,
        author=MemberRef(user_id=user, display_name=name, avatar_hash=avatar),
        meta=derive_metadata("hello"),
    )
    return PlannedMessage(event, Reward(xp, 1, None, {}), season, None, ("lifetime",) if season else ())


def _args(plans: list[PlannedMessage]) -> tuple[list[list[Any]], ...]:
    messages, counters, members, seasons = (json.loads(a) for a in MessageBatch(plans).arguments())
    return messages, counters, members, seasons


def _at(seconds: int) -> str:
    """A time as the statement receives it: RFC 3339 with its UTC offset (PostgreSQL reads it back exactly)."""
    return (AT + timedelta(seconds=seconds)).isoformat()


def test_members_are_summed_sorted_and_keep_the_one_by_one_name_rules() -> None:
    plans = [
        _plan(0, 20, "Bea", "a1", 10, 7),
        _plan(1, 10, "Al", None, 5, 7),
        _plan(2, 20, "20", None, 15, None),  # the bare id never replaces a name; no avatar keeps the last one
        _plan(3, 10, "Alan", "x9", 0, 7),
    ]
    messages, counters, members, seasons = _args(plans)
    assert members == [
        [GUILD, 10, "Alan", "x9", 5, 2, 2, _at(9)],
        [GUILD, 20, "Bea", "a1", 25, 2, 2, _at(10)],
    ]
    assert seasons == [[7, 10, GUILD, 2, 5, 2], [7, 20, GUILD, 1, 10, 1]]
    assert counters == [[GUILD, 10, "lifetime", 2], [GUILD, 20, "lifetime", 1]]
    # Messages in event order: guild, user, channel, message id, reward key, season, xp, stars, zero reason,
    # details, time, then the lake's key, target and payload (none here).
    assert [m[:5] for m in messages] == [
        [GUILD, u, 5, 100 + i, f"msg:{100 + i}"] for i, u in enumerate([20, 10, 20, 10])
    ]
    assert messages[0][5:] == [7, 10, 1, None, {}, _at(10), None, None, None]


def test_snowflakes_and_lake_rows_keep_every_digit() -> None:
    """A 64-bit snowflake is a JSON integer, never a float; the lake row's payload is a nested object."""
    big = 1460000000000000001
    event = dataclasses.replace(_plan(0, big, "x", None, 1, None).event, guild_id=big, message_id=big + 2)
    lake = LakeRow("message_create", big, 5, big + 3, "msg:x", {"message_id": str(big + 2), "length": 5}, AT)
    plan = PlannedMessage(event, Reward(1, 0, None, {"quality": 1.25}), None, lake, ("lifetime",))
    messages, counters, _members, _seasons = _args([plan])
    assert messages == [
        [big, big, 5, big + 2, f"msg:{big + 2}", None, 1, 0, None, {"quality": 1.25}, _at(10), "msg:x", big + 3,
         {"message_id": str(big + 2), "length": 5}],
    ]  # fmt: skip
    assert counters == [[big, big, "lifetime", 1]]


def test_a_member_never_seen_keeps_the_bare_id() -> None:
    _messages, _counters, members, _seasons = _args([_plan(0, 30, "30", None, 1, None)])
    assert members[0][2:4] == ["30", None]


def test_the_row_after_each_message_is_the_final_row_minus_what_came_later() -> None:
    plans = [_plan(0, 20, "B", None, 10, None), _plan(1, 10, "A", None, 5, None), _plan(2, 20, "B", None, 15, None)]
    finals = {
        (GUILD, 20): {"xp": 125, "lifetime_stars": 12, "messages_sent": 7, "level": 3},
        (GUILD, 10): {"xp": 5, "lifetime_stars": 1, "messages_sent": 1, "level": 1},
    }
    afters = MessageBatch(plans).afters(finals)
    rows = [row_after(a) for a in afters]
    assert [xp_after(a) for a in afters] == [r["xp"] for r in rows]
    assert [(r["xp"], r["lifetime_stars"], r["messages_sent"], r["level"]) for r in rows] == [
        (110, 11, 6, 3),
        (5, 1, 1, 1),
        (125, 12, 7, 3),
    ]
