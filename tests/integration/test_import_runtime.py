"""The import job in a running sandbox (simulator → real hikari → runner → PostgreSQL), SPEC §20.1, §13, §14.

The runtime's own job runner claims the import, the `level_role_sync` it queues gives the member the reward role on
the simulated Discord, and nothing is announced.
"""

from __future__ import annotations

import json

import asyncpg

from synapse_async.db.urls import to_asyncpg_dsn
from synapse_async.imports.service import submit_import
from synapse_async.rewards.leveling import curve_for
from synapse_async.services.audit import Actor
from tests.pipeline_support import ALICE, GUILD, write_config
from tests.support import make_runtime, wait_for

ADMIN_ACTOR_ID = "100000000000000010"


async def test_the_runner_imports_then_syncs_level_roles_without_announcing(fresh_database: str) -> None:
    rt = make_runtime(fresh_database)
    await rt.start()
    admin = await asyncpg.connect(to_asyncpg_dsn(fresh_database))
    try:
        sim, cache, db = rt.simulator, rt.components.cache, rt.components.db
        assert sim is not None and cache is not None and db is not None
        await wait_for(lambda: GUILD in cache.known_guild_ids())
        role = int(await sim.create_role("Level 2", position=1))
        await write_config(
            rt,
            "INSERT INTO level_role_rewards (guild_id, role_id, level) VALUES (:g, :r, 2)",
            "level_role_rewards",
            r=role,
        )
        await wait_for(lambda: bool(cache.guild(GUILD).level_roles))
        before = len(sim.rest_calls)
        announcer = rt.announcer
        assert announcer is not None
        announced_before = sum(announcer.snapshot().values())  # queued now + sent, dropped, failed, skipped ever
        raw = json.dumps({"players": [{"id": str(ALICE), "xp": 1000, "level": 40}]}).encode()
        job = await submit_import(
            db, GUILD, raw, mode="replace", actor=Actor(ADMIN_ACTOR_ID, "user", "api"), max_bytes=1 << 20
        )

        async def synced() -> bool:
            rows = await admin.fetch("SELECT kind, status FROM jobs WHERE guild_id = $1", GUILD)
            return {(r["kind"], r["status"]) for r in rows} >= {
                ("import", "succeeded"),
                ("level_role_sync", "succeeded"),
            }

        await wait_for(synced, timeout=30)
        result = json.loads(await admin.fetchval("SELECT result::text FROM jobs WHERE job_id = $1", job))
        assert result["members_changed"] == 1 and result["level_changes"]["count"] == 1
        m = await admin.fetchrow("SELECT xp, level, peak_level, gold FROM members WHERE guild_id = $1 AND user_id = $2",
                                 GUILD, ALICE)  # fmt: skip
        level, xp = 40, curve_for(100, 1.25).xp_to_reach(40)  # MEE6's level kept (`levels=keep`, the default)
        assert m is not None and (m["xp"], m["level"], m["peak_level"], m["gold"]) == (xp, level, level, 0)
        calls = sim.rest_calls[before:]
        patches = [c for c in calls if c.method == "PATCH" and c.path.endswith(f"/members/{ALICE}")]
        assert len(patches) == 1 and role in {int(r) for r in patches[0].json["roles"]}  # type: ignore[attr-defined]
        # SPEC §20.1 "no announcements": the level change (1 → level > 2) is one the pipeline would announce, so
        # nothing may reach the announcer at all — counted at its door, not by waiting for Discord calls that a
        # throttled or channel-less announcer would only send later, or never.
        assert sum(announcer.snapshot().values()) == announced_before
        assert not [c for c in calls if c.method == "POST" and c.path.endswith("/messages")]
    finally:
        await rt.shutdown()
        await admin.close()
