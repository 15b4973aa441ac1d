"""The pages' pure helpers: number and time formats, progress, chart geometry, the accent's text colour."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from synapse_async.web import charts
from synapse_async.web import format as fmt
from synapse_async.web.pages import ACCENTS, on_accent

NOW = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (999, "999"), (1000, "1,000"), (1234567, "1,234,567"), (-4200, "-4,200"), (12.5, "12.5")],
)
def test_numbers_have_thousands_separators(value: int | float, text: str) -> None:
    assert fmt.number(value) == text


def test_compact_numbers() -> None:
    assert [fmt.compact(v) for v in (950, 1000, 12_345, 4_500_000, 2_000_000_000)] == [
        "950",
        "1K",
        "12.3K",
        "4.5M",
        "2B",
    ]


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=-20), "just now"),
        (timedelta(minutes=-1), "1 minute ago"),
        (timedelta(hours=-3, minutes=-5), "3 hours ago"),
        (timedelta(days=-1), "1 day ago"),
        (timedelta(days=-45), "1 month ago"),
        (timedelta(days=-800), "2 years ago"),
        (timedelta(days=2, hours=1), "in 2 days"),
        (timedelta(seconds=30), "in under a minute"),
    ],
)
def test_relative_times(delta: timedelta, text: str) -> None:
    assert fmt.relative(NOW + delta, NOW) == text


def test_countdown_and_absolute_times() -> None:
    assert fmt.duration(0) == "ended"
    assert fmt.duration(3 * 86400 + 4 * 3600 + 59) == "3d 4h"
    assert fmt.duration(5 * 3600 + 12 * 60) == "5h 12m"
    assert fmt.duration(20) == "1m"
    assert fmt.utc_title(NOW) == "2026-12-06 20:00 UTC"
    assert fmt.iso(NOW) == "2026-12-06T20:00:00Z"


def test_progress_is_clamped_whole_percent() -> None:
    assert fmt.percent(25, 125) == 20
    assert fmt.percent(0, 0) == 0
    assert fmt.percent(200, 100) == 100
    assert fmt.percent(-5, 100) == 0
    filled, whole = fmt.ring_dash(50, 10)
    assert whole == pytest.approx(62.83, abs=0.01) and filled == pytest.approx(whole / 2, abs=0.01)


def test_medals_only_for_the_top_three() -> None:
    assert [fmt.medal(r) for r in (1, 2, 3, 4)] == ["🥇", "🥈", "🥉", None]


def test_nice_axis_maximum() -> None:
    assert [charts.nice_max(v) for v in (0, 1, 3, 7, 10, 11, 24, 26, 99, 1001)] == [
        1,
        1,
        5,
        10,
        10,
        20,
        25,
        50,
        100,
        2000,
    ]


def test_stacked_days_geometry() -> None:
    days = charts.days_back(date(2026, 12, 6), 3)
    assert days == [date(2026, 12, 4), date(2026, 12, 5), date(2026, 12, 6)]
    values = {(days[0], "a"): 2, (days[0], "b"): 3, (days[2], "a"): 10}
    chart = charts.stacked_days(days, values, ("a", "b"))
    assert not chart.empty
    first = [b for b in chart.bars if b.label == "2026-12-04"]
    assert [b.series for b in first] == ["a", "b"]  # stacked bottom-up in series order
    assert first[1].y + first[1].height == pytest.approx(first[0].y)
    tallest = next(b for b in chart.bars if b.label == "2026-12-06")
    assert tallest.y == pytest.approx(charts.TOP)  # 10 is the axis maximum: the column fills the plot
    assert all(b.x + b.width <= charts.WIDTH - charts.RIGHT + 0.01 for b in chart.bars)
    assert [t.label for t in chart.ticks] == ["0", "5", "10"]
    assert charts.stacked_days(days, {}, ("a",)).empty


def _contrast(a: str, b: str) -> float:
    def lum(c: str) -> float:
        def ch(h: str) -> float:
            v = int(h, 16) / 255
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        r, g, bl = (ch(c[i : i + 2]) for i in (1, 3, 5))
        return 0.2126 * r + 0.7152 * g + 0.0722 * bl

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("colour", [*ACCENTS, "#ffffff", "#000000", "#f1c40f", "#5865f2"])
def test_text_on_the_accent_is_readable(colour: str) -> None:
    assert _contrast(colour, on_accent(colour)) >= 4.5


def test_default_accents_take_white_text() -> None:
    assert all(on_accent(c) == "#ffffff" and _contrast(c, "#ffffff") >= 4.5 for c in ACCENTS)
