"""Pure summaries of what a benchmark run committed, so a run that loses events still reports instead of raising.

`commits` are `(commit_ns, receive_ns)` pairs (monotonic clock) of committed events, in commit order.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Phase:
    """One benchmark phase: what was dispatched, what committed, and the rates and latencies achieved."""

    dispatched: int
    committed: int
    received_per_s: float  # the rate the events actually arrived at (the achieved pace, not the requested one)
    committed_per_s: float  # first receive → last commit
    p50_ms: float
    p99_ms: float

    @property
    def lost(self) -> int:
        return max(self.dispatched - self.committed, 0)


def summarize(commits: Sequence[tuple[int, int]], dispatched: int) -> Phase:
    """Rates and latency percentiles of one phase; zeros when nothing committed (never an exception)."""
    if not commits:
        return Phase(dispatched, 0, 0.0, 0.0, 0.0, 0.0)
    received = sorted(r for _, r in commits)
    span_received = (received[-1] - received[0]) / 1e9
    received_per_s = (len(received) - 1) / span_received if span_received > 0 else 0.0
    span_total = (max(c for c, _ in commits) - received[0]) / 1e9
    committed_per_s = len(commits) / span_total if span_total > 0 else 0.0
    latencies = sorted((c - r) / 1e6 for c, r in commits)
    p99 = latencies[max(int(len(latencies) * 0.99) - 1, 0)]
    return Phase(dispatched, len(commits), received_per_s, committed_per_s, statistics.median(latencies), p99)
