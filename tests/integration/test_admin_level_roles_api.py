"""Level-role admin routes (SPEC §20, §13) over real HTTP: real app, PostgreSQL, hikari against the simulator.

The job runner polls rarely here, so the `level_role_sync` a change queues stays queued while the tests look at it;
the test then runs the queue itself and checks the role on the simulated Discord side.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from synapse_async.runtime import Runtime
from synapse_async.sandbox.world import ROLE_BOT_ID, ROLE_MEMBER_ID, SANDBOX_OWNER_ID
from tests.api_support import base, call, login
from tests.pipeline_support import GUILD, MEMBERS_30, PLAIN, pipeline_runtime, query, wait_key
from tests.support import simulator_of, wait_for

G = f"/api/admin/guilds/{GUILD}"
U = MEMBERS_30


REGULAR: dict[str, int] = {}  # a safe role (no permissions), created by the fixture


@pytest.fixture(scope="module")
async def runtime(fresh_database: str) -> AsyncIterator[Runtime]:
    async with pipeline_runtime(fresh_database, 30, JOB_POLL_SECONDS="3600", ADMIN_RATE_LIMIT_PER_MINUTE="10000") as rt:
        REGULAR["id"] = role_id = int(await simulator_of(rt).create_role("Regular", position=2))
        REGULAR["booster"] = booster = int(await simulator_of(rt).create_role("Booster", position=2, managed=True))

        async def synced() -> bool:
            rows = await query(rt, "SELECT role_id FROM guild_roles WHERE guild_id = :g")
            return {role_id, booster} <= {int(r["role_id"]) for r in rows}

        await wait_for(synced)
        message_id = int(await simulator_of(rt).message(U[0], "general", PLAIN))
        await wait_key(rt, f"msg:{message_id}")
        yield rt


def admin(rt: Runtime) -> dict[str, str]:
    assert rt.api is not None
    token = rt.api.codec.issue_service("level-role-tests", [GUILD], ttl=600, now=rt.api.now())
    return {"Authorization": f"Bearer {token}"}


async def api(rt: Runtime, method: str, path: str, **kw: Any) -> Any:
    return await call(method, base(rt) + G + path, headers=admin(rt), **kw)


async def sync_jobs(rt: Runtime) -> list[dict[str, Any]]:
    return await query(
        rt, "SELECT job_id, status FROM jobs WHERE guild_id = :g AND kind = 'level_role_sync' ORDER BY created_at"
    )


async def test_members_are_refused_and_unknown_guilds_are_404(runtime: Runtime) -> None:
    member = await login(runtime, U[1])
    assert (await call("GET", base(runtime) + G + "/level-roles", headers=member.bearer())).status == 403
    refused = await call(
        "PUT", base(runtime) + G + f"/level-roles/{ROLE_MEMBER_ID}", headers=member.bearer(), json={"level": 2}
    )
    assert refused.status == 403
    owner = await login(runtime, SANDBOX_OWNER_ID)
    assert (
        await call("GET", base(runtime) + "/api/admin/guilds/123/level-roles", headers=owner.bearer())
    ).status == 404


async def test_put_is_validated_and_prechecked(runtime: Runtime) -> None:
    bad = await api(runtime, "PUT", "/level-roles/abc", json={"level": 0})
    assert bad.status == 400 and {d["field"] for d in bad.body["error"]["details"]} == {"role_id", "level"}
    assert (await api(runtime, "PUT", "/level-roles/4242", json={"level": 3})).status == 404
    for unassignable in (REGULAR["booster"], GUILD):  # an integration role, @everyone
        refused = await api(runtime, "PUT", f"/level-roles/{unassignable}", json={"level": 3})
        assert refused.status == 409 and refused.body["error"]["details"] == {"reason": "role_not_assignable"}
    bot_role = await api(runtime, "PUT", f"/level-roles/{ROLE_BOT_ID}", json={"level": 3})  # it has Manage Roles
    assert bot_role.status == 400 and bot_role.body["error"]["details"][0]["problem"] == "dangerous_role"
    assert await query(runtime, "SELECT 1 FROM level_role_rewards WHERE guild_id = :g") == []
    assert await sync_jobs(runtime) == []

    # At most 50 per guild (§6.1): rows written straight into the table (no NOTIFY, the cache never sees them).
    assert runtime.components.db is not None
    async with runtime.components.db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO level_role_rewards (guild_id, role_id, level)"
                " SELECT :g, 900 + n, n FROM generate_series(1, 50) n"
            ),
            {"g": GUILD},
        )
    full = await api(runtime, "PUT", f"/level-roles/{ROLE_MEMBER_ID}", json={"level": 3})
    assert full.status == 409 and full.body["error"]["details"] == {"reason": "limit_reached"}
    async with runtime.components.db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM level_role_rewards WHERE guild_id = :g"), {"g": GUILD})
    assert await sync_jobs(runtime) == []  # the refused write queued nothing


async def test_put_get_sync_delete_with_audit_jobs_and_the_role_on_discord(runtime: Runtime) -> None:
    regular = REGULAR["id"]
    sim = simulator_of(runtime)
    cache = runtime.components.cache
    assert cache is not None
    created = await api(runtime, "PUT", f"/level-roles/{regular}", json={"level": 1})
    assert created.status == 201, created.body
    assert created.body == {
        "role_id": str(regular), "role_name": "Regular", "level": 1, "assignable": True, "problem": None,
    }  # fmt: skip
    await wait_for(lambda: (1, regular) in cache.guild(GUILD).level_roles)
    (job,) = await sync_jobs(runtime)
    assert job["status"] == "queued"
    (audited,) = await query(runtime, "SELECT before, after FROM audit_log WHERE action = 'level_role.upsert'")
    assert audited == {"before": None, "after": {"role_id": str(regular), "level": 1}}

    again = await api(runtime, "POST", "/level-roles/sync", json={})
    assert again.status == 409 and again.body["error"]["details"]["job_id"] == str(job["job_id"])
    assert runtime.jobs is not None
    await runtime.jobs.poll()
    assert [j["status"] for j in await sync_jobs(runtime)] == ["succeeded"]
    guild = sim.world.guilds[GUILD]
    assert regular in guild.members[U[0]].roles  # level 1 earns it

    requested = await api(runtime, "POST", "/level-roles/sync", json={})
    assert requested.status == 202 and (requested.body["kind"], requested.body["status"]) == (
        "level_role_sync",
        "queued",
    )

    # The role moves above the bot's: shown with its problem, a sync would skip it.
    await sim.update_role(regular, position=10)

    async def flagged() -> bool:
        listed = await api(runtime, "GET", "/level-roles")
        return bool(listed.body["items"][0]["problem"] == "role_above_bot")

    await wait_for(flagged)
    listed = await api(runtime, "GET", "/level-roles")
    assert (listed.body["mode"], listed.body["restore_on_rejoin"]) == ("stack", False)
    assert listed.body["items"][0]["assignable"] is False

    replaced = await api(runtime, "PUT", f"/level-roles/{regular}", json={"level": 4})
    assert replaced.status == 200 and replaced.body["level"] == 4 and replaced.body["problem"] == "role_above_bot"
    assert (await api(runtime, "DELETE", f"/level-roles/{regular}")).status == 204
    assert (await api(runtime, "DELETE", f"/level-roles/{regular}")).status == 404
    await wait_for(lambda: cache.guild(GUILD).level_roles == ())
    actions = await query(
        runtime,
        "SELECT action FROM audit_log WHERE action LIKE 'level_role.%'"
        " OR (action = 'job.start' AND after->>'kind' = 'level_role_sync') ORDER BY id",
    )
    assert [a["action"] for a in actions] == [
        "level_role.upsert", "job.start", "level_role.upsert", "level_role.delete",
    ]  # fmt: skip
