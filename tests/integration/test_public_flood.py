"""One anonymous client flooding the most expensive public reads cannot hurt anyone else (SPEC §19, issue 21).

A real runtime (simulator gateway → hikari → pipeline, aiohttp API) over a journal of tens of thousands of rows.
One client (one IP, through a trusted proxy's `X-Forwarded-For`) sends 90-day activity pages with varied `page`
and `page_size` from several connections at once, with no rate limit at all, while a second client reads metrics,
profiles and leaderboard pages and the gateway delivers messages. Nothing here measures time: the checks are
counts. The other client gets no error, every message is journaled, the public pool never held more than
`PUBLIC_DB_CONCURRENCY` connections (the gate's own count and PostgreSQL's `pg_stat_activity` agree), and
concurrent identical misses ran one query.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import text

from synapse_async.db.faults import is_transient
from synapse_async.runtime import Runtime
from tests.api_support import base
from tests.pipeline_support import ALICE, BOB, CAROL, GUILD, PLAIN, journal, pipeline_runtime, query, settle

PREFIX = f"/api/guilds/{GUILD}"
CONCURRENCY = 2
FLOODER = "203.0.113.9"
READER = "198.51.100.7"
SEED_ROWS = 30_000

_SEED = """
INSERT INTO reward_journal (guild_id, user_id, event_type, idempotency_key, xp_delta, star_delta, details, occurred_at)
SELECT :g,
       CASE WHEN i % 3 = 0 THEN CAST(:a AS bigint) WHEN i % 3 = 1 THEN CAST(:b AS bigint) ELSE CAST(:c AS bigint) END,
       CASE WHEN i % 50 = 0 THEN 'level_change' ELSE 'message' END,
       'flood-seed-' || i,
       CASE WHEN i % 50 = 0 THEN 0 ELSE 1 + i % 7 END,
       0,
       CASE WHEN i % 50 = 0 THEN jsonb_build_object('from', i / 50 % 40 + 1, 'to', i / 50 % 40 + 2)
            ELSE '{}'::jsonb END,
       now() - (i % 89) * interval '1 day' - (i % 1440) * interval '1 minute'
  FROM generate_series(1, :n) AS i
"""


@pytest.fixture(scope="module")
async def rt(fresh_database: str) -> AsyncIterator[Runtime]:
    env = {
        "PUBLIC_RATE_LIMIT_PER_MINUTE": "0",  # harder than §19 asks: the flood is not even rate limited
        "PUBLIC_DB_CONCURRENCY": str(CONCURRENCY),
        "PUBLIC_QUERY_TIMEOUT_MS": "1500",
        "TRUSTED_PROXIES": "127.0.0.1/32",
    }
    async with pipeline_runtime(fresh_database, 20, **env) as runtime:
        sim = runtime.simulator
        assert sim is not None
        for user in (ALICE, BOB, CAROL):
            await sim.message(user, "general", PLAIN)
        await settle(runtime)
        async with runtime.components.require_db().engine.begin() as conn:
            await conn.execute(text(_SEED), {"g": GUILD, "a": ALICE, "b": BOB, "c": CAROL, "n": SEED_ROWS})
            await conn.execute(text("ANALYZE reward_journal"))
        yield runtime


async def _get(http: aiohttp.ClientSession, rt: Runtime, path: str, client: str) -> tuple[int, bytes]:
    async with http.get(base(rt) + PREFIX + path, headers={"X-Forwarded-For": client}) as resp:
        return resp.status, await resp.read()


async def _public_connections(rt: Runtime) -> int:
    rows = await query(rt, "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'synapse-async-public'")
    return int(rows[0]["n"])


async def test_a_flood_of_expensive_reads_costs_other_clients_and_the_pipeline_nothing(rt: Runtime) -> None:
    assert rt.api is not None and rt.simulator is not None
    gate = rt.api.public_gate
    sim = rt.simulator
    before = len(await journal(rt, BOB, "message"))
    done = asyncio.Event()
    flood_status: dict[int, int] = {}
    reader_status: dict[int, int] = {}
    seen_connections: list[int] = []
    rng = random.Random(21)

    async def flood(http: aiohttp.ClientSession) -> None:
        for _ in range(12):
            path = f"/activity?days=90&page={rng.randint(1, 400)}&page_size={rng.randint(20, 100)}"
            status, _ = await _get(http, rt, path, FLOODER)
            flood_status[status] = flood_status.get(status, 0) + 1

    async def read(http: aiohttp.ClientSession) -> None:
        i = 0
        while not done.is_set():
            i += 1
            for path in ("/metrics", f"/members/{ALICE}", f"/leaderboard?season=lifetime&page_size={i % 100 + 1}"):
                status, _ = await _get(http, rt, path, READER)
                reader_status[status] = reader_status.get(status, 0) + 1

    async def deliver() -> None:
        for n in range(30):
            await sim.message(BOB, "general", f"{PLAIN} number {n}")

    async def watch() -> None:
        while not done.is_set():
            seen_connections.append(await _public_connections(rt))
            await asyncio.sleep(0.02)

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:
        background = [asyncio.create_task(read(http)), asyncio.create_task(watch())]
        try:
            await asyncio.gather(*(flood(http) for _ in range(8)), deliver())
        finally:
            done.set()
            await asyncio.gather(*background)
    await settle(rt)

    assert sum(flood_status.values()) == 96 and set(flood_status) <= {200, 503}, flood_status
    assert set(reader_status) == {200} and sum(reader_status.values()) >= 3, reader_status  # no error at all
    assert len(await journal(rt, BOB, "message")) == before + 30  # no message lost
    assert gate.peak <= CONCURRENCY and gate.acquired > 0
    assert seen_connections and max(seen_connections) <= CONCURRENCY


async def test_concurrent_identical_misses_run_one_query_and_totals_ignore_paging(rt: Runtime) -> None:
    assert rt.api is not None
    gate, totals = rt.api.public_gate, rt.api.public_totals
    path = "/activity?days=89&page=3&page_size=17"
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:
        acquired, computed = gate.acquired, totals.computations
        replies = await asyncio.gather(*(_get(http, rt, path, f"192.0.2.{i}") for i in range(20)))
        assert {status for status, _ in replies} == {200} and len({body for _, body in replies}) == 1
        assert gate.acquired - acquired == 2  # one page query and one count, for twenty requests
        assert totals.computations - computed == 1
        # Other pages of the same list share the count: one page query each, no count.
        acquired, computed = gate.acquired, totals.computations
        for page in range(4, 9):
            status, _ = await _get(http, rt, f"/activity?days=89&page={page}&page_size=17", FLOODER)
            assert status == 200
        assert gate.acquired - acquired == 5 and totals.computations == computed


async def test_public_statements_end_at_the_public_timeout(rt: Runtime) -> None:
    """Every statement on the public pool is cut by the server at `PUBLIC_QUERY_TIMEOUT_MS`; the error is a
    transient one, which the API answers with 503 `unavailable` (never a 500)."""
    assert rt.api is not None
    caught: list[BaseException] = []
    async with rt.api.public_read("192.0.2.200") as conn:
        assert (await conn.execute(text("SHOW statement_timeout"))).scalar_one() == "1500ms"
        try:
            await conn.execute(text("SELECT pg_sleep(3)"))
        except Exception as exc:
            caught.append(exc)
    assert len(caught) == 1 and is_transient(caught[0])


async def test_a_deep_page_continued_from_a_known_row_is_the_same_page(rt: Runtime) -> None:
    """Keyset continuation (where a previous page ended) answers exactly what `OFFSET` would."""
    from synapse_async.api.public_stats import _ACTIVITY_PAGE

    assert rt.api is not None
    anchors = rt.api.public_anchors
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        status, _ = await _get(http, rt, "/activity?days=87&page=50&page_size=40", READER)  # rows 1960-1999
        assert status == 200
        listing = ("activity", GUILD, 87, None)
        assert anchors.nearest(listing, 2000) is not None and anchors.nearest(listing, 1999) is None
        status, body = await _get(http, rt, "/activity?days=87&page=201&page_size=10", READER)  # offset 2000
        assert status == 200
    keyset_ids = [item["id"] for item in json.loads(body)["items"]]
    async with rt.components.require_db().engine.connect() as conn:
        params = {"g": GUILD, "days": 87, "event_type": None, "limit": 10, "offset": 2000}
        offset_ids = [r.id for r in (await conn.execute(_ACTIVITY_PAGE, params)).all()]
    assert len(offset_ids) == 10 and keyset_ids == offset_ids
