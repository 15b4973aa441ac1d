"""No privilege escalation through level roles (SPEC §13, issue 21 item 1), end to end.

Real HTTP server, real PostgreSQL, the real hikari client against the simulator; the `level_role_sync` jobs are
run by the test (`runtime.jobs.poll()`, the runner itself polls hourly here) and their effect is read on the
simulated Discord side. No bot command maps level roles (§17.3 has none), so the user-token cases cover "a user
token or command".

The roles of the scenario, bottom to top: Member (every member has it, given by a person), Safe, Low, Mods (in
`access.admin_role_ids`; the admin-by-role user U[2] holds it), Above, Admin (Administrator; the owner's highest
role), Top, the bot's role. "Ban hammer" grants Ban and Kick Members.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from synapse_async.runtime import Runtime
from synapse_async.sandbox.world import ROLE_ADMIN_ID, ROLE_BOT_ID, ROLE_MEMBER_ID, SANDBOX_OWNER_ID, Permission
from tests.api_support import Session, base, call, login
from tests.pipeline_support import GUILD, MEMBERS_30, pipeline_runtime, query, set_settings, write_config
from tests.support import simulator_of, wait_for

G = f"/api/admin/guilds/{GUILD}"
U = MEMBERS_30
MEMBER_PATCH = "/guilds/{guild_id}/members/{user_id}"
DISPLAY = "member"


@dataclass
class Roles:
    safe: int
    low: int
    mods: int
    above: int
    top: int
    ban: int


@dataclass
class Env:
    rt: Runtime
    roles: Roles
    mod: Session  # U[2], an admin by `access.admin_role_ids` only
    owner: Session


def service(rt: Runtime) -> dict[str, str]:
    assert rt.api is not None
    token = rt.api.codec.issue_service("level-role-safety", [GUILD], ttl=600, now=rt.api.now())
    return {"Authorization": f"Bearer {token}"}


async def api(rt: Runtime, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    return await call(method, base(rt) + G + path, headers=headers or service(rt), **kw)


def roles_of(rt: Runtime, user_id: int) -> frozenset[int]:
    return frozenset(simulator_of(rt).world.guilds[GUILD].members[user_id].roles)


def bot_cache_agrees(rt: Runtime) -> bool:
    """hikari's cache shows every simulated member's roles and every role's permissions and position."""
    from synapse_async.bot.gateway import DiscordGateway

    assert isinstance(rt.gateway, DiscordGateway)
    cache = rt.gateway.bot.cache
    guild = simulator_of(rt).world.guilds[GUILD]
    cached_roles = cache.get_roles_view_for_guild(GUILD)
    for role_id, role in guild.roles.items():
        seen = cached_roles.get(role_id)  # type: ignore[call-overload]
        if seen is None or (seen.position, int(seen.permissions)) != (role.position, role.permissions):
            return False
    for user_id, member in guild.members.items():
        seen_member = cache.get_member(GUILD, user_id)
        if seen_member is None or {int(r) for r in seen_member.role_ids} - {GUILD} != set(member.roles):
            return False
    return True


async def settle(rt: Runtime) -> None:
    await wait_for(lambda: bot_cache_agrees(rt), timeout=20)


async def execute(rt: Runtime, sql: str) -> None:
    assert rt.components.db is not None
    from sqlalchemy import text

    async with rt.components.db.engine.begin() as conn:
        await conn.execute(text(sql), {"g": GUILD})


async def set_levels(rt: Runtime, levels: dict[int, int]) -> None:
    """Commit members' levels directly (setup only; the race test changes a level through the real award path)."""
    assert rt.components.db is not None
    from sqlalchemy import text

    async with rt.components.db.engine.begin() as conn:
        for user_id, level in levels.items():
            await conn.execute(
                text(
                    "INSERT INTO members (guild_id, user_id, display_name, level, peak_level)"
                    " VALUES (:g, :u, :n, :l, :l) ON CONFLICT (guild_id, user_id)"
                    " DO UPDATE SET level = :l, peak_level = GREATEST(members.peak_level, :l), left_at = NULL"
                ),
                {"g": GUILD, "u": user_id, "n": f"{DISPLAY} {user_id - U[0]}", "l": level},
            )


async def run_jobs(rt: Runtime) -> list[dict[str, Any]]:
    assert rt.jobs is not None
    await rt.jobs.poll()
    return await sync_jobs(rt)


async def sync_jobs(rt: Runtime) -> list[dict[str, Any]]:
    return await query(
        rt,
        "SELECT job_id, status, result, rerun_requested FROM jobs"
        " WHERE guild_id = :g AND kind = 'level_role_sync' ORDER BY created_at",
    )


async def grants(rt: Runtime, user_id: int) -> frozenset[int]:
    rows = await query(rt, "SELECT role_id FROM level_role_grants WHERE guild_id = :g AND user_id = :u", u=user_id)
    return frozenset(int(r["role_id"]) for r in rows)


def member_patches(rt: Runtime, since: int) -> list[Any]:
    return [c for c in simulator_of(rt).rest_calls[since:] if c.method == "PATCH" and c.route == MEMBER_PATCH]


async def written_state(rt: Runtime) -> dict[str, Any]:
    """Everything a level-role change writes: rewards, jobs, audit rows, grants, settings."""
    return {
        "rewards": await query(rt, "SELECT role_id, level FROM level_role_rewards WHERE guild_id = :g ORDER BY 1"),
        "jobs": await query(rt, "SELECT job_id, status, rerun_requested FROM jobs ORDER BY created_at"),
        "audit": await query(rt, "SELECT count(*) AS n FROM audit_log"),
        "grants": await query(rt, "SELECT * FROM level_role_grants ORDER BY user_id, role_id"),
        "settings": await query(rt, "SELECT key, value FROM settings WHERE guild_id = :g ORDER BY key"),
    }


@pytest.fixture(scope="module")
async def env(fresh_database: str) -> AsyncIterator[Env]:
    async with pipeline_runtime(fresh_database, 30, JOB_POLL_SECONDS="3600", ADMIN_RATE_LIMIT_PER_MINUTE="10000") as rt:
        sim = simulator_of(rt)
        guild = sim.world.guilds[GUILD]
        safe = int(await sim.create_role("Safe", position=2))
        low = int(await sim.create_role("Low", position=3))
        mods = int(await sim.create_role("Mods", position=4))
        above = int(await sim.create_role("Above", position=5))
        top = int(await sim.create_role("Top", position=guild.roles[ROLE_BOT_ID].position))
        ban = int(
            await sim.create_role(
                "Ban hammer", position=2, permissions=int(Permission.BAN_MEMBERS | Permission.KICK_MEMBERS)
            )
        )
        position = {role_id: role.position for role_id, role in guild.roles.items()}
        chain = [ROLE_MEMBER_ID, safe, low, mods, above, ROLE_ADMIN_ID, top, ROLE_BOT_ID]
        assert [position[r] for r in chain] == sorted(position[r] for r in chain), position
        await sim.update_member(U[2], roles=[ROLE_MEMBER_ID, mods])

        async def synced() -> bool:
            rows = await query(rt, "SELECT role_id FROM guild_roles WHERE guild_id = :g AND deleted_at IS NULL")
            return {safe, low, mods, above, top, ban} <= {int(r["role_id"]) for r in rows}

        await wait_for(synced)
        await set_settings(rt, {"access.admin_role_ids": [mods]})
        await settle(rt)
        mod = await login(rt, U[2])
        owner = await login(rt, SANDBOX_OWNER_ID)
        yield Env(rt, Roles(safe, low, mods, above, top, ban), mod, owner)


@pytest.fixture(autouse=True)
async def clean(env: Env) -> None:
    """Each test starts with no reward roles, no grants, no sync job, `stack` mode, everyone holding Member and no
    member present in the database (a test's `set_levels` brings back the members it uses)."""
    rt = env.rt
    await write_config(rt, "DELETE FROM level_role_rewards WHERE guild_id = :g", "level_role_rewards")
    await set_settings(rt, {"level_roles.mode": "stack", "access.admin_role_ids": [env.roles.mods]})
    await execute(rt, "DELETE FROM level_role_grants WHERE guild_id = :g")
    await execute(rt, "DELETE FROM jobs WHERE guild_id = :g")
    await execute(rt, "UPDATE members SET left_at = now() WHERE guild_id = :g AND left_at IS NULL")
    sim = simulator_of(rt)
    guild = sim.world.guilds[GUILD]
    for user_id in U:
        wanted = [ROLE_MEMBER_ID, env.roles.mods] if user_id == U[2] else [ROLE_MEMBER_ID]
        if sorted(guild.members[user_id].roles) != sorted(wanted):
            await sim.update_member(user_id, roles=wanted)
    for role_id in (env.roles.safe, env.roles.low):
        if guild.roles[role_id].permissions:
            await sim.update_role(role_id, permissions=0)
    await settle(rt)
    return


def dangerous(reply: Any) -> dict[str, Any]:
    assert reply.status == 400, reply.body
    assert reply.body["error"]["code"] == "validation_error"
    [detail] = reply.body["error"]["details"]
    assert (detail["field"], detail["problem"]) == ("role_id", "dangerous_role")
    return dict(detail)


# --- safe roles only -----------------------------------------------------------------------------------------


async def test_a_service_token_cannot_map_administrator_or_other_dangerous_roles(env: Env) -> None:
    rt, roles = env.rt, env.roles
    before = await written_state(rt)

    admin = dangerous(await api(rt, "PUT", f"/level-roles/{ROLE_ADMIN_ID}", json={"level": 1}))
    assert admin["permissions"] == ["Administrator"] and "Administrator" in admin["message"]
    ban = dangerous(await api(rt, "PUT", f"/level-roles/{roles.ban}", json={"level": 1}))
    assert ban["permissions"] == ["Ban Members", "Kick Members"]
    admin_role = dangerous(await api(rt, "PUT", f"/level-roles/{roles.mods}", json={"level": 1}))
    assert admin_role["permissions"] == [] and "access.admin_role_ids" in admin_role["message"]
    preview = dangerous(await api(rt, "PUT", f"/level-roles/{ROLE_ADMIN_ID}?dry_run=true", json={"level": 1}))
    assert preview["permissions"] == ["Administrator"]

    assert await written_state(rt) == before
    # No place in the hierarchy for a service token: a safe role above the admin role is fine.
    assert (await api(rt, "PUT", f"/level-roles/{roles.above}", json={"level": 3})).status == 201


async def test_an_admin_by_role_cannot_hand_itself_administrator(env: Env) -> None:
    """The issue's attack: map Administrator as a level-1 reward, award yourself XP, let the bot grant it."""
    rt, roles, mod = env.rt, env.roles, env.mod
    await set_levels(rt, {U[2]: 1})
    before = await written_state(rt)

    refused = await api(rt, "PUT", f"/level-roles/{ROLE_ADMIN_ID}", mod.bearer(), json={"level": 1})
    assert dangerous(refused)["permissions"] == ["Administrator"]
    assert await written_state(rt) == before
    award = await api(rt, "POST", "/awards", mod.bearer(), json={"user_id": str(U[2]), "xp": 100_000, "reason": "me"})
    assert award.status == 200, award.body
    assert (await api(rt, "POST", "/level-roles/sync", mod.bearer(), json={})).status == 202
    await run_jobs(rt)
    assert ROLE_ADMIN_ID not in roles_of(rt, U[2])

    # Their own admin role, and roles at or above their highest role (Mods), are refused too …
    dangerous(await api(rt, "PUT", f"/level-roles/{roles.mods}", mod.bearer(), json={"level": 1}))
    for role_id in (roles.above, roles.top):
        detail = dangerous(await api(rt, "PUT", f"/level-roles/{role_id}", mod.bearer(), json={"level": 1}))
        assert "highest role" in detail["message"] and detail["permissions"] == []
    # … a role strictly below it is not.
    assert (await api(rt, "PUT", f"/level-roles/{roles.low}", mod.bearer(), json={"level": 1})).status == 201


async def test_the_guild_owner_is_not_bound_by_the_hierarchy(env: Env) -> None:
    rt, roles = env.rt, env.roles
    # Top sits above Admin, the owner's highest role: allowed for the owner, not for the admin by role.
    dangerous(await api(rt, "PUT", f"/level-roles/{roles.top}", env.mod.bearer(), json={"level": 2}))
    assert (await api(rt, "PUT", f"/level-roles/{roles.top}", env.owner.bearer(), json={"level": 2})).status == 201
    # The owner is still refused dangerous roles.
    dangerous(await api(rt, "PUT", f"/level-roles/{ROLE_ADMIN_ID}", env.owner.bearer(), json={"level": 2}))


async def test_a_sync_skips_a_role_that_became_dangerous_after_it_was_mapped(env: Env) -> None:
    rt, roles = env.rt, env.roles
    await set_levels(rt, {U[3]: 5, U[4]: 5})
    assert (await api(rt, "PUT", f"/level-roles/{roles.safe}", json={"level": 1})).status == 201
    assert (await api(rt, "PUT", f"/level-roles/{roles.low}", json={"level": 1})).status == 201
    await simulator_of(rt).update_role(roles.safe, permissions=int(Permission.MANAGE_ROLES))
    await settle(rt)

    listed = await api(rt, "GET", "/level-roles")
    problems = {item["role_id"]: item["problem"] for item in listed.body["items"]}
    assert problems == {str(roles.safe): "dangerous_role", str(roles.low): None}
    [job] = await run_jobs(rt)

    assert job["status"] == "succeeded" and job["result"]["skipped"] >= 2
    for user_id in (U[3], U[4]):
        assert roles_of(rt, user_id) == {ROLE_MEMBER_ID, roles.low}
        assert await grants(rt, user_id) == {roles.low}


async def test_a_role_listed_in_admin_role_ids_after_mapping_is_never_added(env: Env) -> None:
    rt, roles = env.rt, env.roles
    await set_levels(rt, {U[3]: 5})
    assert (await api(rt, "PUT", f"/level-roles/{roles.safe}", json={"level": 1})).status == 201
    await set_settings(rt, {"access.admin_role_ids": [roles.mods, roles.safe]})

    [job] = await run_jobs(rt)

    assert job["result"]["skipped"] == 1
    assert roles_of(rt, U[3]) == {ROLE_MEMBER_ID}
    listed = await api(rt, "GET", "/level-roles")
    assert listed.body["items"][0]["problem"] == "dangerous_role"


# --- the bot only takes back what it gave ---------------------------------------------------------------------


async def test_mapping_a_role_people_hold_strips_it_from_nobody(env: Env) -> None:
    """The issue: mapping Member as a level-5 reward took it from everyone below level 5, and in replace mode
    from everyone above. Everyone got Member from a person: the bot never removes it."""
    rt, roles = env.rt, env.roles
    levels = {U[3]: 1, U[4]: 3, U[5]: 6, U[6]: 9}
    await set_levels(rt, levels)
    assert (await api(rt, "PUT", f"/level-roles/{ROLE_MEMBER_ID}", json={"level": 5})).status == 201
    await run_jobs(rt)
    assert all(ROLE_MEMBER_ID in roles_of(rt, u) for u in levels)

    # Replace mode: Safe at level 3 and Low at level 8 replace the lower reward roles, but only the bot's copies.
    assert (await api(rt, "PUT", f"/level-roles/{roles.safe}", json={"level": 3})).status == 201
    assert (await api(rt, "PUT", f"/level-roles/{roles.low}", json={"level": 8})).status == 201
    await run_jobs(rt)
    assert roles_of(rt, U[6]) == {ROLE_MEMBER_ID, roles.safe, roles.low}  # stack: the bot granted Safe and Low
    assert await grants(rt, U[6]) == {roles.safe, roles.low}
    patched = await api(rt, "PATCH", "/settings", json={"values": {"level_roles.mode": "replace"}})
    assert patched.status == 200, patched.body
    await run_jobs(rt)

    assert roles_of(rt, U[3]) == {ROLE_MEMBER_ID}
    assert roles_of(rt, U[4]) == {ROLE_MEMBER_ID, roles.safe}, (roles, roles_of(rt, U[4]))
    assert roles_of(rt, U[5]) == {ROLE_MEMBER_ID}  # the bot's Safe replaced by the person's Member, which stays
    assert roles_of(rt, U[6]) == {ROLE_MEMBER_ID, roles.low}  # the bot's Safe replaced, the person's Member kept
    assert await grants(rt, U[6]) == {roles.low}


async def test_deleting_a_reward_takes_back_only_the_bots_copies(env: Env) -> None:
    rt, roles = env.rt, env.roles
    await set_levels(rt, {U[3]: 4, U[4]: 4})
    await simulator_of(rt).update_member(U[4], roles=[ROLE_MEMBER_ID, roles.safe])  # a person gave U[4] Safe
    await settle(rt)
    assert (await api(rt, "PUT", f"/level-roles/{roles.safe}", json={"level": 2})).status == 201
    await run_jobs(rt)
    assert (await grants(rt, U[3]), await grants(rt, U[4])) == ({roles.safe}, frozenset())

    assert (await api(rt, "DELETE", f"/level-roles/{roles.safe}")).status == 204
    await run_jobs(rt)

    assert roles_of(rt, U[3]) == {ROLE_MEMBER_ID}
    assert roles_of(rt, U[4]) == {ROLE_MEMBER_ID, roles.safe}, (roles, roles_of(rt, U[4]))


# --- preview before change ------------------------------------------------------------------------------------


def observed_changes(rt: Runtime, before: dict[int, frozenset[int]]) -> dict[int, tuple[set[int], set[int]]]:
    changes = {}
    for user_id, had in before.items():
        now = roles_of(rt, user_id)
        if now != had:
            changes[user_id] = (set(now - had), set(had - now))
    return changes


def check_preview(body: dict[str, Any], changes: dict[int, tuple[set[int], set[int]]], names: dict[int, str]) -> None:
    """The preview equals what the sync then did: totals, and each sampled member's adds and removes."""
    assert set(body) == {"adds", "removes", "members_affected", "sample"}
    assert body["members_affected"] == len(changes)
    assert body["adds"] == sum(len(a) for a, _ in changes.values())
    assert body["removes"] == sum(len(r) for _, r in changes.values())
    assert len(body["sample"]) == min(20, len(changes))
    assert [int(s["user_id"]) for s in body["sample"]] == sorted(changes)[:20]
    for line in body["sample"]:
        user_id = int(line["user_id"])
        assert line["display_name"] == names[user_id]
        assert ({int(r) for r in line["add"]}, {int(r) for r in line["remove"]}) == changes[user_id]


async def apply_and_compare(rt: Runtime, preview: Any, apply: Callable[[], Awaitable[Any]], users: list[int]) -> None:
    """`preview` wrote nothing; applying the change for real and running the sync does exactly what it showed."""
    assert preview.status == 200, preview.body
    rows = await query(rt, "SELECT user_id, display_name FROM members WHERE guild_id = :g")
    names = {int(r["user_id"]): str(r["display_name"]) for r in rows}
    before = {u: roles_of(rt, u) for u in users}
    await apply()
    await run_jobs(rt)
    check_preview(preview.body, observed_changes(rt, before), names)


async def test_dry_run_put_previews_exactly_what_the_sync_does_and_writes_nothing(env: Env) -> None:
    rt, roles = env.rt, env.roles
    users = U[3:30]  # 27 members, 22 of them at level ≥ 2
    await set_levels(rt, {u: 1 + i % 6 for i, u in enumerate(users)})
    await simulator_of(rt).update_member(U[5], roles=[ROLE_MEMBER_ID, roles.safe])  # already holds it
    await settle(rt)
    state, since = await written_state(rt), len(simulator_of(rt).rest_calls)

    preview = await api(rt, "PUT", f"/level-roles/{roles.safe}?dry_run=true", json={"level": 2})

    assert await written_state(rt) == state and member_patches(rt, since) == []
    assert preview.body["members_affected"] == 21 and len(preview.body["sample"]) == 20  # U[5] has it already

    async def put() -> None:
        assert (await api(rt, "PUT", f"/level-roles/{roles.safe}", json={"level": 2})).status == 201

    await apply_and_compare(rt, preview, put, users)


async def test_dry_run_delete_mode_change_and_sync(env: Env) -> None:
    rt, roles = env.rt, env.roles
    users = U[3:12]
    await set_levels(rt, {u: 1 + i % 5 for i, u in enumerate(users)})
    assert (await api(rt, "PUT", f"/level-roles/{roles.safe}", json={"level": 2})).status == 201
    assert (await api(rt, "PUT", f"/level-roles/{roles.low}", json={"level": 4})).status == 201
    await run_jobs(rt)

    # A mode change (PATCH settings), previewed, then applied.
    state, since = await written_state(rt), len(simulator_of(rt).rest_calls)
    mode = await api(rt, "PATCH", "/settings?dry_run=true", json={"values": {"level_roles.mode": "replace"}})
    assert await written_state(rt) == state and member_patches(rt, since) == []
    assert mode.body["removes"] > 0

    async def patch() -> None:
        assert (await api(rt, "PATCH", "/settings", json={"values": {"level_roles.mode": "replace"}})).status == 200

    await apply_and_compare(rt, mode, patch, users)
    bad = await api(rt, "PATCH", "/settings?dry_run=true", json={"values": {"level_roles.mode": "both"}})
    assert bad.status == 400 and "level_roles.mode" in bad.body["error"]["details"][0]["field"]
    other = await api(rt, "PATCH", "/settings?dry_run=true", json={"values": {"cooldown.seconds": 5}})
    assert other.status == 400 and other.body["error"]["details"][0]["problem"] == "not_previewable"

    # A reset of the mode (DELETE settings/level_roles.mode), previewed, then applied.
    state = await written_state(rt)
    reset = await api(rt, "DELETE", "/settings/level_roles.mode?dry_run=true")
    assert await written_state(rt) == state and reset.body["adds"] > 0

    async def delete_mode() -> None:
        assert (await api(rt, "DELETE", "/settings/level_roles.mode")).status == 204

    await apply_and_compare(rt, reset, delete_mode, users)

    # DELETE of a reward role.
    state = await written_state(rt)
    delete = await api(rt, "DELETE", f"/level-roles/{roles.low}?dry_run=true")
    assert await written_state(rt) == state and delete.body["removes"] > 0
    assert (await api(rt, "DELETE", "/level-roles/4242?dry_run=true")).status == 404

    async def remove() -> None:
        assert (await api(rt, "DELETE", f"/level-roles/{roles.low}")).status == 204

    await apply_and_compare(rt, delete, remove, users)

    # POST sync: what a sync would change now (a person took Safe from two members the bot gave it to).
    for user_id in users[1:3]:
        await simulator_of(rt).update_member(user_id, roles=[ROLE_MEMBER_ID])
    await settle(rt)
    state = await written_state(rt)
    sync = await api(rt, "POST", "/level-roles/sync?dry_run=true", json={})
    assert await written_state(rt) == state

    async def post() -> None:
        assert (await api(rt, "POST", "/level-roles/sync", json={})).status == 202

    await apply_and_compare(rt, sync, post, users)


# --- a sync reads live data -----------------------------------------------------------------------------------


def hold_first_patch_of(rt: Runtime, user_id: int, action: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """Run `action` while the first member update of `user_id` is in flight (before Discord applies it)."""
    recorder = simulator_of(rt).recorder
    done = asyncio.Event()

    async def hook(request: web.Request) -> None:
        if done.is_set() or request.method != "PATCH" or not request.path.endswith(f"/members/{user_id}"):
            return
        done.set()
        await action()

    recorder.before.append(hook)
    return lambda: recorder.before.remove(hook)


async def test_a_level_change_committed_during_a_sync_is_honoured_for_members_it_reaches_later(env: Env) -> None:
    """The issue: a sync that read levels when it started undid a level-up committed meanwhile, and the member
    lost the reward roles the level-up had just given them."""
    rt, roles = env.rt, env.roles
    first, later = U[3], U[9]
    await set_levels(rt, {first: 5, later: 1})
    assert (await api(rt, "PUT", f"/level-roles/{roles.safe}", json={"level": 2})).status == 201
    assert (await api(rt, "PUT", f"/level-roles/{roles.low}", json={"level": 3})).status == 201

    async def level_up_later() -> None:
        # Through the real path: the award commits the level, then the level-change sync gives the roles.
        award = await api(rt, "POST", "/awards", json={"user_id": str(later), "xp": 100_000, "reason": "up"})
        assert award.status == 200 and award.body["level"] >= 3, award.body
        await wait_for(lambda: {roles.safe, roles.low} <= roles_of(rt, later))

    release = hold_first_patch_of(rt, first, level_up_later)
    try:
        [job] = await run_jobs(rt)
    finally:
        release()

    assert job["status"] == "succeeded"
    assert roles_of(rt, first) == {ROLE_MEMBER_ID, roles.safe, roles.low}
    assert roles_of(rt, later) == {ROLE_MEMBER_ID, roles.safe, roles.low}


async def test_a_newer_reward_table_change_supersedes_a_running_sync(env: Env) -> None:
    rt, roles = env.rt, env.roles
    users = U[3:8]
    await set_levels(rt, dict.fromkeys(users, 5))
    assert (await api(rt, "PUT", f"/level-roles/{roles.safe}", json={"level": 2})).status == 201

    async def change_the_table() -> None:
        assert (await api(rt, "PUT", f"/level-roles/{roles.low}", json={"level": 1})).status == 201

    since = len(simulator_of(rt).rest_calls)
    release = hold_first_patch_of(rt, users[0], change_the_table)
    try:
        first, second = await run_jobs(rt)  # the runner queues the fresh sync and runs it in the same poll
    finally:
        release()

    assert first["status"] == "succeeded" and first["result"]["superseded"] == 1
    assert first["result"]["checked"] == 1  # it stopped right after the member it was updating
    assert second["status"] == "succeeded" and "superseded" not in second["result"]
    for user_id in users:
        assert roles_of(rt, user_id) == {ROLE_MEMBER_ID, roles.safe, roles.low}
    # Members after the first got one update with the new table, not one per table.
    patched = [c.path for c in member_patches(rt, since)]
    assert all(patched.count(f"/guilds/{GUILD}/members/{u}") == 1 for u in users[1:])
