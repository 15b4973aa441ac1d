"""Dropped announcements are summarised: one WARNING per channel per interval, with counts (pure, no I/O)."""

from __future__ import annotations

from synapse_async.announce.drops import DropSummary

GENERAL, HELP = 11, 12


def test_the_first_drop_is_reported_at_once_and_the_rest_of_the_window_is_counted() -> None:
    drops = DropSummary(60)
    first = drops.note(GENERAL, reason="channel_queue_full", kind="level_up", guild_id=1, now=0.0)
    assert first == [
        {
            "channel_id": GENERAL,
            "guild_id": 1,
            "count": 1,
            "reasons": {"channel_queue_full": 1},
            "kinds": {"level_up": 1},
        }
    ]
    for i in range(500):  # an outage's backlog: nothing more is logged inside the window
        assert drops.note(GENERAL, reason="channel_queue_full", kind="level_up", guild_id=1, now=1.0 + i / 10) == []
    assert drops.due(59.0) == []
    summary = drops.due(60.0)
    assert summary == [
        {
            "channel_id": GENERAL,
            "guild_id": 1,
            "count": 500,
            "reasons": {"channel_queue_full": 500},
            "kinds": {"level_up": 500},
        }
    ]
    assert drops.due(1000.0, force=True) == []  # nothing counted twice


def test_channels_are_summarised_separately_and_a_late_drop_closes_the_old_window() -> None:
    drops = DropSummary(10)
    assert len(drops.note(GENERAL, reason="total_queue_full", kind="level_up", guild_id=1, now=0)) == 1
    assert len(drops.note(HELP, reason="refused", kind="achievement", guild_id=1, now=1)) == 1
    assert drops.note(GENERAL, reason="shut_down", kind="achievement", guild_id=1, now=2) == []
    late = drops.note(GENERAL, reason="total_queue_full", kind="level_up", guild_id=1, now=12)
    # The finished window's summary, then the new window's first drop.
    assert [(r["count"], r["reasons"]) for r in late] == [(1, {"shut_down": 1}), (1, {"total_queue_full": 1})]


def test_a_forced_flush_reports_every_open_window_with_counts() -> None:
    drops = DropSummary(60)
    drops.note(None, reason="shut_down", kind="level_up", guild_id=1, now=0)
    drops.note(None, reason="shut_down", kind="level_up", guild_id=1, now=1)
    drops.note(None, reason="shut_down", kind="award", guild_id=1, now=2)
    assert drops.due(3, force=True) == [
        {
            "channel_id": None,
            "guild_id": 1,
            "count": 2,
            "reasons": {"shut_down": 2},
            "kinds": {"award": 1, "level_up": 1},
        }
    ]
