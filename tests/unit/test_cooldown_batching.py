"""A micro-batch decides message cooldowns exactly like one-by-one processing (SPEC §8.1, §9.3), with no I/O.

The processor's message reward reads the cooldown through the transaction's provisional overlay; one-by-one, each
event is its own transaction whose cooldowns are applied to the cache after commit. Both must pay the same
messages for ANY event order, including event times that arrive out of order (a later paid message never lets an
earlier time become "the last paid").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_async.domain.events import MemberRef, MessageCreated
from synapse_async.domain.metadata import derive_metadata
from synapse_async.ledger import Tx
from synapse_async.pipeline.cooldowns import CooldownCache
from synapse_async.pipeline.processor import Processor
from synapse_async.rewards.config import GuildConfig
from synapse_async.settings import ResolvedSettings

GUILD = 100000000000000001
BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
META = derive_metadata("hello there, how is everyone doing")


def _processor(guild: GuildConfig) -> Processor:
    # The reward decision reads only the guild passed in and the cooldown cache; no cache or database behind it.
    return Processor(cache=None, cooldowns=CooldownCache(1000))  # type: ignore[arg-type]


def _event(i: int, user: int, channel: int, offset: int) -> MessageCreated:
    return MessageCreated(
        guild_id=GUILD,
        occurred_at=BASE + timedelta(seconds=offset),
        channel_id=200 + channel,
        parent_id=None,
        message_id=10_000 + i,
        author=MemberRef(user_id=300 + user, display_name="m", avatar_hash=None),
        meta=META,
    )


def _tx() -> Tx:
    return Tx(conn=None, singles=False)  # type: ignore[arg-type]


def batched(guild: GuildConfig, events: list[MessageCreated]) -> list[Any]:
    processor, tx = _processor(guild), _tx()
    out = [processor._message_reward(tx, guild, e)[0].zero_reason for e in events]
    processor.committed(tx.effects)
    return out


def one_by_one(guild: GuildConfig, events: list[MessageCreated]) -> list[Any]:
    processor, out = _processor(guild), []
    for event in events:
        tx = _tx()
        out.append(processor._message_reward(tx, guild, event)[0].zero_reason)
        processor.committed(tx.effects)
    return out


@settings(max_examples=300, deadline=None)
@given(
    seconds=st.integers(min_value=0, max_value=120),
    scope=st.sampled_from(["user", "channel"]),
    items=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(0, 300)), min_size=1, max_size=25),
)
def test_batch_cooldowns_equal_one_by_one(seconds: int, scope: str, items: list[tuple[int, int, int]]) -> None:
    guild = GuildConfig(GUILD, settings=ResolvedSettings({"cooldown.seconds": seconds, "cooldown.scope": scope}))
    events = [_event(i, user, channel, offset) for i, (user, channel, offset) in enumerate(items)]
    assert batched(guild, events) == one_by_one(guild, events)


def test_an_earlier_paid_time_does_not_replace_the_latest_in_the_overlay() -> None:
    """The counterexample spelled out: paid at 100 s, then an out-of-order message at 50 s (also paid, since a
    later paid message does not block it), then one at 120 s — inside the cooldown of the 100 s message."""
    guild = GuildConfig(GUILD, settings=ResolvedSettings({"cooldown.seconds": 60}))
    events = [_event(0, 0, 0, 100), _event(1, 0, 0, 50), _event(2, 0, 0, 120)]
    assert one_by_one(guild, events) == [None, None, "cooldown"]
    assert batched(guild, events) == [None, None, "cooldown"]
