"""Memory benchmark (SPEC §25: RSS ≤ 400 MB with 100,000 cached members, flat under sustained load; 10,000 guilds).

    .venv/bin/python bench/memory.py [--members 100000] [--minutes 10] [--rate 500] [--guilds 10000]
                                     [--only members|guilds]

Two scenarios, each in a FRESH child process (so one cannot leave memory to the other) with its own simulator
process and a fresh database, running the real app (hikari with the app's cache settings, pipeline, listener):
- members: the sandbox guild with `--members` members; once hikari's cache holds all of them (chunked over the
  gateway as Discord does), the resident set; then the workload replayed at `--rate` events/s for `--minutes`
  (new message ids each round), with the RSS sampled every `--sample-seconds`: flat means the bounded caches
  (cooldowns, authors, buffers) stopped growing. The baseline is the same process before the app started.
- guilds: `--guilds` minimal guilds; ready = every guild synced and in the config cache with no structure write or
  cache reload still queued; the time from the app's start and from the LAST GUILD_CREATE the app received
  (SPEC §25 target: ≤ 10 s after it), and the RSS then.
RSS is the CURRENT resident set (/proc), not the peak. The last line is machine-readable (`--only` prints the
scenario's keys alone): `RESULT baseline_mb=… members_mb=… sustained_first_mb=… sustained_last_mb=…
sustained_max_mb=… sustained_second_half_growth_mb=… guilds_mb=… guilds_ready_s=… guilds_after_last_create_s=…`
(flat: the growth over the second half of the sustained load, last sample minus the one at half time).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

from synapse_async.config import load_config
from synapse_async.obs.logging import configure_logging
from synapse_async.runtime import Runtime
from synapse_async.sandbox import SANDBOX_GUILD_ID

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_WORKLOAD, app_env, count_rows, fresh_database, replay, rss_mb, start_simulator


async def _until(predicate: Any, timeout: float, what: str) -> float:
    """Poll `predicate` (a cache, no event exists) until true; seconds taken. Raise after `timeout`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


def _settled_rss() -> float:
    gc.collect()
    return rss_mb()


async def members_scenario(args: argparse.Namespace) -> dict[str, Any]:
    baseline = _settled_rss()
    rows = count_rows(args.workload)
    async with fresh_database() as url:
        sim, info = await start_simulator(args.workload, members=args.members)
        rt = Runtime(load_config(app_env(info, url)))
        try:
            await rt.start()
            assert rt.gateway is not None
            bot = rt.gateway.bot  # type: ignore[attr-defined]
            took = await _until(
                lambda: len(bot.cache.get_members_view_for_guild(SANDBOX_GUILD_ID)) >= args.members,
                600,
                f"{args.members} cached members",
            )
            cached = len(bot.cache.get_members_view_for_guild(SANDBOX_GUILD_ID))
            loaded = _settled_rss()
            samples: list[tuple[float, float]] = []
            started = time.monotonic()
            next_sample, rounds = started, 0
            while (elapsed := time.monotonic() - started) < args.minutes * 60:
                rounds += 1
                pace = asyncio.create_task(replay(info, rate=args.rate, id_offset=rounds))
                while not pace.done():
                    if time.monotonic() >= next_sample:
                        samples.append((time.monotonic() - started, rss_mb()))
                        next_sample += args.sample_seconds
                    await asyncio.sleep(0.2)
                await pace
            samples.append((elapsed, _settled_rss()))
            processed = rt.pipeline.stats.processed if rt.pipeline is not None else 0
        finally:
            await rt.shutdown()
            sim.terminate()
            await sim.wait()
    return {
        "baseline_mb": baseline,
        "members": cached,
        "chunk_seconds": took,
        "members_mb": loaded,
        "rounds": rounds,
        "events": rounds * rows,
        "processed": processed,
        "samples": samples,
    }


def _guilds_ready(rt: Runtime, guilds: int) -> bool:
    """Every guild synced and visible in the config cache, no structure write or cache reload still queued."""
    cache, gateway, listener = rt.components.cache, rt.components.gateway, rt.components.listener
    return (
        cache is not None
        and len(cache.known_guild_ids()) >= guilds
        and gateway is not None
        and gateway.structure_writes()["backlog"] == 0
        and (listener is None or listener.queued_reloads == 0)
    )


async def guilds_scenario(args: argparse.Namespace) -> dict[str, Any]:
    baseline = _settled_rss()
    async with fresh_database() as url:
        sim, info = await start_simulator(args.workload, extra_guilds=args.guilds)
        rt = Runtime(load_config(app_env(info, url)))
        try:
            started = time.monotonic()
            await rt.start()
            assert rt.components.cache is not None
            await _until(lambda: _guilds_ready(rt, args.guilds), 1800, f"{args.guilds} guilds")
            ready_at = time.monotonic()
            gateway = rt.gateway
            known = len(rt.components.cache.known_guild_ids())
            first = gateway.first_guild_create_at  # type: ignore[union-attr]
            last = gateway.last_guild_create_at  # type: ignore[union-attr]
            creates = gateway.guild_creates  # type: ignore[union-attr]
            loaded = _settled_rss()
        finally:
            await rt.shutdown()
            sim.terminate()
            await sim.wait()
    return {
        "baseline_mb": baseline,
        "guilds": known,
        "guild_creates": creates,
        "sync_seconds": ready_at - started,
        "creates_seconds": last - first,
        "after_last_create_seconds": ready_at - last,
        "guilds_mb": loaded,
    }


async def child(args: argparse.Namespace) -> None:
    # As the CLI does, with the bench's LOG_LEVEL: unconfigured, structlog would print every debug line (one per
    # cache reload: 30,000 for 10,000 guilds) through its console renderer, timing the terminal, not the app.
    configure_logging(level="WARNING")
    result = await (members_scenario(args) if args.scenario == "members" else guilds_scenario(args))
    sys.stdout.write("SCENARIO " + json.dumps(result) + "\n")


async def run_child(args: argparse.Namespace, scenario: str) -> dict[str, Any]:
    argv = [a for a in sys.argv[1:] if not a.startswith("--scenario")]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, *argv, f"--scenario={scenario}", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    for line in out.decode().splitlines():
        if line.startswith("SCENARIO "):
            result: dict[str, Any] = json.loads(line.removeprefix("SCENARIO "))
            return result
    raise RuntimeError(f"the {scenario} scenario failed (exit {proc.returncode})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", type=Path, default=DEFAULT_WORKLOAD)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--minutes", type=float, default=10.0, help="sustained events after the members are cached")
    parser.add_argument("--rate", type=float, default=500.0, help="events/s while sustained")
    parser.add_argument("--sample-seconds", type=float, default=30.0)
    parser.add_argument("--guilds", type=int, default=10_000)
    parser.add_argument("--only", choices=("members", "guilds"), help="run one scenario (default: both)")
    parser.add_argument("--scenario", choices=("members", "guilds"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario is not None:
        await child(args)
        return
    figures: dict[str, float] = {}
    if args.only in (None, "members"):
        m = await run_child(args, "members")
        samples = [mb for _, mb in m["samples"]]
        print(f"baseline (process before the app): {m['baseline_mb']:.0f} MB")
        print(
            f"{m['members']:,} cached members:       {m['members_mb']:.0f} MB  (chunked in {m['chunk_seconds']:.0f} s)"
        )
        print(
            f"sustained {args.minutes:g} min at {args.rate:g}/s: {m['events']:,} events dispatched,"
            f" {m['processed']:,} processed; RSS over time:"
        )
        for at, mb in m["samples"]:
            print(f"    t={at:6.0f} s  {mb:6.1f} MB")
        # Printed before the guilds scenario starts: a slow sync must not cost the figures above.
        sys.stdout.flush()
        # Flat = the second half of the load added (almost) nothing: the bounded caches were full by then.
        half = m["samples"][-1][0] / 2
        middle = next(mb for at, mb in m["samples"] if at >= half)
        figures |= {
            "baseline_mb": m["baseline_mb"],
            "members_mb": m["members_mb"],
            "sustained_first_mb": samples[0],
            "sustained_last_mb": samples[-1],
            "sustained_max_mb": max(samples),
            "sustained_second_half_growth_mb": samples[-1] - middle,
        }
    if args.only in (None, "guilds"):
        g = await run_child(args, "guilds")
        print(
            f"{g['guilds']:,} guilds:                {g['guilds_mb']:.0f} MB  (ready {g['sync_seconds']:.1f} s after"
            f" start; {g['guild_creates']:,} GUILD_CREATEs received over {g['creates_seconds']:.1f} s; ready"
            f" {g['after_last_create_seconds']:.1f} s after the last)"
        )
        figures |= {
            "guilds_mb": g["guilds_mb"],
            "guilds_ready_s": g["sync_seconds"],
            "guilds_after_last_create_s": g["after_last_create_seconds"],
        }
    print("RESULT " + " ".join(f"{k}={v:.1f}" for k, v in figures.items()))


if __name__ == "__main__":
    asyncio.run(main())
