"""HTTP traffic can never starve the pipeline (issue 14; SPEC §8.2, §21.4, §25, §27 item 10).

A flood of anonymous public reads used to share the pipeline's pool: lanes timed out, backed off, and the outage
buffer dropped events once they were too old. Here a flood runs while messages flow through the real simulator →
hikari → pipeline path, with a deliberately small pool, a short pool timeout and a short buffer age, so that any
connection the flood took from the lanes would show up as retries or dropped events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import text

from synapse_async.runtime import Runtime
from tests.pipeline_support import GUILD, wait_key
from tests.support import get_json, make_runtime, wait_for

MEMBERS = [100000000000001000 + i for i in range(10)]


@pytest.fixture(scope="module")
async def runtime(fresh_database: str) -> AsyncIterator[Runtime]:
    rt = make_runtime(
        fresh_database,
        DB_POOL_SIZE="3",
        DB_POOL_MAX_OVERFLOW="0",
        DB_POOL_TIMEOUT_SECONDS="0.2",
        PIPELINE_CONCURRENCY="1",
        PIPELINE_BUFFER_MAX_AGE_SECONDS="2",
        HTTP_DB_POOL_SIZE="2",
        HTTP_DB_WAIT_SECONDS="0.05",
        PUBLIC_RATE_LIMIT_PER_MINUTE="0",  # the flood comes from one IP: this test is about the pools
        PUBLIC_QUERY_TIMEOUT_MS="20000",  # the blocked reads below wait for a lock, not for a timeout
        TRUSTED_PROXIES="127.0.0.1/32",  # distinct clients by `X-Forwarded-For`
        SANDBOX_MEMBERS="10",
    )
    await rt.start()
    cache = rt.components.cache
    assert cache is not None
    await wait_for(lambda: GUILD in cache.known_guild_ids())
    assert rt.components.db is not None
    async with rt.components.db.engine.begin() as conn:  # a big guild makes every metrics read take a while
        await conn.execute(
            text(
                "INSERT INTO members (guild_id, user_id, display_name, xp, last_active_at)"
                " SELECT :g, 200000000000000000 + n, 'member', n, now() FROM generate_series(1, 100000) AS n"
            ),
            {"g": GUILD},
        )
        await conn.execute(text("ANALYZE members"))
    yield rt
    await rt.shutdown()


async def _flood(port: int, stop: asyncio.Event, statuses: Counter[int], workers: int = 48) -> None:
    url = f"http://127.0.0.1:{port}/api/guilds/{GUILD}/metrics"
    connector = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def worker() -> None:
            while not stop.is_set():
                async with http.get(url) as resp:
                    await resp.read()
                    statuses[resp.status] += 1

        await asyncio.gather(*(worker() for _ in range(workers)))


async def test_public_flood_while_messages_flow_loses_no_message(runtime: Runtime) -> None:
    sim, pipeline = runtime.simulator, runtime.pipeline
    assert sim is not None and pipeline is not None and runtime.http_port is not None
    statuses: Counter[int] = Counter()
    stop = asyncio.Event()
    stats = pipeline.stats
    processed, dropped, retries = stats.processed, stats.dropped, stats.retries
    flood = asyncio.create_task(_flood(runtime.http_port, stop, statuses))
    try:
        await wait_for(lambda: statuses.total() >= 200)  # the flood is in full swing before messages start
        ids = []
        for i in range(60):
            ids.append(int(await sim.message(MEMBERS[i % len(MEMBERS)], "general", f"message {i:03d} during a flood")))
            await asyncio.sleep(0.01)
        # Watched in memory, so the test itself takes no connection while the flood runs.
        await wait_for(lambda: stats.processed >= processed + 60 or stats.dropped > dropped, timeout=30)
        flooded = statuses.total()
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await flood
    assert flooded >= 400, statuses  # the flood kept going the whole time
    assert set(statuses) <= {200, 503}, statuses  # 503 = the HTTP gate refusing quickly, never a 500
    # No lane ever timed out waiting for a connection (the flood held none of the pipeline's), so nothing was
    # retried, buffered too long or dropped, and every message is journaled.
    assert (stats.retries - retries, stats.dropped - dropped, stats.failed) == (0, 0, 0), stats
    for message_id in ids:
        await wait_key(runtime, f"msg:{message_id}", timeout=5)
    _, health = await get_json(runtime.http_port, "/health")
    assert health["db"]["http_gate"]["slots"] == 2


async def test_public_gate_answers_503_quickly_when_its_slots_are_taken(runtime: Runtime) -> None:
    """Public reads blocked in the database hold every public slot; the next one is refused at once (after
    `HTTP_DB_WAIT_SECONDS`, not after the statement timeout), then all recover."""
    db, port, api = runtime.components.db, runtime.http_port, runtime.api
    assert db is not None and port is not None and api is not None
    base = f"http://127.0.0.1:{port}/api/guilds/{GUILD}"
    async with db.engine.connect() as locker:
        await locker.execute(text("LOCK TABLE member_achievements IN ACCESS EXCLUSIVE MODE"))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:

            async def status(path: str, client: str) -> int:
                async with http.get(base + path, headers={"X-Forwarded-For": client}) as resp:
                    return resp.status

            # one client per public slot, URLs no other test reads (identical requests would share one computation)
            gate = api.public_gate
            blocked = [
                asyncio.create_task(status(f"/achievements?page_size={40 - n}", f"192.0.2.{n + 1}"))
                for n in range(gate.concurrency)
            ]
            await wait_for(lambda: gate.snapshot()["in_use"] == gate.concurrency)
            started = time.monotonic()
            third = base + "/achievements?page_size=42"
            async with http.get(third, headers={"X-Forwarded-For": "192.0.2.100"}) as resp:
                waited = time.monotonic() - started
                assert resp.status == 503 and resp.headers["Retry-After"] == "1"
                assert (await resp.json())["error"]["code"] == "unavailable"
            assert waited < 5.0  # refused after the 0.05 s gate wait, not after the 20 s statement timeout
            assert not any(t.done() for t in blocked)
            await locker.rollback()
            assert await asyncio.gather(*blocked) == [200] * gate.concurrency
    assert gate.snapshot()["in_use"] == 0 and gate.snapshot()["rejected"] >= 1
