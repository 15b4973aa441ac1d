"""Gateway ingest benchmark (issue: Discord side): messages/s the bot ingests AND normalizes, versus the same hikari
client with a no-op listener, measured in the same run against a simulator in ANOTHER process.

    .venv/bin/python bench/gateway_ingest.py [--workload ../shared/bench/workload-5000.jsonl] [--repeat 2]

Both phases use `make_gateway_bot` (the app's exact intents and cache settings) and the same workload burst; the
rate is messages received ÷ time from the first to the last receipt. The last line is machine-readable:
`RESULT ingest_per_s=<float> normalized_per_s=<float> ratio=<float>`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

import hikari
from sqlalchemy.ext.asyncio import create_async_engine

from synapse_async.bot.authors import AuthorIndex
from synapse_async.bot.gateway import make_gateway_bot
from synapse_async.bot.normalizer import Normalizer
from synapse_async.cache.config_cache import ConfigCache
from synapse_async.domain.events import GatewayDomainEvent
from synapse_async.sandbox.workload import BENCH_GUILD_ID

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_WORKLOAD, count_rows, replay, start_simulator


class IntakeCounter:
    """The normalizer's sink in this benchmark: counts events per type and keeps nothing (no pipeline behind it)."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()

    def submit(self, event: GatewayDomainEvent) -> None:
        self.received[type(event).__name__] += 1


async def run_phase(info: dict[str, str], *, normalize: bool, expected: int) -> tuple[float, float]:
    """Return (messages/s from first to last receipt, bot-process CPU microseconds per message)."""
    bot = make_gateway_bot(info["token"], info["api_url"])
    received = 0
    first = last = 0.0
    done = asyncio.Event()
    available = asyncio.Event()

    def count() -> None:
        nonlocal received, first, last
        now = time.perf_counter()
        if received == 0:
            first = now
        received += 1
        last = now
        if received >= expected:
            done.set()

    if normalize:
        engine = create_async_engine("postgresql+asyncpg://unused@127.0.0.1/unused")  # never connected
        sink = IntakeCounter()
        normalizer = Normalizer(sink, ConfigCache(engine), authors=AuthorIndex(100_000))
        normalizer.bind(bot)

        async def on_message(event: hikari.GuildMessageCreateEvent) -> None:
            normalizer.on_message_create(event)
            count()
    else:

        async def on_message(event: hikari.GuildMessageCreateEvent) -> None:
            count()

    async def on_available(event: hikari.GuildAvailableEvent) -> None:
        if int(event.guild_id) == BENCH_GUILD_ID:
            available.set()

    bot.subscribe(hikari.GuildMessageCreateEvent, on_message)
    bot.subscribe(hikari.GuildAvailableEvent, on_available)
    await bot.start(check_for_updates=False, shard_count=1)
    try:
        await asyncio.wait_for(available.wait(), 60)
        cpu_before = time.process_time()
        await replay(info)
        await asyncio.wait_for(done.wait(), 300)
        cpu_us = (time.process_time() - cpu_before) / expected * 1e6
    finally:
        await bot.close()
        if normalize:
            await engine.dispose()
    return (received / (last - first) if last > first else float("nan")), cpu_us


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", type=Path, default=DEFAULT_WORKLOAD)
    parser.add_argument("--repeat", type=int, default=2, help="alternating rounds per phase; the best of each is kept")
    args = parser.parse_args()
    expected = count_rows(args.workload)
    proc, info = await start_simulator(args.workload)
    try:
        ingest, normalized = [], []
        for _ in range(args.repeat):  # alternate so machine noise hits both phases alike
            ingest.append(await run_phase(info, normalize=False, expected=expected))
            normalized.append(await run_phase(info, normalize=True, expected=expected))
    finally:
        proc.terminate()
        await proc.wait()
    best_ingest, best_norm = max(r for r, _ in ingest), max(r for r, _ in normalized)
    cpu_ingest, cpu_norm = min(c for _, c in ingest), min(c for _, c in normalized)
    print(f"messages per round:        {expected}")
    print(f"ingest only (no-op):       {', '.join(f'{r:,.0f}' for r, _ in ingest)} msg/s  (best {best_ingest:,.0f})")
    print(f"ingest + normalize:        {', '.join(f'{r:,.0f}' for r, _ in normalized)} msg/s  (best {best_norm:,.0f})")
    print(f"bot CPU per message:       {cpu_ingest:.0f} µs no-op, {cpu_norm:.0f} µs normalizing")
    print(f"ratio normalized/ingest:   {best_norm / best_ingest:.3f}")
    print(f"RESULT ingest_per_s={best_ingest:.1f} normalized_per_s={best_norm:.1f} ratio={best_norm / best_ingest:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
