"""Degraded modes stay visible and bounded (SPEC §16.2, §24, §25; technical-debt items 2 and 3).

The circuit-breaker test runs against its OWN embedded PostgreSQL server, because it stops and restarts it.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text

from synapse_async.cache.listener import ListenerState
from synapse_async.db.embedded import EmbeddedPostgres
from synapse_async.db.migrate import migrate
from synapse_async.db.notify import notify_config
from tests.support import get_json, make_runtime, wait_for

GUILD = 910000000000000001


async def test_pool_exhaustion_answers_503_within_the_pool_timeout(fresh_database: str) -> None:
    rt = make_runtime(
        fresh_database,
        DB_POOL_SIZE="2",
        DB_POOL_MAX_OVERFLOW="0",
        DB_POOL_TIMEOUT_SECONDS="0.5",
        HTTP_DB_POOL_SIZE="2",
        HTTP_DB_WAIT_SECONDS="5",
        PUBLIC_DB_CONCURRENCY="2",
        PIPELINE_CONCURRENCY="1",
    )
    await rt.start()
    try:
        db = rt.components.db
        assert db is not None and rt.http_port is not None
        async with db.sessions.begin() as s:
            await s.execute(
                text("INSERT INTO guilds (guild_id, name, owner_id, joined_at) VALUES (:g, 'g', 1, now())"),
                {"g": GUILD},
            )
            await notify_config(s, "guilds", GUILD)
        assert rt.components.cache is not None
        cache = rt.components.cache
        await wait_for(lambda: GUILD in cache.known_guild_ids())
        status, _ = await get_json(rt.http_port, f"/api/guilds/{GUILD}/metrics")
        assert status == 200

        # Held outside the public gate, so the request gets its slot and then waits for the public pool itself.
        held = [await db.public_engine.connect() for _ in range(2)]
        try:
            for conn in held:
                await conn.execute(text("SELECT 1"))
            started = time.monotonic()
            # a URL not asked before: the first answer of /metrics is micro-cached
            status, body = await get_json(rt.http_port, f"/api/guilds/{GUILD}/leaderboard?page_size=3")
            waited = time.monotonic() - started
            assert status == 503 and body["error"]["code"] == "unavailable"
            # The answer came after the pool wait (0.5 s), and because of it: well before the request gate's
            # 5 s or the statement timeout could have answered instead. The bound is 10x the timeout, so a
            # busy machine cannot make it flaky, while a hang or an unbounded wait still fails it.
            assert 0.5 <= waited < 5.0
            _, health = await get_json(rt.http_port, "/health")
            assert health["db"]["public_pool"]["checked_out"] >= 2
        finally:
            for conn in held:
                await conn.close()
        status, _ = await get_json(rt.http_port, f"/api/guilds/{GUILD}/metrics")
        assert status == 200
    finally:
        await rt.shutdown()


async def test_app_waits_with_migrations_pending_until_the_schema_reaches_head(fresh_database: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from synapse_async.db.urls import to_sqlalchemy_url

    engine = create_async_engine(to_sqlalchemy_url(fresh_database))
    try:
        await migrate(engine, "head")
        await migrate(engine, "base")  # one revision behind head
        rt = make_runtime(fresh_database, DB_AUTO_MIGRATE="false")
        startup = asyncio.create_task(rt.start())
        try:
            await wait_for(lambda: rt.http_port is not None)
            assert rt.http_port is not None
            status, body = await get_json(rt.http_port, "/ready")
            await wait_for(lambda: rt.components.db is not None and rt.components.db.probe_state.ok)
            status, body = await get_json(rt.http_port, "/ready")
            assert status == 503 and "migrations_pending" in body["reasons"]
            assert "cache_not_loaded" in body["reasons"]
            status, body = await get_json(rt.http_port, "/api/guilds/1/settings")
            assert status == 503 and body["error"]["code"] == "unavailable"
            assert not startup.done()
            before, after = await migrate(engine, "head")
            assert before is None and after is not None
            await asyncio.wait_for(startup, 30)
            status, body = await get_json(rt.http_port, "/ready")
            assert (status, body) == (200, {"ready": True})
        finally:
            if not startup.done():
                startup.cancel()
            await rt.shutdown()
    finally:
        await engine.dispose()


async def test_circuit_opens_while_database_is_down_and_closes_when_it_returns(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg")
    url = await server.start()
    rt = make_runtime(
        url,
        LISTEN_MAX_FAILURES="2",
        LISTEN_PING_SECONDS="0.2",
        LISTEN_BACKOFF_MAX_SECONDS="0.05",
        LISTEN_HALF_OPEN_SECONDS="0.5",
        CACHE_POLL_SECONDS="0.2",
        DB_PROBE_SECONDS="0.2",
        DB_POOL_TIMEOUT_SECONDS="0.5",
    )
    try:
        await rt.start()
        listener = rt.components.listener
        cache = rt.components.cache
        assert listener is not None and cache is not None and rt.http_port is not None
        await wait_for(lambda: listener.state is ListenerState.CONNECTED)

        await server.stop()
        await wait_for(lambda: listener.state is ListenerState.CIRCUIT_OPEN, timeout=30)
        polls = listener.poll_reloads
        await wait_for(lambda: listener.poll_reloads > polls, timeout=30)  # polling while open
        await wait_for(lambda: rt.components.db is not None and not rt.components.db.probe_state.ok, timeout=30)
        status, health = await get_json(rt.http_port, "/health")
        assert status == 200 and health["status"] == "degraded"
        assert health["cache_listener"]["state"] == "circuit_open"
        assert health["cache_listener"]["mode"] == "polling"
        assert health["cache_listener"]["consecutive_failures"] >= 2
        # Only the error's class and a short code: the exception text (socket path, host, user) stays in the log.
        last_error = health["cache_listener"]["last_error"]
        assert set(last_error) == {"class", "code"} and len(last_error["code"]) <= 20
        assert str(tmp_path) not in json.dumps(health) and "postgres" not in json.dumps(last_error).lower()
        status, body = await get_json(rt.http_port, "/ready")
        assert status == 503 and "db_unreachable" in body["reasons"]

        full_reloads = cache.full_reloads
        restarted = EmbeddedPostgres(tmp_path / "pg")
        assert await restarted.start() == url
        server = restarted
        await wait_for(lambda: listener.state is ListenerState.CONNECTED, timeout=30)
        assert cache.full_reloads > full_reloads
        await wait_for(lambda: rt.components.db is not None and rt.components.db.probe_state.ok, timeout=30)

        # A periodic task whose poll met the server while it was still starting is shown `failed` until its restart
        # (TASK_RESTART_SECONDS); once everything has had its next run, the process reports `ok` again.
        async def healthy() -> bool:
            _, current = await get_json(rt.http_port, "/health")
            return bool(current["status"] == "ok")

        await wait_for(healthy, timeout=30)
        status, health = await get_json(rt.http_port, "/health")
        assert health["status"] == "ok" and health["cache_listener"]["mode"] == "listen"
        status, _ = await get_json(rt.http_port, "/ready")
        assert status == 200
    finally:
        await rt.shutdown()
        await server.stop()


@pytest.mark.parametrize("path", ["/api/guilds/1/nothing-here", "/nowhere"])
async def test_unknown_routes_use_the_uniform_error_body(fresh_database: str, path: str) -> None:
    rt = make_runtime(fresh_database)
    await rt.start()
    try:
        assert rt.http_port is not None
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{rt.http_port}{path}", headers={"X-Request-ID": "abc-123"}) as r:
                assert r.status == 404
                assert (await r.json())["error"]["code"] == "not_found"
                assert r.headers["X-Request-ID"] == "abc-123"
    finally:
        await rt.shutdown()
