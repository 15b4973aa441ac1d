"""The pipeline benchmark's summaries (bench/_stats.py): achieved pace reported, lost events counted, never raised."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from _stats import summarize


def test_reports_the_pace_actually_achieved_not_the_one_asked_for() -> None:
    # 101 events received 2 ms apart (500/s, although 1,000/s may have been asked), each committed 3 ms later.
    commits = [(i * 2_000_000 + 3_000_000, i * 2_000_000) for i in range(101)]
    phase = summarize(commits, dispatched=101)
    assert phase.received_per_s == pytest.approx(500.0)
    assert phase.p50_ms == pytest.approx(3.0) and phase.p99_ms == pytest.approx(3.0)
    assert phase.lost == 0


def test_lost_events_are_counted_instead_of_raising() -> None:
    commits = [(10_000_000 + i, i * 1_000_000) for i in range(10)]
    phase = summarize(commits, dispatched=25)
    assert (phase.committed, phase.lost) == (10, 15)
    nothing = summarize([], dispatched=25)
    assert (nothing.lost, nothing.received_per_s, nothing.p99_ms) == (25, 0.0, 0.0)
