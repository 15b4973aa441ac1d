"""Start-up in many guilds (SPEC §3.2 step 9, §25): one GUILD_CREATE per guild must not become one pool checkout
each at once. Before the structure writer, 10,000 guilds meant 10,000 syncs waiting for a pooled connection
together: they timed out, retried together and were mostly given up, and the pipeline and the job runner were
starved meanwhile. Here a small pool with a short checkout timeout makes the old behaviour fail at 300 guilds.
The GUILD_CREATEs that arrive together are synced in batches, one transaction each (issue 27).
"""

from __future__ import annotations

import secrets

from sqlalchemy import text
from structlog.testing import capture_logs

from synapse_async.bot.gateway import DiscordGateway
from synapse_async.sandbox import DiscordSimulator
from synapse_async.sandbox.workload import add_small_guilds
from tests.support import get_json, make_runtime, wait_for

GUILDS = 300


async def test_hundreds_of_guild_syncs_share_a_small_pool_without_timeouts(fresh_database: str) -> None:
    sim = DiscordSimulator(members=3, seed=11)
    extra = add_small_guilds(sim.world, GUILDS)
    await sim.start()
    rt = make_runtime(
        fresh_database,
        DISCORD_TOKEN=sim.token,
        DISCORD_API_URL=sim.api_url,
        JWT_SECRET=secrets.token_urlsafe(48),
        DB_POOL_SIZE="3",
        DB_POOL_MAX_OVERFLOW="0",
        DB_POOL_TIMEOUT_SECONDS="0.5",
        PIPELINE_CONCURRENCY="1",
        GUILD_SYNC_CONCURRENCY="1",
    )
    try:
        with capture_logs() as logs:
            await rt.start()
            gateway = rt.gateway
            db = rt.components.db
            assert isinstance(gateway, DiscordGateway) and db is not None

            async def stored() -> int:
                async with db.engine.connect() as conn:
                    return int((await conn.execute(text("SELECT count(*) FROM guilds"))).scalar_one())

            async def all_stored() -> bool:
                return await stored() == GUILDS + 1

            await wait_for(all_stored, timeout=120)
            await wait_for(lambda: gateway.structure_writes()["backlog"] == 0)
        cache = rt.components.require_cache()
        await wait_for(lambda: set(extra) <= cache.known_guild_ids(), timeout=60)
        assert gateway.guild_syncs == GUILDS + 1
        writes = gateway.structure_writes()
        assert writes["written"] == GUILDS + 1 and writes["failed"] == 0
        # GUILD_CREATEs that arrive together are synced by set (issue 27), and each guild is what Discord sent:
        # `#general`, @everyone and the bot's role.
        assert writes["batches"] >= 1 and writes["batch_failures"] == 0
        async with db.engine.connect() as conn:
            per_guild = (
                await conn.execute(
                    text(
                        "SELECT g.guild_id, (SELECT array_agg(name) FROM guild_channels c WHERE c.guild_id = g.guild_id"
                        " AND deleted_at IS NULL), (SELECT count(*) FROM guild_roles r WHERE r.guild_id = g.guild_id"
                        " AND deleted_at IS NULL) FROM guilds g WHERE g.guild_id = ANY(:ids)"
                    ),
                    {"ids": extra},
                )
            ).all()
        assert sorted((int(g), c, r) for g, c, r in per_guild) == sorted((g, ["general"], 2) for g in extra)
        # No sync ever waited past the pool timeout: nothing was retried, nothing given up.
        assert [e for e in logs if e["event"] in ("db_retry", "guild_sync_failed")] == []
        assert rt.http_port is not None
        _, health = await get_json(rt.http_port, "/health")
        assert health["gateway"]["structure_writes"] == writes
    finally:
        await rt.shutdown()
        await sim.stop()
