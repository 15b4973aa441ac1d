"""Pipeline benchmark: workload → simulator in ANOTHER process → hikari → normalizer → lanes → committed rows.

    .venv/bin/python bench/pipeline.py [--workload ../shared/bench/workload-5000.jsonl] [--paced-rate 1000]

Prints, in one run: (a) the ingest-only rate of the same hikari client with a no-op listener (the baseline),
(b) end-to-end committed events/s for a burst of the whole workload, (c) b/a, (d) p50/p99 receive→commit latency
with the workload paced at `--paced-rate` events/s (new message ids, same authors), (e) peak RSS of this process
(app + hikari; the simulator runs elsewhere), the index entries written per message (per table), and then checks
the journal: every dispatched message must be journaled exactly once. The paced phase reports the rate the events
actually arrived at next to the requested one (a loaded machine may not keep the pace, and latencies mean little
then). Events that never commit are counted as
lost after `--stall-seconds` without progress; the run still reports instead of raising. PostgreSQL is the
embedded server (fresh data directory) unless DATABASE_URL is set, in which case a fresh database is created on
that server. The last line is machine-readable:
`RESULT ingest_per_s=… pipeline_per_s=… ratio=… paced_per_s=… p50_ms=… p99_ms=… rss_mb=… lost=… duplicated=…
index_entries_per_message=…`.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path

import asyncpg

from synapse_async.config import load_config
from synapse_async.pipeline.processor import Effects
from synapse_async.runtime import Runtime
from synapse_async.sandbox.workload import BENCH_GUILD_ID

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_WORKLOAD, app_env, count_rows, fresh_database, index_entries, replay, start_simulator
from _stats import summarize
from gateway_ingest import run_phase


class MeasuredRuntime(Runtime):
    """The real runtime, plus a record of (commit time, receive time) for every committed event."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.commits: list[tuple[int, int]] = []

    def _after_commit(self, effects: Effects) -> None:
        now = time.monotonic_ns()
        self.commits.extend((now, received) for received in effects.committed_ns)
        super()._after_commit(effects)


async def wait_committed(rt: MeasuredRuntime, count: int, stall_seconds: float) -> int:
    """Wait until `count` events committed, or none did for `stall_seconds`; return how many committed.

    Missing events are the benchmark's finding (counted as lost by the journal check), not a reason to abort."""
    seen, progressed = len(rt.commits), time.monotonic()
    while len(rt.commits) < count:
        await asyncio.sleep(0.05)
        if len(rt.commits) != seen:
            seen, progressed = len(rt.commits), time.monotonic()
        elif time.monotonic() - progressed > stall_seconds:
            break
    return len(rt.commits)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", type=Path, default=DEFAULT_WORKLOAD)
    parser.add_argument("--paced-rate", type=float, default=1000.0)
    parser.add_argument("--stall-seconds", type=float, default=30.0, help="no commit for this long: count as lost")
    args = parser.parse_args()
    expected = count_rows(args.workload)

    async with fresh_database() as database_url:
        await run(args, expected, database_url)


async def run(args: argparse.Namespace, expected: int, database_url: str) -> None:
    sim, info = await start_simulator(args.workload)
    rt: MeasuredRuntime | None = None
    try:
        ingest, _cpu = await run_phase(info, normalize=False, expected=expected)  # the same client, no-op listener

        rt = MeasuredRuntime(load_config(app_env(info, database_url)))
        await rt.start()
        cache = rt.components.cache
        assert cache is not None
        while BENCH_GUILD_ID not in cache.known_guild_ids():  # noqa: ASYNC110 - polling a cache, no event exists
            await asyncio.sleep(0.05)

        await replay(info)  # burst: the whole workload as fast as the simulator sends it
        mark = min(await wait_committed(rt, expected, args.stall_seconds), expected)
        burst = summarize(rt.commits[:mark], expected)
        pipeline_rate = burst.committed_per_s

        await replay(info, rate=args.paced_rate, id_offset=1)  # new ids, paced
        await wait_committed(rt, mark + expected, args.stall_seconds)
        paced = summarize(rt.commits[mark : mark + expected], expected)
        p50, p99 = paced.p50_ms, paced.p99_ms

        conn = await asyncpg.connect(database_url)
        try:
            journaled = await conn.fetchval(
                "SELECT count(*) FROM reward_journal WHERE guild_id = $1 AND event_type = 'message'", BENCH_GUILD_ID
            )
            distinct = await conn.fetchval(
                "SELECT count(DISTINCT idempotency_key) FROM reward_journal WHERE guild_id = $1"
                " AND event_type = 'message'",
                BENCH_GUILD_ID,
            )
            sent = await conn.fetchval("SELECT sum(messages_sent) FROM members WHERE guild_id = $1", BENCH_GUILD_ID)
        finally:
            await conn.close()
        dispatched = 2 * expected
        lost = dispatched - int(distinct)
        duplicated = int(journaled) - int(distinct) + abs(int(sent or 0) - int(journaled))
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        stats = rt.pipeline.stats if rt.pipeline is not None else None
        proc = rt.pipeline.processor if rt.pipeline is not None else None
        await rt.shutdown()  # its connections close, so PostgreSQL publishes their table statistics
        rt = None
        conn = await asyncpg.connect(database_url)
        try:
            entries = await index_entries(conn)
        finally:
            await conn.close()
        per_message = sum(entries.values()) / max(int(journaled), 1)

        print(f"workload:                      {expected} messages, {args.workload.name}")
        print(f"(a) ingest only (no-op):       {ingest:,.0f} events/s")
        print(f"(b) end to end, committed:     {pipeline_rate:,.0f} events/s ({burst.committed} of {expected})")
        print(f"(c) ratio b/a:                 {pipeline_rate / ingest:.3f}")
        print(
            f"(d) latency, paced at {paced.received_per_s:,.0f}/s (asked {args.paced_rate:,.0f}/s):"
            f" p50 {p50:.2f} ms, p99 {p99:.2f} ms ({paced.committed} of {expected} committed)"
        )
        print(f"(e) peak RSS (app process):    {rss_mb:.0f} MB")
        if proc is not None:
            per_event = proc.pipelined_seconds / max(proc.pipelined_events, 1) * 1e6
            print(f"    pipelined message runs: {proc.pipelined_events} events, {per_event:.0f} µs of DB wait each")
        if stats is not None:
            print(
                f"    transactions: {stats.batches}, events/transaction {stats.processed / max(stats.batches, 1):.1f}"
            )
        tables = ", ".join(f"{t} {n / max(int(journaled), 1):.1f}" for t, n in sorted(entries.items()) if n)
        print(f"    index entries per message: {per_message:.1f} ({tables})")
        print(f"journal check: dispatched {dispatched}, journaled {journaled}, lost {lost}, duplicated {duplicated}")
        print(
            f"RESULT ingest_per_s={ingest:.1f} pipeline_per_s={pipeline_rate:.1f} ratio={pipeline_rate / ingest:.3f}"
            f" paced_per_s={paced.received_per_s:.1f} p50_ms={p50:.2f} p99_ms={p99:.2f} rss_mb={rss_mb:.1f}"
            f" lost={lost} duplicated={duplicated} index_entries_per_message={per_message:.1f}"
        )
    finally:
        if rt is not None:
            await rt.shutdown()
        sim.terminate()
        await sim.wait()


if __name__ == "__main__":
    try:
        import uvloop  # the loop the app itself runs on (see __main__._run_async)
    except ImportError:
        asyncio.run(main())
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
