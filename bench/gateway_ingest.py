"""Gateway ingest benchmark: how fast a real hikari GatewayBot receives MESSAGE_CREATEs from the simulator.

Runs the Discord simulator and a `hikari.GatewayBot` in one event loop, dispatches `--events` member messages
(spread over the sandbox members and text channels, zlib-stream compressed as in production) and measures the
end-to-end rate and the dispatch → listener latency (in a burst that is mostly queueing; pace with `--rate` for
per-event latency). This is the ceiling the app's event intake (§7) works under;
run it before blaming the pipeline for slowness.

    .venv/bin/python bench/gateway_ingest.py --events 5000 --members 200 --shards 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

import hikari

from synapse_async.sandbox import DiscordSimulator
from synapse_async.sandbox.world import ChannelType

INTENTS = (
    hikari.Intents.GUILDS
    | hikari.Intents.GUILD_MEMBERS
    | hikari.Intents.GUILD_MESSAGES
    | hikari.Intents.MESSAGE_CONTENT
    | hikari.Intents.GUILD_MESSAGE_REACTIONS
    | hikari.Intents.GUILD_VOICE_STATES
)


async def run(events: int, members: int, shards: int, rate: float) -> dict[str, float | int]:
    sim = DiscordSimulator(members=members, seed=1, recommended_shards=shards)
    await sim.start()
    bot = hikari.GatewayBot(
        token=sim.token,
        rest_url=sim.api_url,
        intents=INTENTS,
        banner=None,
        logs=None,
        suppress_optimization_warning=True,
    )
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()

    async def on_message(event: hikari.GuildMessageCreateEvent) -> None:
        started = sent_at.get(int(event.message_id))
        if started is not None:
            latencies.append(time.perf_counter() - started)
            if len(latencies) >= events:
                done.set()

    bot.subscribe(hikari.GuildMessageCreateEvent, on_message)
    await bot.start(check_for_updates=False)
    try:
        await sim.wait_for_ready(shards)
        guild = sim.guild()
        users = sim.member_ids()
        channels = [c.id for c in guild.channels.values() if c.type == ChannelType.TEXT]
        begin = time.perf_counter()
        for index in range(events):
            if rate > 0:
                delay = begin + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            dispatch_start = time.perf_counter()
            message = await sim.message(
                users[index % len(users)], channels[index % len(channels)], f"benchmark message {index} hello world"
            )
            sent_at[int(message)] = dispatch_start
        await asyncio.wait_for(done.wait(), timeout=max(30.0, events / 100))
        elapsed = time.perf_counter() - begin
    finally:
        await bot.close()
        await sim.stop()
    ordered = sorted(latencies)
    return {
        "events": events,
        "shards": shards,
        "rate": rate,
        "seconds": round(elapsed, 3),
        "events_per_second": round(events / elapsed, 1),
        "latency_p50_ms": round(statistics.median(ordered) * 1000, 3),
        "latency_p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0, help="events per second (0 = one burst)")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.events, args.members, args.shards, args.rate))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
