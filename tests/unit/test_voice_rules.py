"""Voice tick eligibility and slots (SPEC §7.3): pure rules."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from synapse_async.rewards.voice import VoicePresence, eligible_members, slot_start

AFK = 99
RULES = {"afk_channel_id": AFK, "skip_afk": True, "skip_muted_deafened": True, "require_others": True}


def test_alone_in_a_channel_earns_nothing_when_others_are_required() -> None:
    present = {1: VoicePresence(10, False, False)}
    assert eligible_members(present, **RULES) == set()
    assert eligible_members(present, **{**RULES, "require_others": False}) == {1}


def test_muted_and_deafened_members_neither_earn_nor_count_as_company() -> None:
    present = {1: VoicePresence(10, False, False), 2: VoicePresence(10, True, True)}
    assert eligible_members(present, **RULES) == set()
    present[3] = VoicePresence(10, True, False)  # muted only: still active
    assert eligible_members(present, **RULES) == {1, 3}
    assert eligible_members(present, **{**RULES, "skip_muted_deafened": False}) == {1, 2, 3}


def test_afk_channel_is_skipped_per_channel() -> None:
    present = {1: VoicePresence(AFK, False, False), 2: VoicePresence(AFK, False, False)}
    assert eligible_members(present, **RULES) == set()
    assert eligible_members(present, **{**RULES, "skip_afk": False}) == {1, 2}


def test_company_must_be_in_the_same_channel() -> None:
    present = {1: VoicePresence(10, False, False), 2: VoicePresence(11, False, False)}
    assert eligible_members(present, **RULES) == set()


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False), st.integers(min_value=1, max_value=60))
def test_slots_are_multiples_of_the_tick_since_the_epoch(now: float, minutes: int) -> None:
    slot = slot_start(now, minutes)
    assert slot % (minutes * 60) == 0
    assert slot <= now < slot + minutes * 60


def test_tracker_classifies_updates_and_remembers_join_times() -> None:
    from datetime import UTC, datetime, timedelta

    from synapse_async.domain.voice import VoiceTracker

    tracker = VoiceTracker()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert tracker.update(1, 7, 10, t0, muted=False, deafened=False) == ("join", None)
    assert tracker.update(1, 7, 10, t0 + timedelta(seconds=5), muted=True, deafened=False) is None  # state only
    change = tracker.update(1, 7, 11, t0 + timedelta(seconds=30), muted=True, deafened=False)
    assert change is not None and change[0] == "move" and change[1] is not None
    assert (change[1].channel_id, change[1].since, change[1].muted) == (10, t0, True)
    assert tracker.count_in(1, 11) == 1
    leave = tracker.update(1, 7, None, t0 + timedelta(seconds=90), muted=False, deafened=False)
    assert leave is not None and leave[0] == "leave" and leave[1] is not None and leave[1].channel_id == 11
    assert tracker.update(1, 7, None, t0, muted=False, deafened=False) is None  # already gone
    assert len(tracker) == 0


def test_a_move_keeps_the_time_in_voice_and_a_rebuild_keeps_both_times() -> None:
    from datetime import UTC, datetime, timedelta

    from synapse_async.domain.voice import VoiceTracker

    tracker = VoiceTracker()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    tracker.update(1, 7, 10, t0, muted=False, deafened=False)
    tracker.update(1, 7, 11, t0 + timedelta(seconds=30), muted=False, deafened=False)
    entry = tracker.entry(1, 7)
    assert entry is not None and (entry.since, entry.in_voice_since) == (t0 + timedelta(seconds=30), t0)
    later = t0 + timedelta(minutes=5)
    tracker.rebuild(1, [(7, 11, True, False), (8, 11, False, False)], later)  # a reconnect's GUILD_CREATE
    kept, new = tracker.entry(1, 7), tracker.entry(1, 8)
    assert kept is not None and (kept.since, kept.in_voice_since, kept.muted) == (t0 + timedelta(seconds=30), t0, True)
    assert new is not None and (new.since, new.in_voice_since) == (later, later)


async def test_a_slot_is_paid_only_to_members_in_voice_since_it_started() -> None:
    """A guild whose voice emptied and refilled mid-slot: the refill must not be paid for that slot (SPEC §7.3)."""
    from datetime import UTC, datetime

    from sqlalchemy.ext.asyncio import create_async_engine

    from synapse_async.cache.config_cache import ConfigCache
    from synapse_async.domain.events import MemberRef, VoiceTick
    from synapse_async.domain.voice import VoiceTracker
    from synapse_async.tasks.voice_ticker import VoiceTicker

    guild, lounge, a, b = 1, 10, 7, 8
    size = 600  # the default `voice.tick_minutes` (10)
    base = 1_800_000_000 // size * size
    engine = create_async_engine("postgresql+asyncpg://unused@127.0.0.1/unused")  # never connects: defaults only
    ticks: list[VoiceTick] = []
    clock = [base + 1.0]
    tracker = VoiceTracker()
    ticker = VoiceTicker(
        tracker,
        ConfigCache(engine),
        ticks.append,
        lambda _g, u: MemberRef(user_id=u, display_name=str(u), avatar_hash=None),
        clock=lambda: clock[0],
    )

    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, tz=UTC)

    def move(user: int, channel: int | None, when: float) -> None:
        tracker.update(guild, user, channel, at(when), muted=False, deafened=False)

    move(a, lounge, base - 30)
    move(b, lounge, base - 20)
    await ticker.check()  # aligns to the slot at `base`
    move(a, None, base + 100)
    move(b, None, base + 110)  # the channel empties …
    clock[0] = base + size + 1
    await ticker.check()  # … so nobody is looked at when the next slot starts
    move(a, lounge, base + size + 50)
    move(b, lounge, base + size + 60)  # … and refills after that slot started
    clock[0] = base + size + 70
    await ticker.check()
    assert ticks == []
    clock[0] = base + 2 * size + 1
    await ticker.check()
    assert [(t.member.user_id, t.occurred_at) for t in ticks] == [(a, at(base + 2 * size)), (b, at(base + 2 * size))]
    await engine.dispose()
