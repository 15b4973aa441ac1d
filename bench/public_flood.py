"""Public flood benchmark (SPEC §19, §25; issue 21 item 2): one anonymous client floods the most expensive public
reads while another client polls, and the gateway delivers messages.

    .venv/bin/python bench/public_flood.py [--journal-rows 220000] [--messages 1500] [--paced-rate 500]

The app runs here against the simulator in ANOTHER process (workload `shared/bench/workload-5000.jsonl`); the
bench guild's journal is seeded with `--journal-rows` rows over 90 days (messages, level changes) after a warm-up
replay has created the members. Two phases in the same run, each replaying `--messages` new messages paced at
`--paced-rate`/s:

- baseline: the other client alone: every 200 ms `GET …/metrics` and `GET …/members/{id}` (its own IP);
- flood: the same, plus a flooder (one IP, `--flood-connections` keep-alive connections, no rate limit) sending
  90-day activity pages and leaderboard pages with random `page`/`page_size`, as fast as it gets answers.

The clients run in a child process (so their CPU is not the app's loop); client IPs come from `X-Forwarded-For`
through a trusted proxy (127.0.0.1). Last line:
`RESULT reader_errors_baseline=… reader_p99_ms_baseline=… reader_errors_flood=… reader_p99_ms_flood=…
pipeline_p99_ms_baseline=… pipeline_p99_ms_flood=… lost=… flood_requests=… flood_ok=… flood_503=…
public_peak_connections=…`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from synapse_async.config import load_config
from synapse_async.sandbox.workload import BENCH_GUILD_ID

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_WORKLOAD, app_env, bench_server, create_database, percentile, replay, start_simulator
from _stats import summarize
from pipeline import MeasuredRuntime, wait_committed

READER_IP = "198.51.100.7"
FLOODER_IP = "203.0.113.9"
SEED_SQL = """
INSERT INTO reward_journal (guild_id, user_id, event_type, idempotency_key, xp_delta, star_delta, details, occurred_at)
SELECT $1::bigint, u.ids[1 + (i % array_length(u.ids, 1))],
       CASE WHEN i % 40 = 0 THEN 'level_change' ELSE 'message' END,
       'bench-seed-' || i,
       CASE WHEN i % 40 = 0 THEN 0 ELSE 1 + i % 9 END, 0,
       CASE WHEN i % 40 = 0 THEN jsonb_build_object('from', i / 40 % 60 + 1, 'to', i / 40 % 60 + 2)
            ELSE '{}'::jsonb END,
       now() - (i % 89) * interval '1 day' - (i % 1440) * interval '1 minute'
  FROM generate_series(1, $2::int) AS i,
       (SELECT array_agg(user_id) AS ids FROM members WHERE guild_id = $1::bigint) AS u
"""


# --------------------------------------------------------------------------------------------------- child role


async def clients(base: str, profile_user: int, seconds: float, flood: bool, connections: int) -> dict[str, Any]:
    """The other client (every 200 ms: metrics, a profile) and, with `flood`, the flooder, for `seconds`."""
    reader_latencies: list[float] = []
    reader_status: Counter[int] = Counter()
    flood_status: Counter[int] = Counter()
    deadline = time.perf_counter() + seconds
    rng = random.Random(21)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def get(path: str, ip: str) -> int:
            async with http.get(base + path, headers={"X-Forwarded-For": ip}) as resp:
                await resp.read()
                return resp.status

        async def reader() -> None:
            while time.perf_counter() < deadline:
                for path in ("/metrics", f"/members/{profile_user}"):
                    started = time.perf_counter()
                    reader_status[await get(path, READER_IP)] += 1
                    reader_latencies.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.2)

        async def flooder() -> None:
            while time.perf_counter() < deadline:
                page, size = rng.randint(1, 400), rng.randint(20, 100)
                if rng.random() < 0.7:
                    path = f"/activity?days=90&page={page}&page_size={size}"
                else:
                    path = f"/leaderboard?season=lifetime&page={page // 4 + 1}&page_size={size}"
                flood_status[await get(path, FLOODER_IP)] += 1

        tasks = [reader()] + ([flooder() for _ in range(connections)] if flood else [])
        await asyncio.gather(*tasks)
    return {
        "reader_requests": reader_status.total(),
        "reader_errors": reader_status.total() - reader_status[200],
        "reader_p99_ms": round(percentile(reader_latencies, 0.99), 2),
        "flood_requests": flood_status.total(),
        "flood_ok": flood_status[200],
        "flood_503": flood_status[503],
        "flood_other": flood_status.total() - flood_status[200] - flood_status[503],
    }


# --------------------------------------------------------------------------------------------------- driver


async def phase(
    rt: MeasuredRuntime, info: dict[str, str], args: argparse.Namespace, *, flood: bool, round_: int, user: int
) -> tuple[dict[str, Any], float, int]:
    """One paced replay of `--messages` new messages with the clients running; (client figures, p99, committed)."""
    seconds = args.messages / args.paced_rate + 1.0
    base = f"http://127.0.0.1:{rt.http_port}/api/guilds/{BENCH_GUILD_ID}"
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--role", "clients", "--base", base, "--user", str(user),
        "--seconds", str(seconds), "--flood", "1" if flood else "0",
        "--flood-connections", str(args.flood_connections), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await asyncio.sleep(0.5)  # the flood is in full swing before the messages start
    mark = len(rt.commits)
    await replay(info, rate=args.paced_rate, limit=args.messages, id_offset=round_)
    committed = await wait_committed(rt, mark + args.messages, args.stall_seconds) - mark
    out, _ = await child.communicate()
    paced = summarize(rt.commits[mark : mark + args.messages], args.messages)
    return dict(json.loads(out)), paced.p99_ms, committed


async def run(args: argparse.Namespace) -> None:
    async with bench_server() as server_url:
        sim, info = await start_simulator(args.workload)
        database_url = await create_database(server_url, "bench_flood")
        env = app_env(info, database_url) | {"PUBLIC_RATE_LIMIT_PER_MINUTE": "0", "TRUSTED_PROXIES": "127.0.0.1/32"}
        rt = MeasuredRuntime(load_config(env))
        try:
            await rt.start()
            cache = rt.components.require_cache()
            while BENCH_GUILD_ID not in cache.known_guild_ids():  # noqa: ASYNC110 - polling a cache
                await asyncio.sleep(0.05)
            await replay(info, limit=args.messages, id_offset=0)  # warm-up: creates the members
            await wait_committed(rt, args.messages, args.stall_seconds)
            conn = await asyncpg.connect(database_url)
            try:
                await conn.execute(SEED_SQL, BENCH_GUILD_ID, args.journal_rows)
                await conn.execute("ANALYZE")
                user = int(
                    await conn.fetchval("SELECT user_id FROM members WHERE guild_id = $1 LIMIT 1", BENCH_GUILD_ID)
                )
            finally:
                await conn.close()
            base, base_p99, base_committed = await phase(rt, info, args, flood=False, round_=1, user=user)
            flood, flood_p99, flood_committed = await phase(rt, info, args, flood=True, round_=2, user=user)
            assert rt.api is not None
            peak = rt.api.public_gate.peak
            lost = 2 * args.messages - base_committed - flood_committed
            print(f"baseline: clients {json.dumps(base)}, pipeline p99 {base_p99:.2f} ms")
            print(f"flood:    clients {json.dumps(flood)}, pipeline p99 {flood_p99:.2f} ms")
            print(
                f"RESULT reader_errors_baseline={base['reader_errors']} reader_p99_ms_baseline={base['reader_p99_ms']}"
                f" reader_errors_flood={flood['reader_errors']} reader_p99_ms_flood={flood['reader_p99_ms']}"
                f" pipeline_p99_ms_baseline={base_p99:.2f} pipeline_p99_ms_flood={flood_p99:.2f} lost={lost}"
                f" flood_requests={flood['flood_requests']} flood_ok={flood['flood_ok']}"
                f" flood_503={flood['flood_503']} public_peak_connections={peak}"
                f" journal_rows={args.journal_rows} paced_rate={args.paced_rate}"
            )
        finally:
            await rt.shutdown()
            sim.terminate()
            await sim.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", choices=("main", "clients"), default="main")
    parser.add_argument("--workload", type=Path, default=DEFAULT_WORKLOAD)
    parser.add_argument("--journal-rows", type=int, default=220_000)
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--paced-rate", type=float, default=500.0)
    parser.add_argument("--flood-connections", type=int, default=8)
    parser.add_argument("--stall-seconds", type=float, default=20.0)
    parser.add_argument("--base", default="")
    parser.add_argument("--user", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--flood", default="0")
    cli = parser.parse_args()
    if cli.role == "clients":
        print(
            json.dumps(asyncio.run(clients(cli.base, cli.user, cli.seconds, cli.flood == "1", cli.flood_connections)))
        )
    else:
        asyncio.run(run(cli))
