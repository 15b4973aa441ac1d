"""Public API benchmark (SPEC §25): leaderboard and member profile of a guild with 100,000 members, and `/health`.

The app runs here (sandbox runtime, embedded PostgreSQL unless DATABASE_URL is set, public rate limit off); the
guild's members are seeded with one INSERT … SELECT generate_series. The load comes from a child process (an
aiohttp client, `--connections` keep-alive connections for `--seconds` per endpoint); the in-run baseline is the
same client against a bare aiohttp handler returning a constant, served by another child process. Last line:
`RESULT leaderboard_rps=… leaderboard_p99_ms=… leaderboard_p95_ms=… profile_rps=… profile_p99_ms=… health_rps=…
baseline_rps=… … leaderboard_page_rps=… profile_page_rps=… leaderboard_page_cost=… profile_page_cost=…`: the member
pages (SPEC §28) measured beside their JSON twins in the same run; `*_cost` = a page's time ÷ its twins' time
(target ≤ 1.5): the leaderboard page against the JSON leaderboard with `page_size=50`, the profile page against
its two twins of §28.2 added up (the member profile and the member's 30-day daily activity);
`profile_page_cost_vs_member` compares it with the member profile alone.

`--members 1000000` seeds a million (the same single statement). `--distinct-profiles N` spreads the profile runs
over N members (default 1,000, mostly answered by the 5-second micro-cache; as many as requests sent: every
profile and its rank is computed). `--only profile,baseline` runs only those and prints one `RESULT` line of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from synapse_async.config import load_config
from synapse_async.obs.logging import configure_logging
from synapse_async.runtime import Runtime
from synapse_async.sandbox import SANDBOX_GUILD_ID

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fresh_database, run_on_app_loop

FIRST_USER = 200_000_000_000_000_000
SEED_SQL = """
INSERT INTO members (guild_id, user_id, display_name, xp, level, peak_level, gold, lifetime_stars, last_active_at)
SELECT $1::bigint, $2::bigint + n, 'member ' || n, (n * 7919) % 500000, 1 + ((n * 7919) % 500000) / 5000,
       1 + ((n * 7919) % 500000) / 5000,
       (n * 104729) % 100000, (n * 31) % 5000, now() - ((n % 60) || ' days')::interval
  FROM generate_series(1::bigint, $3::bigint) AS n
"""


# --------------------------------------------------------------------------------------------------- child roles


async def load(urls: list[str], seconds: float, connections: int) -> dict[str, Any]:
    """Keep `connections` requests in flight for `seconds`; requests/s and latency percentiles (ms)."""
    latencies: list[float] = []
    errors = 0
    statuses: dict[int, int] = {}  # the non-200 answers by status (why `errors` is not 0)
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < deadline:
                url = urls[i % len(urls)]
                i += connections
                started = time.perf_counter()
                async with http.get(url) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                        statuses[resp.status] = statuses.get(resp.status, 0) + 1
                        if statuses[resp.status] == 1:  # the first body of each status, for the log: why
                            print(resp.status, (await resp.read())[:300], file=sys.stderr)
                latencies.append((time.perf_counter() - started) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(connections)))
        elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(int(len(latencies) * p), len(latencies) - 1)], 2) if latencies else 0.0

    return {
        "rps": round(len(latencies) / elapsed, 1),
        "p50": pct(0.5),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "errors": errors,
        "statuses": statuses,
    }


async def baseline_server() -> None:
    """A bare aiohttp app answering a constant JSON body; prints its port, serves until stdin closes."""

    async def constant(_request: web.Request) -> web.Response:
        return web.json_response({"items": [], "page": 1, "page_size": 25, "total": 0})

    app = web.Application()
    app.router.add_get("/constant", constant)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


# --------------------------------------------------------------------------------------------------- driver


async def run_load(urls: list[str], seconds: float, connections: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--role", "load", "--seconds", str(seconds), "--connections", str(connections),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate(json.dumps(urls).encode())
    return dict(json.loads(out))


async def main(args: argparse.Namespace) -> None:
    async with fresh_database("bench_api") as database_url:
        await measure(args, database_url)


async def measure(args: argparse.Namespace, database_url: str) -> None:
    configure_logging(level="WARNING")  # as the other benchmarks: the app's own logging, not structlog's default
    env = {
        "DATABASE_URL": database_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "LOG_LEVEL": "WARNING",
        "PUBLIC_RATE_LIMIT_PER_MINUTE": "0",
        # Every load connection comes from 127.0.0.1: the per-address cap must not refuse the benchmark's own.
        "HTTP_MAX_CONNECTIONS_PER_IP": str(max(64, 2 * args.connections)),
        "SANDBOX_ALLOW_EXTERNAL_DATABASE": "true",
        "SANDBOX_MEMBERS": "5",
    }
    rt = Runtime(load_config(env))
    baseline = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--role", "baseline", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        await rt.start()
        cache = rt.components.require_cache()
        while SANDBOX_GUILD_ID not in cache.known_guild_ids():  # noqa: ASYNC110 - polling a cache, no event exists
            await asyncio.sleep(0.05)
        conn = await asyncpg.connect(env["DATABASE_URL"])
        await conn.execute(SEED_SQL, SANDBOX_GUILD_ID, FIRST_USER, args.members)
        await conn.execute("ANALYZE members")
        await conn.execute("ANALYZE xp_rank_counts")  # filled by the seed's own statement (the triggers)
        await conn.close()
        api = f"http://127.0.0.1:{rt.http_port}"
        prefix = f"{api}/api/guilds/{SANDBOX_GUILD_ID}"
        assert baseline.stdout is not None
        port = json.loads(await baseline.stdout.readline())["port"]
        # `--distinct-profiles`: how many members the profile runs cycle through; with the default 1,000 most answers
        # come from the 5-second micro-cache, with as many as requests sent every profile is computed (its rank too).
        step = max(args.members // args.distinct_profiles, 1)
        pages = f"{api}/g/{SANDBOX_GUILD_ID}"
        profiles = range(1, args.members + 1, step)
        runs = {
            "leaderboard": [f"{prefix}/leaderboard?by=xp&season=lifetime&page={p}" for p in (1, 2, 3, 4)],
            "profile": [f"{prefix}/members/{FIRST_USER + n}" for n in profiles],
            # The member pages beside their JSON twins (SPEC §28): the leaderboard page shows 50 rows, so its twin
            # is measured with page_size=50 too; a profile page also reads the member's 30 days and the catalogue.
            "leaderboard_json50": [
                f"{prefix}/leaderboard?by=xp&season=lifetime&page={p}&page_size=50" for p in (1, 2, 3, 4)
            ],
            "leaderboard_page": [f"{pages}?by=xp&season=lifetime&page={p}" for p in (1, 2, 3, 4)],
            # The profile page's second twin (SPEC §28.2: "§19 member, activity"): the member's 30 days.
            "profile_daily": [f"{prefix}/activity/daily?days=30&user_id={FIRST_USER + n}" for n in profiles],
            "profile_page": [f"{pages}/members/{FIRST_USER + n}" for n in profiles],
            "health": [f"{api}/health"],
            "baseline": [f"http://127.0.0.1:{port}/constant"],
        }
        if args.only:
            wanted = set(args.only.split(","))
            runs = {name: urls for name, urls in runs.items() if name in wanted}
        results = {}
        for name, urls in runs.items():
            results[name] = await run_load(urls, args.seconds, args.connections)
            print(f"{name}: {json.dumps(results[name])}", flush=True)
        if args.only:
            # A partial run (`--only profile,baseline`): one line per endpoint measured, no derived ratios.
            print(
                "RESULT "
                + " ".join(
                    f"{n}_rps={r['rps']} {n}_p95_ms={r['p95']} {n}_p99_ms={r['p99']}" for n, r in results.items()
                )
                + f" members={args.members}"
            )
            return
        lb, pr = results["leaderboard"], results["profile"]
        lb50, lbp, prp = results["leaderboard_json50"], results["leaderboard_page"], results["profile_page"]
        # A profile page shows what two JSON twins answer (the member and their 30 days): its cost is its time per
        # page against the two twins' times per request added up (1 / rps each).
        twins_s = 1 / max(pr["rps"], 0.1) + 1 / max(results["profile_daily"]["rps"], 0.1)
        profile_cost = round((1 / max(prp["rps"], 0.1)) / twins_s, 2)
        print(
            f"RESULT leaderboard_rps={lb['rps']} leaderboard_p99_ms={lb['p99']} leaderboard_p95_ms={lb['p95']}"
            f" profile_rps={pr['rps']} profile_p99_ms={pr['p99']} health_rps={results['health']['rps']}"
            f" baseline_rps={results['baseline']['rps']} members={args.members}"
            f" leaderboard_json50_rps={lb50['rps']} leaderboard_json50_p99_ms={lb50['p99']}"
            f" leaderboard_page_rps={lbp['rps']} leaderboard_page_p99_ms={lbp['p99']}"
            f" profile_page_rps={prp['rps']} profile_page_p99_ms={prp['p99']}"
            f" leaderboard_page_cost={round(lb50['rps'] / max(lbp['rps'], 0.1), 2)}"
            f" profile_daily_rps={results['profile_daily']['rps']}"
            f" profile_page_cost_vs_member={round(pr['rps'] / max(prp['rps'], 0.1), 2)}"
            f" profile_page_cost={profile_cost}"
        )
    finally:
        if baseline.stdin is not None:
            baseline.stdin.close()
        await baseline.wait()
        await rt.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", choices=("main", "load", "baseline"), default="main")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--distinct-profiles", type=int, default=1000)
    parser.add_argument("--only", default="", help="comma-separated endpoints to measure (default: all)")
    cli = parser.parse_args()
    # Every role on the app's own loop: the app as it ships, the baseline server on the same loop, the same client.
    if cli.role == "load":
        print(json.dumps(run_on_app_loop(load(json.loads(sys.stdin.read()), cli.seconds, cli.connections))))
    elif cli.role == "baseline":
        run_on_app_loop(baseline_server())
    else:
        run_on_app_loop(main(cli))
