"""Pipeline benchmark: workload → simulator in ANOTHER process → hikari → normalizer → lanes → committed rows.

    .venv/bin/python bench/pipeline.py [--workload ../shared/bench/workload-5000.jsonl] [--paced-rate 1000]
                                       [--lake on|off|both]

Prints, in one run: (a) the ingest-only rate of the same hikari client with a no-op listener (the baseline, under
the heap policy the runtime applies at startup: obs/heap.py),
(b) end-to-end committed events/s for a burst of the whole workload, (c) b/a, (d) p50/p99 receive→commit latency
with the workload paced at `--paced-rate` events/s (new message ids, same authors), (e) peak RSS of this process
(app + hikari; the simulator runs elsewhere), the index entries written per message (per table), and then checks
the journal: every dispatched message must be journaled exactly once. The paced phase reports the rate the
events actually arrived at next to the requested one (a loaded machine may not keep the pace, and latencies mean
little then). Events that never commit are counted as
lost after `--stall-seconds` without progress; the run still reports instead of raising. PostgreSQL is the
embedded server (fresh data directory) unless DATABASE_URL is set, in which case a fresh database is created on
that server.

`--lake both` (the default) measures the same workload twice in this run, each time on a fresh database: with
the event lake on, then with every `lake.source.*` switched off, and prints both figures and the lake's write
overhead; `--lake on` / `--lake off` measure one mode. The last lines are machine-readable, one per mode:
`RESULT lake=on|off ingest_per_s=… pipeline_per_s=… ratio=… paced_per_s=… p50_ms=… p99_ms=… rss_mb=… lost=…
duplicated=… index_entries_per_message=… db_wait_us=… burst_batch=… paced_batch=… ingest_cpu_us=… app_cpu_us=…
pg_cpu_us=…` (index entries written and DB wait per pipelined message, events per transaction in the burst and in
the paced phase, and CPU per event: this process in the ingest baseline and in the burst, PostgreSQL's processes in
the burst — on a box shared with other work the wall-clock ratio moves with the load, the CPU figures much less).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from synapse_async.config import load_config
from synapse_async.domain.vocabulary import LAKE_EVENT_TYPES
from synapse_async.ledger import Effects
from synapse_async.obs.heap import release_heap, settle_heap
from synapse_async.runtime import Runtime
from synapse_async.sandbox.workload import BENCH_GUILD_ID
from synapse_async.services.audit import Actor
from synapse_async.services.settings import update_settings
from synapse_async.settings import lake_source_key

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    DEFAULT_WORKLOAD,
    app_env,
    bench_server,
    count_rows,
    create_database,
    index_entries,
    postgres_cpu_seconds,
    replay,
    run_on_app_loop,
    start_simulator,
)
from _stats import Phase, summarize
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


@dataclass(frozen=True, slots=True)
class ModeResult:
    """One measured run of the workload with the lake on or off."""

    lake: bool
    burst: Phase
    paced: Phase
    pipelined_us: float
    burst_pipelined_us: float  # DB wait per pipelined message during the burst alone
    transactions: int
    per_transaction: float
    burst_per_transaction: float  # events per transaction during the burst alone (where batches should grow)
    paced_per_transaction: float
    journaled: int
    lost: int
    duplicated: int
    index_entries: dict[str, int]
    app_cpu_us: float  # this process's CPU per event during the burst (app + hikari)
    pg_cpu_us: float | None  # the PostgreSQL server's CPU per event during the burst (None: not on this machine)

    @property
    def index_per_message(self) -> float:
        return sum(self.index_entries.values()) / max(self.journaled, 1)


async def lake_off(rt: Runtime) -> None:
    """Switch every lake source off for the bench guild, as an admin would, and wait for the cache to follow."""
    assert rt.components.db is not None
    assert rt.components.cache is not None
    cache = rt.components.cache
    values: dict[str, object] = {lake_source_key(t): False for t in LAKE_EVENT_TYPES}
    await update_settings(rt.components.db.sessions, BENCH_GUILD_ID, values, Actor("svc:bench", "service", "api"))
    while any(cache.settings(BENCH_GUILD_ID).bool(k) for k in values):  # noqa: ASYNC110 - polling a cache
        await asyncio.sleep(0.05)


async def measure(
    server_url: str, info: dict[str, str], args: argparse.Namespace, expected: int, *, lake: bool, round_: int
) -> ModeResult:
    """The burst and paced phases on a fresh database, with the lake on or off; new message ids every round."""
    database_url = await create_database(server_url)
    rt = MeasuredRuntime(load_config(app_env(info, database_url)))
    try:
        await rt.start()
        cache = rt.components.cache
        assert cache is not None
        while BENCH_GUILD_ID not in cache.known_guild_ids():  # noqa: ASYNC110 - polling a cache, no event exists
            await asyncio.sleep(0.05)
        if not lake:
            await lake_off(rt)

        # Burst: the whole workload as fast as the simulator sends it.
        probe = await asyncpg.connect(database_url)
        try:
            cpu_before, pg_before = time.process_time(), await postgres_cpu_seconds(probe)
            await replay(info, id_offset=2 * round_)
            mark = min(await wait_committed(rt, expected, args.stall_seconds), expected)
            app_cpu_us = (time.process_time() - cpu_before) / expected * 1e6
            pg_after = await postgres_cpu_seconds(probe)
        finally:
            await probe.close()
        pg_cpu_us = (pg_after - pg_before) / expected * 1e6 if pg_before is not None and pg_after is not None else None
        burst = summarize(rt.commits[:mark], expected)
        assert rt.pipeline is not None
        burst_batches, burst_processed = rt.pipeline.stats.batches, rt.pipeline.stats.processed
        proc = rt.pipeline.processor
        burst_wait_us = proc.pipelined_seconds / max(proc.pipelined_events, 1) * 1e6

        await replay(info, rate=args.paced_rate, id_offset=2 * round_ + 1)  # new ids, paced
        await wait_committed(rt, mark + expected, args.stall_seconds)
        paced = summarize(rt.commits[mark : mark + expected], expected)

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
        assert rt.pipeline is not None
        stats = rt.pipeline.stats
        await rt.shutdown()  # its connections close, so PostgreSQL publishes their table statistics
        conn = await asyncpg.connect(database_url)
        try:
            entries = await index_entries(conn)
        finally:
            await conn.close()
        return ModeResult(
            lake=lake,
            burst=burst,
            paced=paced,
            pipelined_us=proc.pipelined_seconds / max(proc.pipelined_events, 1) * 1e6,
            burst_pipelined_us=burst_wait_us,
            transactions=stats.batches,
            per_transaction=stats.processed / max(stats.batches, 1),
            burst_per_transaction=burst_processed / max(burst_batches, 1),
            paced_per_transaction=(stats.processed - burst_processed) / max(stats.batches - burst_batches, 1),
            journaled=int(journaled),
            lost=2 * expected - int(distinct),
            duplicated=int(journaled) - int(distinct) + abs(int(sent or 0) - int(journaled)),
            index_entries=entries,
            app_cpu_us=app_cpu_us,
            pg_cpu_us=pg_cpu_us,
        )
    finally:
        await rt.shutdown()


def report(r: ModeResult, ingest: float, ingest_cpu: float, paced_rate: float, expected: int) -> None:
    tag = "lake on " if r.lake else "lake off"
    rate = r.burst.committed_per_s
    print(f"[{tag}] (b) end to end, committed:  {rate:,.0f} events/s ({r.burst.committed} of {expected})")
    print(f"[{tag}] (c) ratio b/a:              {rate / ingest:.3f}")
    print(
        f"[{tag}] (d) latency, paced at {r.paced.received_per_s:,.0f}/s (asked {paced_rate:,.0f}/s):"
        f" p50 {r.paced.p50_ms:.2f} ms, p99 {r.paced.p99_ms:.2f} ms ({r.paced.committed} of {expected} committed)"
    )
    print(
        f"[{tag}]     pipelined message runs: {r.pipelined_us:.0f} µs of DB wait per event"
        f" (burst alone {r.burst_pipelined_us:.0f} µs)"
    )
    print(
        f"[{tag}]     transactions: {r.transactions}, events/transaction {r.per_transaction:.1f}"
        f" (burst {r.burst_per_transaction:.1f}, paced {r.paced_per_transaction:.1f})"
    )
    pg = f"{r.pg_cpu_us:.0f} µs" if r.pg_cpu_us is not None else "n/a"
    print(
        f"[{tag}]     CPU per event in the burst: app process {r.app_cpu_us:.0f} µs (ingest alone {ingest_cpu:.0f} µs,"
        f" ratio {ingest_cpu / max(r.app_cpu_us, 1e-9):.3f}), PostgreSQL {pg}"
    )
    tables = ", ".join(f"{t} {n / max(r.journaled, 1):.1f}" for t, n in sorted(r.index_entries.items()) if n)
    print(f"[{tag}]     index entries per message: {r.index_per_message:.1f} ({tables})")
    print(f"[{tag}] journal check: dispatched {2 * expected}, journaled {r.journaled}, lost {r.lost},"
          f" duplicated {r.duplicated}")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", type=Path, default=DEFAULT_WORKLOAD)
    parser.add_argument("--paced-rate", type=float, default=1000.0)
    parser.add_argument("--stall-seconds", type=float, default=30.0, help="no commit for this long: count as lost")
    parser.add_argument(
        "--lake",
        choices=("on", "off", "both"),
        default="both",
        help="measure with the event lake on, off (every lake.source.* false), or both in this run (default)",
    )
    args = parser.parse_args()
    expected = count_rows(args.workload)
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.lake]

    async with bench_server() as server_url:
        await run(args, expected, modes, server_url)


async def run(args: argparse.Namespace, expected: int, modes: list[bool], server_url: str) -> None:
    sim, info = await start_simulator(args.workload)
    try:
        # The same client with a no-op listener, under the heap policy the runtime applies at startup (a frozen
        # heap, obs/heap.py), so that the ratio compares the pipeline's work and not two garbage collectors.
        settle_heap()
        try:
            ingest, ingest_cpu = await run_phase(info, normalize=False, expected=expected)
        finally:
            release_heap()
        results = [await measure(server_url, info, args, expected, lake=lake, round_=i) for i, lake in enumerate(modes)]
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"workload:                      {expected} messages, {args.workload.name}")
        print(f"(a) ingest only (no-op):       {ingest:,.0f} events/s")
        for r in results:
            report(r, ingest, ingest_cpu, args.paced_rate, expected)
        print(f"(e) peak RSS (app process):    {rss_mb:.0f} MB")
        by_mode = {r.lake: r for r in results}
        if True in by_mode and False in by_mode:
            on, off = by_mode[True], by_mode[False]
            ratio = on.burst.committed_per_s / off.burst.committed_per_s if off.burst.committed_per_s else 0.0
            print(
                f"lake write overhead: on {on.burst.committed_per_s:,.0f} vs off {off.burst.committed_per_s:,.0f}"
                f" events/s (on/off {ratio:.3f}), paced p50 {on.paced.p50_ms:.2f} vs {off.paced.p50_ms:.2f} ms,"
                f" DB wait {on.pipelined_us:.0f} vs {off.pipelined_us:.0f} µs per event"
            )
        for r in results:
            print(
                f"RESULT lake={'on' if r.lake else 'off'} ingest_per_s={ingest:.1f}"
                f" pipeline_per_s={r.burst.committed_per_s:.1f} ratio={r.burst.committed_per_s / ingest:.3f}"
                f" paced_per_s={r.paced.received_per_s:.1f} p50_ms={r.paced.p50_ms:.2f} p99_ms={r.paced.p99_ms:.2f}"
                f" rss_mb={rss_mb:.1f} lost={r.lost} duplicated={r.duplicated}"
                f" index_entries_per_message={r.index_per_message:.1f} db_wait_us={r.pipelined_us:.0f}"
                f" burst_batch={r.burst_per_transaction:.1f} paced_batch={r.paced_per_transaction:.1f}"
                f" ingest_cpu_us={ingest_cpu:.0f} app_cpu_us={r.app_cpu_us:.0f}"
                f" pg_cpu_us={r.pg_cpu_us if r.pg_cpu_us is None else round(r.pg_cpu_us)}"
            )
    finally:
        sim.terminate()
        await sim.wait()


if __name__ == "__main__":
    run_on_app_loop(main())
