"""Config cache + LISTEN supervisor against a real PostgreSQL (SPEC §16; invariant 8 of §27)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text

from synapse_async.cache.config_cache import ConfigCache
from synapse_async.cache.listener import ConfigListener, ListenerSettings, ListenerState
from synapse_async.db.notify import notify_config, notify_config_changes
from synapse_async.db.urls import to_asyncpg_dsn
from synapse_async.runtime import Runtime
from synapse_async.services.audit import Actor
from synapse_async.services.settings import update_settings
from tests.conftest import create_database, drop_database
from tests.support import get_json, make_runtime, wait_for

GUILD_A = 900000000000000001
GUILD_B = 900000000000000002


@pytest.fixture(scope="module")
async def runtime(fresh_database: str) -> AsyncIterator[Runtime]:
    rt = make_runtime(fresh_database)
    await rt.start()
    assert rt.components.db is not None
    async with rt.components.db.sessions.begin() as s:
        for gid in (GUILD_A, GUILD_B):
            await s.execute(
                text("INSERT INTO guilds (guild_id, name, owner_id, joined_at) VALUES (:g, :n, 1, now())"),
                {"g": gid, "n": f"guild {gid}"},
            )
            await notify_config(s, "guilds", gid)
    cache = rt.components.cache
    assert cache is not None
    await wait_for(lambda: {GUILD_A, GUILD_B} <= cache.known_guild_ids())
    yield rt
    await rt.shutdown()


def _cache(rt: Runtime) -> ConfigCache:
    assert rt.components.cache is not None
    return rt.components.cache


async def test_probes_report_ready_with_pool_and_listener_state(runtime: Runtime) -> None:
    assert runtime.http_port is not None
    status, body = await get_json(runtime.http_port, "/ready")
    assert (status, body) == (200, {"ready": True})
    status, health = await get_json(runtime.http_port, "/health")
    assert status == 200
    assert health["status"] == "ok"
    assert health["db"]["pool"]["size"] == 10 and health["db"]["last_probe_ok"] is True
    assert health["cache_listener"]["state"] == "connected" and health["cache_listener"]["mode"] == "listen"
    assert {"db_probe", "heap_trim", "cache_listener", "pipeline", "announcer", "voice_ticker", "season_rollover"} <= {
        t["name"] for t in health["tasks"]
    }


async def test_rolled_back_notify_is_never_seen_and_committed_one_is(runtime: Runtime) -> None:
    cache = _cache(runtime)
    assert runtime.components.db is not None
    sessions = runtime.components.db.sessions
    before = cache.reloads[f"settings:{GUILD_A}"]

    session = sessions()
    async with session:
        await session.begin()
        await session.execute(
            text("INSERT INTO settings (guild_id, key, value) VALUES (:g, 'cooldown.seconds', '7'::jsonb)"),
            {"g": GUILD_A},
        )
        await notify_config(session, "settings", GUILD_A)
        await session.rollback()
    # A marker notification sent afterwards proves the listener has drained everything before it.
    async with sessions.begin() as s:
        await notify_config(s, "settings", GUILD_B)
    await wait_for(lambda: cache.reloads[f"settings:{GUILD_B}"] >= 1)
    assert cache.reloads[f"settings:{GUILD_A}"] == before
    assert cache.settings(GUILD_A).int("cooldown.seconds") == 30

    async with sessions.begin() as s:
        await s.execute(
            text("INSERT INTO settings (guild_id, key, value) VALUES (:g, 'cooldown.seconds', '7'::jsonb)"),
            {"g": GUILD_A},
        )
        await notify_config(s, "settings", GUILD_A)
    await wait_for(lambda: cache.settings(GUILD_A).int("cooldown.seconds") == 7)
    assert cache.reloads[f"settings:{GUILD_A}"] == before + 1


async def test_settings_change_reloads_only_that_guilds_settings(runtime: Runtime) -> None:
    cache = _cache(runtime)
    assert runtime.components.db is not None
    full_before = cache.full_reloads
    counts_before = dict(cache.reloads)
    actor = Actor("svc:test", "service", "api")
    await update_settings(runtime.components.db.sessions, GUILD_B, {"rewards.message.xp": 40}, actor)
    await wait_for(lambda: cache.settings(GUILD_B).int("rewards.message.xp") == 40)
    diff = {k: v - counts_before.get(k, 0) for k, v in cache.reloads.items() if v != counts_before.get(k, 0)}
    assert diff == {f"settings:{GUILD_B}": 1}
    assert cache.full_reloads == full_before
    assert cache.settings(GUILD_A).int("rewards.message.xp") == 15


async def test_listener_reconnects_and_full_reload_catches_missed_changes(runtime: Runtime, pg_server_url: str) -> None:
    cache = _cache(runtime)
    listener = runtime.components.listener
    assert listener is not None and runtime.components.db is not None
    connections, full_reloads = listener.connections, cache.full_reloads
    old_pid = listener.backend_pid

    admin = await asyncpg.connect(pg_server_url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", old_pid)
    finally:
        await admin.close()
    await wait_for(lambda: listener.state is not ListenerState.CONNECTED)
    # Changed while the listener is down: its NOTIFY reaches nobody.
    async with runtime.components.db.sessions.begin() as s:
        await s.execute(
            text("INSERT INTO settings (guild_id, key, value) VALUES (:g, 'message.min_length', '12'::jsonb)"),
            {"g": GUILD_B},
        )
        await notify_config(s, "settings", GUILD_B)
    await wait_for(lambda: listener.state is ListenerState.CONNECTED and listener.connections == connections + 1)
    assert listener.backend_pid != old_pid
    assert cache.full_reloads > full_reloads
    assert cache.settings(GUILD_B).int("message.min_length") == 12


# Any database role can NOTIFY: none of these may raise in the listener callback, reload anything, or widen into
# a whole-table reload. "settings:²" passed `str.isdigit()` and then made `int()` raise inside the callback.
HOSTILE_PAYLOADS = [
    "members:1",
    "settings:²",
    "settings:١٢٣",
    "settings:" + "1" * 5000,
    "settings:" + "9" * 21,
    f"settings:{2**63}",
    "settings:0",
    "settings:-1",
    "settings: 1",
    "settings:",
    "",
]


@pytest.mark.parametrize("payload", HOSTILE_PAYLOADS)
async def test_unknown_or_malformed_notifications_are_ignored(runtime: Runtime, payload: str) -> None:
    cache = _cache(runtime)
    listener = runtime.components.listener
    assert runtime.components.db is not None and listener is not None
    before = dict(cache.reloads)
    full_reloads, connections = cache.full_reloads, listener.connections
    async with runtime.components.db.engine.begin() as conn:
        await conn.execute(text("SELECT pg_notify('synapse_config', :p)"), {"p": payload})
    # A marker notification sent afterwards proves the listener has handled everything before it.
    async with runtime.components.db.sessions.begin() as s:
        await notify_config(s, "guilds", GUILD_A)
    await wait_for(lambda: cache.reloads[f"guilds:{GUILD_A}"] > before.get(f"guilds:{GUILD_A}", 0))
    diff = {k: v - before.get(k, 0) for k, v in cache.reloads.items() if v != before.get(k, 0)}
    assert diff == {f"guilds:{GUILD_A}": 1}  # exactly the marker's key reloaded, nothing for the payload
    assert cache.full_reloads == full_reloads and listener.connections == connections
    assert listener.state is ListenerState.CONNECTED


async def test_notify_config_refuses_tables_outside_the_allowlist(runtime: Runtime) -> None:
    assert runtime.components.db is not None
    with pytest.raises(ValueError, match="not a config table"):
        async with runtime.components.db.sessions.begin() as s:
            await notify_config(s, "members", GUILD_A)


async def test_notify_flood_keeps_the_reload_queue_bounded(runtime: Runtime) -> None:
    """Thousands of distinct NOTIFYs collapse into one full reload instead of an unbounded queue."""
    cache = _cache(runtime)
    assert runtime.database_url is not None and runtime.components.db is not None
    limit = 20
    listener = ConfigListener(runtime.database_url, cache, ListenerSettings(ping_seconds=0.3, reload_queue_max=limit))
    task = asyncio.create_task(listener.run())
    try:
        await wait_for(lambda: listener.state is ListenerState.CONNECTED)
        full_reloads = cache.full_reloads
        async with runtime.components.db.engine.begin() as conn:
            await conn.execute(
                text("SELECT pg_notify('synapse_config', 'settings:' || g) FROM generate_series(1, 3000) AS g")
            )
        await wait_for(lambda: listener.reload_overflows >= 1 and cache.full_reloads > full_reloads)
        await wait_for(lambda: listener.queued_reloads == 0)
        assert listener.reload_queue_high_water <= limit + 1
        assert listener.snapshot()["reload_overflows"] == listener.reload_overflows
        # Targeted reloads work again once the flood is absorbed, and reload exactly their key.
        before = cache.reloads[f"settings:{GUILD_B}"]
        async with runtime.components.db.sessions.begin() as s:
            await notify_config(s, "settings", GUILD_B)
        await wait_for(lambda: cache.reloads[f"settings:{GUILD_B}"] >= before + 2)  # this listener and the app's
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_public_settings_and_metrics_endpoints(runtime: Runtime) -> None:
    assert runtime.http_port is not None
    status, body = await get_json(runtime.http_port, f"/api/guilds/{GUILD_A}/settings")
    assert status == 200 and body["guild_name"] == f"guild {GUILD_A}" and body["economy.xp_name"] == "XP"
    assert "rewards.message.xp" not in body
    status, body = await get_json(runtime.http_port, f"/api/guilds/{GUILD_A}/metrics")
    assert status == 200 and body["members"] == 0 and body["guild_id"] == str(GUILD_A)
    status, body = await get_json(runtime.http_port, "/api/guilds/123/metrics")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await get_json(runtime.http_port, "/api/guilds/abc/metrics")
    assert status == 400 and body["error"]["details"][0]["field"] == "guild_id"


async def test_a_failed_targeted_reload_is_retried_while_the_listener_stays_connected(pg_server_url: str) -> None:
    """SPEC §16.1/§27.8: a reload that times out (here: a lock held past the statement timeout) is not lost."""
    url = await create_database(pg_server_url)
    rt = make_runtime(url, DB_STATEMENT_TIMEOUT_MS="300", LISTEN_BACKOFF_MAX_SECONDS="0.2")
    locker = await asyncpg.connect(to_asyncpg_dsn(url))
    try:
        await rt.start()
        cache, listener = _cache(rt), rt.components.listener
        assert listener is not None
        await locker.execute(
            "INSERT INTO guilds (guild_id, name, owner_id, joined_at) VALUES ($1, 'locked', 1, now())", GUILD_A
        )
        await locker.execute("SELECT pg_notify('synapse_config', $1)", f"guilds:{GUILD_A}")
        await wait_for(lambda: GUILD_A in cache.known_guild_ids())

        async def blocked() -> bool:
            sql = "SELECT count(*) FROM pg_locks WHERE relation = 'settings'::regclass AND NOT granted"
            return bool(await locker.fetchval(sql))

        async def unblocked() -> bool:
            return not await blocked()

        async with locker.transaction():
            await locker.execute("LOCK TABLE settings IN ACCESS EXCLUSIVE MODE")
            await locker.execute(
                "INSERT INTO settings (guild_id, key, value) VALUES ($1, 'rewards.message.xp', '33'::jsonb)", GUILD_A
            )
            notifier = await asyncpg.connect(to_asyncpg_dsn(url))
            try:
                await notifier.execute("SELECT pg_notify('synapse_config', $1)", f"settings:{GUILD_A}")
            finally:
                await notifier.close()
            # The targeted reload blocks on the lock, then its statement times out: the reload has failed.
            await wait_for(blocked)
            await wait_for(unblocked)
            assert listener.state is ListenerState.CONNECTED  # no reconnect, so no full reload will cover it
            assert cache.settings(GUILD_A).int("rewards.message.xp") == 15
        await wait_for(lambda: cache.settings(GUILD_A).int("rewards.message.xp") == 33)
        assert listener.reload_failures == 0
    finally:
        await locker.close()
        await rt.shutdown()
        await drop_database(pg_server_url, url)


async def test_a_batched_guild_sync_is_reloaded_with_one_query_per_table(runtime: Runtime) -> None:
    """A batched start-up sync commits NOTIFYs of hundreds of guilds at once (issue 27): the listener reloads
    them together, one query per table, instead of one per (table, guild), and the cache holds every guild."""
    cache = _cache(runtime)
    db = runtime.components.db
    assert db is not None and runtime.components.listener is not None
    guilds = [910000000000000000 + i for i in range(300)]
    queries = cache.reload_queries
    async with db.sessions.begin() as s:
        await s.execute(
            text(
                "INSERT INTO guilds (guild_id, name, owner_id)"
                " SELECT g, 'batch ' || g, 1 FROM unnest(CAST(:g AS bigint[])) g"
            ),
            {"g": guilds},
        )
        await s.execute(
            text(
                "INSERT INTO guild_channels (guild_id, channel_id, name, type)"
                " SELECT g, g + 1, 'general', 'text' FROM unnest(CAST(:g AS bigint[])) g"
            ),
            {"g": guilds},
        )
        await notify_config_changes(s, [(t, g) for g in guilds for t in ("guilds", "guild_channels")])
    await wait_for(lambda: set(guilds) <= cache.known_guild_ids())
    await wait_for(lambda: all(g + 1 in cache.guild(g).channels for g in guilds))
    assert all(cache.reloads[f"guild_channels:{g}"] == 1 for g in guilds)
    assert cache.reload_queries - queries <= 10  # 600 notifications; one query each would be 600
    assert runtime.components.listener.reload_overflows == 0
