"""`bench/run_all.py`'s pure half (bench/_table.py): RESULT lines parsed from captured output, every target held
against every run, and the one table with its met / not-met verdicts."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from _table import Target, box_description, parse_results, render, rows
from run_all import TARGETS

# Captured from the benchmarks (shortened where the lines are long): the chatter before RESULT must be ignored.
PIPELINE_OUT = """\
ingest-only: 13,602 events/s
lake on: committed 6,040 events/s
RESULT lake=on ingest_per_s=13602.0 pipeline_per_s=6040.0 ratio=0.444 paced_per_s=998.1 p50_ms=2.04 p99_ms=7.24 \
rss_mb=132.0 lost=0 duplicated=0 index_entries_per_message=8.7 db_wait_us=211 burst_batch=241.0 paced_batch=3.1
"""
PIPELINE_FAST = PIPELINE_OUT.replace("ratio=0.444", "ratio=0.512")
PIPELINE_LOSSY = PIPELINE_FAST.replace("lost=0", "lost=3")
GUILDS_OUT = """\
10,002 guilds:                234 MB  (ready 8.1 s after start; 10,002 GUILD_CREATEs received over 4.2 s)
RESULT guilds_mb=233.9 guilds_ready_s=8.1 guilds_after_last_create_s=3.1
"""


def test_result_lines_parse_into_numbers_and_words_and_chatter_is_ignored() -> None:
    figures = parse_results(PIPELINE_OUT)
    assert figures["lake"] == "on"
    assert figures["ratio"] == 0.444 and figures["p99_ms"] == 7.24 and figures["lost"] == 0.0
    assert "ingest-only:" not in figures and len(figures) == 14
    # Several RESULT lines merge; the later one wins; malformed pairs are skipped.
    assert parse_results("RESULT a=1 b=x\nnoise a=9\nRESULT a=2 junk =3") == {"a": 2.0, "b": "x"}
    assert parse_results("Traceback (most recent call last):\n  ...") == {}


def test_a_target_is_met_only_when_every_run_meets_it() -> None:
    ratio = Target("pipeline", "ratio", ">=", 0.50, "committed ÷ ingest")
    lost = Target("pipeline", "lost", "==", 0, "lost")
    p99 = Target("pipeline", "p99_ms", "<=", 20, "p99", "ms")
    runs = {"pipeline": [parse_results(PIPELINE_FAST), parse_results(PIPELINE_OUT), parse_results(PIPELINE_FAST)]}
    by_figure = {r.target.figure: r for r in rows([ratio, lost, p99], runs)}
    assert by_figure["ratio"].values == (0.512, 0.444, 0.512)
    assert not by_figure["ratio"].met  # one run of three below 0.50
    assert by_figure["lost"].met and by_figure["p99_ms"].met

    lossy = {"pipeline": [parse_results(PIPELINE_FAST), parse_results(PIPELINE_LOSSY)]}
    assert [r.met for r in rows([ratio, lost], lossy)] == [True, False]


def test_a_failed_run_or_a_missing_figure_meets_nothing() -> None:
    after = Target("guilds", "guilds_after_last_create_s", "<=", 10, "ready after the last create", "s")
    missing = Target("guilds", "no_such_figure", "<=", 10, "absent")
    other = Target("retention", "drop_seconds", "<", 1, "drop")
    runs = {"guilds": [parse_results(GUILDS_OUT), None]}
    after_row, missing_row, other_row = rows([after, missing, other], runs)
    assert after_row.values == (3.1, None) and not after_row.met
    assert missing_row.values == (None, None) and not missing_row.met
    assert other_row.values == () and not other_row.met  # the benchmark never ran
    assert rows([after], {"guilds": [parse_results(GUILDS_OUT)] * 3})[0].met
    assert not Target("x", "y", "<", 1, "strict").met(1.0) and Target("x", "y", "<=", 1, "inclusive").met(1.0)
    assert not Target("x", "y", ">=", 1, "a word is no number").met("on")


def test_the_table_shows_every_run_the_goal_and_the_verdict() -> None:
    after = Target("guilds", "guilds_after_last_create_s", "<=", 10, "10,000 guilds ready", "s")
    ratio = Target("pipeline", "ratio", ">=", 0.50, "committed ÷ ingest")
    runs = {
        "guilds": [parse_results(GUILDS_OUT), parse_results(GUILDS_OUT.replace("=3.1", "=12.5")), None],
        "pipeline": [parse_results(PIPELINE_FAST)] * 3,
    }
    table = render(rows([after, ratio], runs), date="2026-12-06 23:00 UTC", box="2 cores", runs=3, quick=False)
    lines = table.splitlines()
    assert lines[0] == "Benchmarks of 2026-12-06 23:00 UTC on 2 cores; 3 runs each"
    assert lines[2] == "| Benchmark | Target | Goal | Run 1 | Run 2 | Run 3 | Met |"
    assert (
        lines[4]
        == "| guilds | 10,000 guilds ready (`guilds_after_last_create_s`) | <= 10 s | 3.1 | 12.5 | failed | no |"
    )
    assert lines[5] == "| pipeline | committed ÷ ingest (`ratio`) | >= 0.5 | 0.512 | 0.512 | 0.512 | yes |"
    assert lines[-1] == "1 of 2 targets met in every run."
    quick = render(rows([ratio], runs), date="d", box="b", runs=1, quick=True)
    assert "QUICK" in quick.splitlines()[0] and quick.splitlines()[2].count("Run ") == 1


def test_the_box_is_read_from_proc_texts() -> None:
    cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
    meminfo = "MemTotal:        8152904 kB\nMemFree:  1 kB\n"
    assert box_description(cpuinfo, meminfo, 2) == "2 cores, 7.8 GiB RAM, AMD EPYC 7B13"
    assert box_description("", "", None) == "? cores, 0.0 GiB RAM, unknown CPU"


def test_every_benchmark_the_issue_names_has_a_target() -> None:
    benches = {t.bench for t in TARGETS}
    named = {"pipeline", "propagation", "api", "api_1m", "card", "memory", "guilds", "retention"}
    assert named | {"ranks", "ranks_1m"} == benches  # the issue's list, and `/profile`'s rank of its targets
    assert all(t.op in ("<=", "<", ">=", "==") for t in TARGETS)
