"""Every benchmark, one after another, and ONE table of the targets (issue 27, SPEC §25).

    .venv/bin/python bench/run_all.py [--runs 3] [--quick] [--only pipeline,guilds,…] [--workload PATH]
                                      [--memory-minutes 10] [--log-dir DIR]

Runs each benchmark script of bench/ as a subprocess (so none inherits another's memory, loop or database), in
sequence, `--runs` times each (runs of one benchmark back to back), parses the `RESULT key=value …` lines each prints
(their docstrings name the keys), and prints one Markdown table: benchmark, target, goal, the figure of every run,
and `met` = the target holds in EVERY run. Above it: the date (UTC) and the box (cores, RAM, CPU model from
/proc). A run that fails (exit status, no RESULT line) shows `failed` and meets nothing; the others still run.
Every benchmark's full output is kept in `--log-dir` (default: a new temporary directory, printed) for the
profile behind a figure.

The benchmarks, with their full sizes (`--quick`: small sizes, a smoke test of the whole chain in minutes; the
table then says so, and its verdicts say nothing about the targets):
- pipeline (`pipeline.py --lake on`): ratio to raw hikari ingest, p99 receive→commit at 1,000 events/s, lost,
  duplicated;
- propagation (`propagation.py`): admin write committed → cache serves it;
- api (`api.py`, 100,000 members): leaderboard, profile and `/health` rates and p99, the member pages' cost
  against their JSON twins;
- api_1m (`api.py --members 1000000 --only profile,baseline`): the profile's p95 at a million members;
- ranks, ranks_1m (`ranks.py --members 100000|1000000`): what the `/profile` command reads (member, rank, season,
  badges), rate and p99 / p95, and the rank checked against the brute-force count;
- card (`card.py`): cold render, loop lateness during a burst, cached card rate;
- memory (`memory.py --only members`, `--memory-minutes` of sustained load): RSS at 100,000 cached members, its
  maximum and its growth over the second half of the load;
- guilds (`memory.py --only guilds`, 10,000 guilds): seconds from the last GUILD_CREATE to ready;
- retention (`retention.py`, 1,000,000 expired lake rows): the partition drop.
The whole default set takes about 18 minutes per run on the 2-core box (the 10-minute memory load is most of it);
run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_WORKLOAD
from _table import Figures, Target, box_description, parse_results, render, rows

HERE = Path(__file__).resolve().parent

TARGETS: tuple[Target, ...] = (
    Target("pipeline", "ratio", ">=", 0.50, "committed ÷ raw hikari ingest, one guild"),
    Target("pipeline", "p99_ms", "<=", 20, "p99 receive→commit at 1,000 events/s", "ms"),
    Target("pipeline", "lost", "==", 0, "events lost"),
    Target("pipeline", "duplicated", "==", 0, "events duplicated"),
    Target("propagation", "commit_to_served_p99_ms", "<=", 5, "admin write committed → served, p99", "ms"),
    Target("api", "profile_rps", ">=", 3000, "public profile at 100,000 members", "req/s"),
    Target("api", "profile_p99_ms", "<=", 20, "public profile at 100,000 members, p99", "ms"),
    Target("api", "leaderboard_rps", ">=", 3000, "leaderboard at 100,000 members", "req/s"),
    Target("api", "leaderboard_p99_ms", "<=", 20, "leaderboard at 100,000 members, p99", "ms"),
    Target("api", "health_rps", ">=", 5000, "/health", "req/s"),
    Target("api", "leaderboard_page_cost", "<=", 1.5, "leaderboard page ÷ its JSON twin"),
    Target("api", "profile_page_cost", "<=", 1.5, "profile page ÷ its JSON twins"),
    Target("api_1m", "profile_p95_ms", "<=", 20, "public profile at 1,000,000 members, p95", "ms"),
    Target("ranks", "profile_command_rps", ">=", 3000, "/profile's reads at 100,000 members", "req/s"),
    Target("ranks", "profile_command_p99_ms", "<=", 20, "/profile's reads at 100,000 members, p99", "ms"),
    Target("ranks", "mismatches", "==", 0, "ranks differing from the brute-force count, 100,000 members"),
    Target("ranks_1m", "profile_command_p95_ms", "<=", 20, "/profile's reads at 1,000,000 members, p95", "ms"),
    Target("ranks_1m", "mismatches", "==", 0, "ranks differing from the brute-force count, 1,000,000 members"),
    Target("card", "render_p50_ms", "<=", 30, "cold rank card render, p50", "ms"),
    Target("card", "loop_p99_ms", "<", 5, "event-loop lateness during a card burst, p99", "ms"),
    Target("card", "cached_rps", ">=", 3000, "cached rank card", "req/s"),
    Target("memory", "members_mb", "<=", 250, "RSS with 100,000 cached members", "MB"),
    Target("memory", "sustained_max_mb", "<=", 250, "RSS under sustained load at 500 events/s, max", "MB"),
    Target("memory", "sustained_second_half_growth_mb", "<=", 2, "RSS growth over the load's second half", "MB"),
    Target("guilds", "guilds_after_last_create_s", "<=", 10, "10,000 guilds ready after the last GUILD_CREATE", "s"),
    Target("retention", "drop_seconds", "<", 1, "1,000,000 expired lake rows dropped", "s"),
)


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """Each benchmark's arguments, full or `--quick`."""
    w = ["--workload", str(args.workload)]
    if args.quick:
        return {
            "pipeline": ["pipeline.py", *w, "--lake", "on", "--stall-seconds", "10"],
            "propagation": ["propagation.py", "--writes", "50"],
            "api": ["api.py", "--members", "5000", "--seconds", "2"],
            "api_1m": ["api.py", "--members", "20000", "--seconds", "2", "--only", "profile,baseline"],
            "ranks": ["ranks.py", "--members", "5000", "--seconds", "1", "--checks", "20", "--batches", "10"],
            "ranks_1m": ["ranks.py", "--members", "20000", "--seconds", "1", "--checks", "20", "--batches", "10"],
            "card": ["card.py", "--renders", "20", "--burst", "10", "--seconds", "2"],
            "memory": [
                "memory.py",
                *w,
                "--only",
                "members",
                "--members",
                "5000",
                "--minutes",
                "0.5",
                "--sample-seconds",
                "5",
            ],
            "guilds": ["memory.py", *w, "--only", "guilds", "--guilds", "300"],
            "retention": ["retention.py", "--rows", "20000", "--keep", "2000"],
        }
    return {
        "pipeline": ["pipeline.py", *w, "--lake", "on"],
        "propagation": ["propagation.py"],
        "api": ["api.py", "--members", "100000"],
        "api_1m": ["api.py", "--members", "1000000", "--only", "profile,baseline"],
        "ranks": ["ranks.py", "--members", "100000"],
        "ranks_1m": ["ranks.py", "--members", "1000000"],
        "card": ["card.py"],
        "memory": ["memory.py", *w, "--only", "members", "--minutes", str(args.memory_minutes)],
        "guilds": ["memory.py", *w, "--only", "guilds", "--guilds", "10000"],
        "retention": ["retention.py"],
    }


def run_one(name: str, argv: list[str], log: Path, timeout: float) -> Figures | None:
    """One benchmark run as a subprocess; its figures, or None when it failed (output kept in `log`)."""
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        try:
            proc = subprocess.run(
                [sys.executable, str(HERE / argv[0]), *argv[1:]],
                stdout=subprocess.PIPE,
                stderr=out,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out.write(f"\nTIMEOUT after {timeout:.0f} s\n{exc.stdout or ''}")
            print(f"  {name}: timed out after {timeout:.0f} s (log {log})", flush=True)
            return None
        out.write(proc.stdout)
    figures = parse_results(proc.stdout)
    took = time.monotonic() - started
    if proc.returncode != 0 or not figures:
        print(f"  {name}: FAILED (exit {proc.returncode}, {took:.0f} s; log {log})", flush=True)
        return None
    print(f"  {name}: {took:.0f} s", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not the targets")
    parser.add_argument("--only", default="", help="comma-separated benchmarks (default: all)")
    parser.add_argument("--workload", type=Path, default=DEFAULT_WORKLOAD)
    parser.add_argument("--memory-minutes", type=float, default=10.0, help="sustained load of the memory benchmark")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per benchmark run")
    parser.add_argument("--log-dir", type=Path, default=None)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not args.workload.is_file():
        parser.error(f"workload not found: {args.workload} (pass --workload)")
    plan = commands(args)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(plan))
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(plan)}")
        plan = {n: a for n, a in plan.items() if n in wanted}
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="synapse-bench-logs-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    box = box_description(
        Path("/proc/cpuinfo").read_text(encoding="utf-8"),
        Path("/proc/meminfo").read_text(encoding="utf-8"),
        os.cpu_count(),
    )
    print(f"{date} on {box}; logs in {log_dir}", flush=True)
    results: dict[str, list[Figures | None]] = {}
    for name, argv in plan.items():
        print(f"{name}: {' '.join(argv)}", flush=True)
        results[name] = [run_one(name, argv, log_dir / f"{name}-{i + 1}.log", args.timeout) for i in range(args.runs)]
    table = rows([t for t in TARGETS if t.bench in plan], results)
    print()
    print(render(table, date=date, box=box, runs=args.runs, quick=args.quick))


if __name__ == "__main__":
    main()
