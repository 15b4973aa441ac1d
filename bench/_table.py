"""The pure half of `bench/run_all.py`: which figure of which benchmark is held against which target, the parsing
of the benchmarks' `RESULT key=value …` lines, the verdicts and the one table. No I/O, so it is unit-tested on
captured output (tests/unit/test_run_all.py).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Figures = dict[str, float | str]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    "==": operator.eq,
}


@dataclass(frozen=True, slots=True)
class Target:
    """`figure` of `bench`'s RESULT line must satisfy `op threshold` in EVERY run to count as met."""

    bench: str
    figure: str
    op: str
    threshold: float
    what: str  # the target in words, as the issue or SPEC §25 states it
    unit: str = ""

    def met(self, value: float | str | None) -> bool:
        """False when the figure is missing or not a number (a benchmark that failed meets nothing)."""
        if not isinstance(value, float) or math.isnan(value):
            return False
        return _OPS[self.op](value, self.threshold)

    @property
    def goal(self) -> str:
        return f"{self.op} {_fmt(self.threshold)}{' ' + self.unit if self.unit else ''}"


def parse_results(output: str) -> Figures:
    """Every `RESULT key=value …` line of a benchmark's output merged into one mapping (a later line's key wins).

    Numbers become floats; anything else (e.g. `lake=on`) stays a string. Lines that are not RESULT lines are
    ignored, so a benchmark may print whatever it likes before its figures."""
    figures: Figures = {}
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("RESULT "):
            continue
        for pair in line.removeprefix("RESULT ").split():
            key, sep, raw = pair.partition("=")
            if not sep or not key:
                continue
            try:
                figures[key] = float(raw)
            except ValueError:
                figures[key] = raw
    return figures


@dataclass(frozen=True, slots=True)
class Row:
    target: Target
    values: tuple[float | str | None, ...]  # one per run; None when the run produced no such figure

    @property
    def met(self) -> bool:
        return bool(self.values) and all(self.target.met(v) for v in self.values)


def rows(targets: Sequence[Target], runs: Mapping[str, Sequence[Figures | None]]) -> list[Row]:
    """One row per target with the figure of each run of its benchmark (None for a failed run or a missing key)."""
    out = []
    for t in targets:
        per_run = runs.get(t.bench, ())
        out.append(Row(t, tuple(None if r is None else r.get(t.figure) for r in per_run)))
    return out


def render(table_rows: Sequence[Row], *, date: str, box: str, runs: int, quick: bool) -> str:
    """The Markdown table the README shows: benchmark, target, figure per run, met yes/no; then a summary."""
    lines = [
        f"Benchmarks of {date} on {box}; {runs} run{'s' if runs != 1 else ''} each"
        + (" (QUICK sizes: a smoke test, not the targets' sizes)" if quick else ""),
        "",
        "| Benchmark | Target | Goal | " + " | ".join(f"Run {i + 1}" for i in range(runs)) + " | Met |",
        "|---|---|---|" + "---|" * runs + "---|",
    ]
    for row in table_rows:
        cells = [_cell(v) for v in row.values] + ["—"] * (runs - len(row.values))
        lines.append(
            f"| {row.target.bench} | {row.target.what} (`{row.target.figure}`) | {row.target.goal} | "
            + " | ".join(cells)
            + f" | {'yes' if row.met else 'no'} |"
        )
    met = sum(r.met for r in table_rows)
    lines += ["", f"{met} of {len(table_rows)} targets met in every run."]
    return "\n".join(lines)


def _cell(value: float | str | None) -> str:
    if value is None:
        return "failed"
    return _fmt(value) if isinstance(value, float) else value


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.3g}" if abs(value) < 10 else f"{value:,.1f}"


def box_description(cpuinfo: str, meminfo: str, cores: int | None) -> str:
    """'2 cores, 7.8 GiB RAM, <CPU model>' from the texts of /proc/cpuinfo and /proc/meminfo."""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
        "unknown CPU",
    )
    kib = next((int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:")), 0)
    return f"{cores or '?'} cores, {kib / 1024 / 1024:.1f} GiB RAM, {model}"
