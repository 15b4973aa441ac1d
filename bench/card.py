"""Rank card benchmark (SPEC §29): cold render time, cached-card requests/s, and the event loop during a burst.

1. Cold render: `card.render` of cards that differ in every figure (nothing cached but the avatar bytes and the
   fonts), p50/p99 in ms; the in-run baseline is the PNG encoding of a blank 934 × 282 image (the floor of any
   card).
2. Loop latency: a ticker asks for a 1 ms sleep over and over and records how late it wakes up, first idle (the
   baseline), then while a burst of `--burst` distinct cards goes through `CardService` (its render pool,
   `CARD_RENDER_CONCURRENCY` threads). Rendering is off the loop, so the loop's p99 lateness must stay under 5 ms.
3. Cached card: the app runs here (sandbox runtime, embedded PostgreSQL unless DATABASE_URL is set, public rate
   limit off), one member's card is drawn once, then a child process (bench/api.py's load client) requests it
   for `--seconds`; the baseline is the same client against a bare aiohttp handler.

Last line: `RESULT render_p50_ms=… render_p99_ms=… blank_png_p50_ms=… loop_p99_ms=… loop_idle_p99_ms=…
cached_rps=… cached_p99_ms=… baseline_rps=…`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from PIL import Image

from synapse_async.card import CardData, FontBook, render
from synapse_async.config import load_config
from synapse_async.runtime import Runtime
from synapse_async.sandbox import SANDBOX_GUILD_ID
from synapse_async.services.card import CardService, CardState

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fresh_database, percentile

API_BENCH = str(Path(__file__).resolve().parent / "api.py")
USER = 300_000_000_000_000_001
NAMES = ("Ada Lovelace", "Σωκράτης", "Достоевский", "محمد علي", "שלום עולם", "山田太郎", "Party 🎉", "Zoë")


def avatar_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), (40, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def card_data(i: int, avatar: bytes) -> CardData:
    return CardData(
        display_name=f"{NAMES[i % len(NAMES)]} {i}",
        avatar=avatar,
        level=1 + i % 90,
        rank=1 + i,
        ranked_of=10_000,
        xp_into_level=i * 7 % 1000,
        xp_for_next_level=1000,
        season_stars=i * 3,
        gold=i * 11,
    )


def ms(values: list[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 2)


def cold_renders(fonts: FontBook, count: int) -> dict[str, float]:
    avatar = avatar_png()
    render(card_data(-1, avatar), fonts)  # loads the fonts of every sample script once
    timings = []
    for i in range(count):
        started = time.perf_counter()
        render(card_data(i, avatar), fonts)
        timings.append(time.perf_counter() - started)
    blank = []
    for _ in range(count):
        started = time.perf_counter()
        Image.new("RGB", (934, 282), (43, 45, 49)).save(io.BytesIO(), format="PNG", compress_level=1)
        blank.append(time.perf_counter() - started)
    return {"render_p50_ms": ms(timings, 0.5), "render_p99_ms": ms(timings, 0.99), "blank_png_p50_ms": ms(blank, 0.5)}


async def loop_lateness(seconds: float | None, work: asyncio.Future[Any] | None = None) -> list[float]:
    """How late 1 ms sleeps wake up (seconds), for `seconds` or until `work` is done."""
    loop = asyncio.get_running_loop()
    late: list[float] = []
    end = loop.time() + (seconds or 0)
    while (work is not None and not work.done()) or (work is None and loop.time() < end):
        asked = loop.time()
        await asyncio.sleep(0.001)
        late.append(max(loop.time() - asked - 0.001, 0.0))
    return late


async def burst(fonts: FontBook, count: int, concurrency: int) -> dict[str, float]:
    service = CardService(cdn="http://127.0.0.1:9", concurrency=concurrency, queue=count)
    service.start()
    avatar = avatar_png()
    states = [
        CardState(
            guild_id=1,
            user_id=USER + i,
            display_name=f"{NAMES[i % len(NAMES)]} {i}",
            avatar_url=f"avatar-{i}",
            default_avatar_url="default",
            level=1 + i % 90,
            rank=i + 1,
            ranked_of=10_000,
            xp_into_level=i,
            xp_for_next_level=1000,
            season_stars=i,
            gold=i,
            accent="#5865f2",
            theme="dark",
            xp_name="XP",
            stars_name="Stars",
            gold_name="Gold",
        )
        for i in range(count + concurrency)
    ]
    for state in states:
        service._avatars[state.avatar_url] = avatar  # "avatar cached": the burst measures rendering only
    warm, states = states[:concurrency], states[concurrency:]
    await asyncio.gather(*(service.card(s) for s in warm))  # the workers are up and have their fonts
    idle = await loop_lateness(1.0)
    started = time.perf_counter()
    work = asyncio.ensure_future(asyncio.gather(*(service.card(s) for s in states)))
    busy = await loop_lateness(None, work)
    await work
    elapsed = time.perf_counter() - started
    await service.close()
    return {
        "loop_p99_ms": ms(busy, 0.99),
        "loop_max_ms": round(max(busy) * 1000, 2),
        "loop_idle_p99_ms": ms(idle, 0.99),
        "burst_cards_per_s": round(count / elapsed, 1),
    }


async def run_child(*args: str, stdin: bytes | None = None) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, API_BENCH, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate(stdin)
    return dict(json.loads(out))


async def cached_requests(args: argparse.Namespace) -> dict[str, Any]:
    async with fresh_database("bench_card") as database_url:
        env = {
            "DATABASE_URL": database_url,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": "0",
            "LOG_LEVEL": "WARNING",
            "PUBLIC_RATE_LIMIT_PER_MINUTE": "0",
            "SANDBOX_ALLOW_EXTERNAL_DATABASE": "true",
            "SANDBOX_MEMBERS": "5",
            "DISCORD_CDN_URL": "http://127.0.0.1:9",  # nothing listens: the default avatar stand-in, at once
        }
        rt = Runtime(load_config(env))
        baseline = await asyncio.create_subprocess_exec(
            sys.executable, API_BENCH, "--role", "baseline", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await rt.start()
            cache = rt.components.require_cache()
            while SANDBOX_GUILD_ID not in cache.known_guild_ids():  # noqa: ASYNC110 - polling a cache
                await asyncio.sleep(0.05)
            conn = await asyncpg.connect(database_url)
            await conn.execute(
                "INSERT INTO members (guild_id, user_id, display_name, xp, level, peak_level, gold) "
                "VALUES ($1, $2, 'Ada Lovelace', 12345, 9, 9, 777)",
                SANDBOX_GUILD_ID,
                USER,
            )
            await conn.close()
            assert rt.cards is not None
            # The member's own avatar URL is the default one (no hash); with nothing listening it is "not fetched",
            # so keep a stand-in in the avatar cache as a real CDN answer would be kept.
            rt.cards._avatars[f"http://127.0.0.1:9/embed/avatars/{(USER >> 22) % 6}.png"] = avatar_png()
            url = f"http://127.0.0.1:{rt.http_port}/api/guilds/{SANDBOX_GUILD_ID}/members/{USER}/card.png"
            assert baseline.stdout is not None
            port = json.loads(await baseline.stdout.readline())["port"]
            async with aiohttp.ClientSession() as http, http.get(url) as first:  # drawn once (workers start)
                assert first.status == 200, first.status
            load = ("--role", "load", "--seconds", str(args.seconds), "--connections", str(args.connections))
            cached = await run_child(*load, stdin=json.dumps([url]).encode())
            base = await run_child(*load, stdin=json.dumps([f"http://127.0.0.1:{port}/constant"]).encode())
            return {"cached": cached, "baseline": base, "renders": rt.cards.renders}
        finally:
            if baseline.stdin is not None:
                baseline.stdin.close()
            await baseline.wait()
            await rt.shutdown()


async def main(args: argparse.Namespace) -> None:
    fonts = FontBook.from_system()
    cold = cold_renders(fonts, args.renders)
    print(f"cold: {json.dumps(cold)}", flush=True)
    loop = await burst(fonts, args.burst, args.concurrency)
    print(f"burst: {json.dumps(loop)}", flush=True)
    served = await cached_requests(args)
    print(f"cached: {json.dumps(served)}", flush=True)
    print(
        f"RESULT render_p50_ms={cold['render_p50_ms']} render_p99_ms={cold['render_p99_ms']}"
        f" blank_png_p50_ms={cold['blank_png_p50_ms']} loop_p99_ms={loop['loop_p99_ms']}"
        f" loop_idle_p99_ms={loop['loop_idle_p99_ms']} cached_rps={served['cached']['rps']}"
        f" cached_p99_ms={served['cached']['p99']} baseline_rps={served['baseline']['rps']}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    asyncio.run(main(parser.parse_args()))
