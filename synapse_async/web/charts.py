"""Charts as SVG drawn on the server (SPEC §28.1: no chart library, no script needed to read a chart).

Pure geometry: each function turns a series into rectangles, ticks and labels with coordinates in a fixed
viewBox; the templates draw them with a handful of `<rect>` and `<text>` elements and show the same numbers in a
table. Heights scale to a "nice" maximum (1, 2, 2.5 or 5 × 10ⁿ) so the axis reads in round numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

WIDTH = 640
HEIGHT = 200
LEFT = 56  # room for the y labels
RIGHT = 28  # room for the last x label, centred on the last column
BOTTOM = 30  # room for the x labels
TOP = 12


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str
    value: int
    label: str


@dataclass(frozen=True, slots=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True, slots=True)
class XLabel:
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    labels: tuple[XLabel, ...]
    baseline: float
    left: int
    empty: bool


def nice_max(value: int) -> int:
    """The smallest 1, 2, 2.5, 5 × 10ⁿ ≥ `value` (at least 1)."""
    if value <= 1:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 2.5, 5, 10):
        top = int(step * magnitude)
        if top >= value:
            return top
    return 10 * magnitude


def days_back(today: date, count: int) -> list[date]:
    """The last `count` UTC days, oldest first, ending with `today`."""
    return [today - timedelta(days=count - 1 - i) for i in range(count)]


def _short(value: int) -> str:
    for size, suffix in ((1_000_000, "M"), (1_000, "K")):
        if value >= size:
            return f"{value / size:.1f}".removesuffix(".0") + suffix
    return str(value)


def stacked_days(days: Sequence[date], values: Mapping[tuple[date, str], int], series: Sequence[str]) -> Chart:
    """One column per day, each `series` stacked bottom-up in the given order (missing values are 0)."""
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - BOTTOM - TOP
    baseline = float(HEIGHT - BOTTOM)
    totals = [sum(values.get((d, s), 0) for s in series) for d in days]
    top = nice_max(max(totals, default=0))
    slot = plot_w / max(len(days), 1)
    gap = min(slot * 0.2, 6.0)
    bars: list[Bar] = []
    for i, d in enumerate(days):
        y = baseline
        for s in series:
            v = values.get((d, s), 0)
            if v <= 0:
                continue
            h = plot_h * v / top
            y -= h
            bars.append(
                Bar(
                    round(LEFT + i * slot + gap / 2, 2),
                    round(y, 2),
                    round(slot - gap, 2),
                    round(h, 2),
                    s,
                    v,
                    d.isoformat(),
                )
            )
    ticks = tuple(Tick(round(baseline - plot_h * f, 2), _short(int(top * f))) for f in (0, 0.5, 1))
    every = max(1, len(days) // 6)
    labels = tuple(
        XLabel(round(LEFT + (i + 0.5) * slot, 2), d.strftime("%b %-d"))
        for i, d in enumerate(days)
        if (len(days) - 1 - i) % every == 0
    )
    return Chart(WIDTH, HEIGHT, tuple(bars), ticks, labels, baseline, LEFT, not any(totals))
