"""Run the Discord simulator as its own process.

`python -m synapse_async.sandbox --port 0 --members 20 --seed 42` prints one JSON line with the URLs and
credentials once it is listening (so a parent process can read where to connect), then serves until SIGTERM or
SIGINT. Useful for benchmarks and for running the app against a simulator it does not own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from synapse_async.sandbox.community import CommunityActivity
from synapse_async.sandbox.control import add_control_routes
from synapse_async.sandbox.server import DiscordSimulator
from synapse_async.sandbox.workload import add_small_guilds, add_workload_guild, load_workload


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m synapse_async.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--heartbeat-ms", type=int, default=41250)
    parser.add_argument("--shards", type=int, default=1, help="recommended shard count in GET /gateway/bot")
    parser.add_argument("--activity-per-minute", type=float, default=0.0, help="random member activity (0 = off)")
    parser.add_argument("--workload", type=Path, default=None, help="JSONL workload: add its guild, enable /_control/")
    parser.add_argument("--extra-guilds", type=int, default=0, help="minimal guilds to add (scale benchmark)")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    sim = DiscordSimulator(
        members=args.members,
        seed=args.seed,
        heartbeat_interval_ms=args.heartbeat_ms,
        recommended_shards=args.shards,
    )
    if args.workload is not None:
        rows = await asyncio.to_thread(load_workload, args.workload)  # file I/O off the event loop
        add_workload_guild(sim.world, rows)
        add_control_routes(sim, rows)
    if args.extra_guilds > 0:
        add_small_guilds(sim.world, args.extra_guilds)
    await sim.start(host=args.host, port=args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    activity = CommunityActivity(sim, per_minute=args.activity_per_minute, seed=args.seed)
    if args.activity_per_minute > 0:
        activity.start()
    line = {
        "api_url": sim.api_url,
        "gateway_url": sim.gateway_url,
        "oauth_url": sim.oauth_url,
        "token": sim.token,
        "client_id": str(sim.client_id),
        "client_secret": sim.client_secret,
        "port": sim.port,
    }
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await activity.stop()
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
