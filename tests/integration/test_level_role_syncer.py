"""Level-role rewards applied on Discord (SPEC §13) by `LevelRoleSyncer`, end to end against the simulator.

Every test drives a REAL `hikari.GatewayBot` connected to `DiscordSimulator`: the syncer reads hikari's gateway
cache and its member update goes through hikari's REST client to the simulator, which enforces Discord's role
hierarchy and Manage Roles. Assertions are made on what the simulator received (`sim.rest_calls`: route, body,
audit reason, status) and on the simulated member's roles.

The guild's reward table and mode are configuration input for `sync_member` (a level change), so the
`ConfigCache` is filled directly: `cache._guilds[guild_id] = GuildConfig(...)`. Loading that configuration from
the database (and its reload on NOTIFY) is covered by the config-cache tests. The roles the bot granted live in
a real PostgreSQL (`level_role_grants`), and `sync_guild` (the job body) reads members' levels and the reward
table from there, so those tests write `members` and `level_role_rewards` rows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import hikari
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy import text

from synapse_async.bot.gateway import make_gateway_bot
from synapse_async.cache.config_cache import ConfigCache
from synapse_async.db.engine import Database
from synapse_async.levelroles import LevelRoleSyncer
from synapse_async.levelroles.grants import GrantStore
from synapse_async.rewards.config import GuildConfig
from synapse_async.rewards.roles import RoleSkip
from synapse_async.sandbox import SANDBOX_BOT_ID, SANDBOX_FIRST_MEMBER_ID, SANDBOX_GUILD_ID, DiscordSimulator
from synapse_async.sandbox.recording import RestCall
from synapse_async.sandbox.world import DEFAULT_BOT_PERMISSIONS, ROLE_BOT_ID, ROLE_MEMBER_ID, Permission
from synapse_async.settings import ResolvedSettings
from tests.integration.sandbox.conftest import INTENTS, make_bot, running
from tests.support import wait_for

GUILD = SANDBOX_GUILD_ID
USER = SANDBOX_FIRST_MEMBER_ID  # an ordinary member holding the manual "Member" role
MEMBER_ROUTE = "/guilds/{guild_id}/members/{user_id}"


class Faults:
    """Makes the simulator answer the next N member PATCHes with 500, as Discord does during an incident.

    Installed as the innermost middleware, so the simulator's recorder still logs each refused call.
    """

    def __init__(self) -> None:
        self.member_patch_500s = 0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "PATCH" and "/members/" in request.path and self.member_patch_500s > 0:
            self.member_patch_500s -= 1
            return web.json_response({"message": "500: Internal Server Error", "code": 0}, status=500)
        return await handler(request)


@dataclass
class Env:
    sim: DiscordSimulator
    bot: hikari.GatewayBot
    cache: ConfigCache
    syncer: LevelRoleSyncer
    faults: Faults
    db: Database
    roles: dict[str, int] = field(default_factory=dict)
    member_cache: bool = True

    def configure(self, rewards: list[tuple[int, str]], mode: str = "stack") -> None:
        """Set the guild's reward table (level, role name) and mode, as the config cache would hold them."""
        level_roles = tuple(sorted((level, self.roles[name]) for level, name in rewards))
        # Direct assignment: this is pure configuration input and needs no database; the DB-backed loading of
        # `level_role_rewards` and settings into the cache is tested with the config cache itself.
        self.cache._guilds[GUILD] = GuildConfig(
            GUILD, settings=ResolvedSettings({"level_roles.mode": mode}), level_roles=level_roles
        )

    async def store(self, rewards: list[tuple[int, str]], levels: dict[int, int]) -> None:
        """Commit the reward table and members' levels, as `sync_guild` reads them when it reaches a member."""
        async with self.db.engine.begin() as conn:
            await conn.execute(text("DELETE FROM level_role_rewards WHERE guild_id = :g"), {"g": GUILD})
            for level, name in rewards:
                await conn.execute(
                    text("INSERT INTO level_role_rewards (guild_id, role_id, level) VALUES (:g, :r, :l)"),
                    {"g": GUILD, "r": self.roles[name], "l": level},
                )
            for user_id, level in levels.items():
                await conn.execute(
                    text(
                        "INSERT INTO members (guild_id, user_id, display_name, level, peak_level)"
                        " VALUES (:g, :u, 'm', :l, :l) ON CONFLICT (guild_id, user_id)"
                        " DO UPDATE SET level = :l, peak_level = GREATEST(members.peak_level, :l)"
                    ),
                    {"g": GUILD, "u": user_id, "l": level},
                )

    async def granted(self, user_id: int = USER) -> frozenset[int]:
        async with self.db.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT role_id FROM level_role_grants WHERE guild_id = :g AND user_id = :u"),
                {"g": GUILD, "u": user_id},
            )
            return frozenset(int(r.role_id) for r in rows)

    def patches(self, since: int = 0) -> list[RestCall]:
        return [c for c in self.sim.rest_calls[since:] if c.method == "PATCH" and c.route == MEMBER_ROUTE]

    def member_roles(self, user_id: int = USER) -> frozenset[int]:
        return frozenset(self.sim.guild().members[user_id].roles)

    def ids(self, *names: str) -> frozenset[int]:
        return frozenset(ROLE_MEMBER_ID if name == "Member" else self.roles[name] for name in names)

    def cache_in_sync(self) -> bool:
        """Whether hikari's cache shows the simulator's roles (position, permissions, managed) and member roles."""
        guild = self.sim.guild()
        cached = self.bot.cache.get_roles_view_for_guild(guild.id)
        if {int(r) for r in cached} != set(guild.roles):
            return False
        for role_id, role in guild.roles.items():
            seen = cached[hikari.Snowflake(role_id)]
            if (seen.position, int(seen.permissions), seen.is_managed) != (
                role.position,
                role.permissions,
                role.managed,
            ):
                return False
        if not self.member_cache:
            return True
        for user_id, member in guild.members.items():
            seen_member = self.bot.cache.get_member(guild.id, user_id)
            if seen_member is None or {int(r) for r in seen_member.role_ids} - {guild.id} != set(member.roles):
                return False
        return True

    async def settle(self) -> None:
        """Wait until the gateway delivered every change (ours included) into hikari's cache."""
        await wait_for(self.cache_in_sync, timeout=10)

    async def give(self, *names: str, user_id: int = USER) -> None:
        """Give the member exactly these roles (a manual edit on Discord's side) and wait for the cache."""
        await self.sim.update_member(user_id, roles=sorted(self.ids(*names)))
        await self.settle()


@contextlib.asynccontextmanager
async def open_env(
    url: str,
    bot_factory: Callable[[DiscordSimulator], hikari.GatewayBot] = make_bot,
    *,
    max_retries: int | None = 3,
    member_cache: bool = True,
) -> AsyncIterator[Env]:
    faults = Faults()
    sim = DiscordSimulator(members=20, seed=42, heartbeat_interval_ms=1000)
    sim.app.middlewares.append(faults.middleware)
    db = Database(url, pool_size=2, max_overflow=2, pool_timeout=5, statement_timeout_ms=5000)
    async with db.engine.begin() as conn:  # the simulator's ids repeat per test (same seed): start clean
        await conn.execute(text("TRUNCATE level_role_grants, level_role_rewards, members CASCADE"))
    engine = db.engine
    await sim.start()
    try:
        roles = {}
        for name in ("Level 5", "Level 10", "Level 20", "Helper"):
            roles[name] = int(await sim.create_role(name, position=1))
        bot = bot_factory(sim)
        async with running(bot, sim):
            cache = ConfigCache(engine)
            grants = GrantStore(db)
            # max_retries None: the syncer as the app constructs it (its default).
            if max_retries is None:
                syncer = LevelRoleSyncer(bot, cache, grants)
            else:
                syncer = LevelRoleSyncer(bot, cache, grants, max_retries=max_retries, base_delay=0.01)
            env = Env(sim, bot, cache, syncer, faults, db, roles, member_cache)
            await env.settle()
            yield env
    finally:
        await sim.stop()
        await db.dispose()


@pytest.fixture
async def env(migrated_database: str) -> AsyncIterator[Env]:
    async with open_env(migrated_database) as opened:
        yield opened


STANDARD = [(5, "Level 5"), (10, "Level 10"), (20, "Level 20")]


# --- one update, per mode ------------------------------------------------------------------------------------


async def test_stack_mode_sets_every_earned_role_in_one_patch(env: Env) -> None:
    env.configure(STANDARD, "stack")
    since = len(env.sim.rest_calls)

    plan = await env.syncer.sync_member(GUILD, USER, 12)

    expected = env.ids("Member", "Level 5", "Level 10")
    assert plan is not None and plan.new_roles == expected
    [call] = env.patches(since)
    assert call.status == 200
    assert {int(r) for r in call.json["roles"]} == expected
    assert set(call.json) == {"roles"}
    assert call.audit_reason == "Level roles"
    assert env.member_roles() == expected
    assert env.syncer.snapshot() == {"pending": 0, "updated": 1, "failed": 0}

    # Once the gateway echoed the change, syncing again plans nothing and makes no call.
    await env.settle()
    again = await env.syncer.sync_member(GUILD, USER, 12)
    assert again is not None and again.new_roles is None
    assert len(env.patches(since)) == 1


async def test_replace_mode_keeps_only_the_highest_earned_role(env: Env) -> None:
    env.configure(STANDARD, "replace")
    await env.syncer.sync_member(GUILD, USER, 7)  # the bot grants Level 5 …
    await env.settle()
    assert await env.granted() == env.ids("Level 5")
    since = len(env.sim.rest_calls)

    await env.syncer.sync_member(GUILD, USER, 12)  # … so it may take it back when Level 10 replaces it

    [call] = env.patches(since)
    assert {int(r) for r in call.json["roles"]} == env.ids("Member", "Level 10")
    assert env.member_roles() == env.ids("Member", "Level 10")
    assert await env.granted() == env.ids("Level 10")


async def test_replace_mode_never_removes_a_reward_role_a_person_gave(env: Env) -> None:
    env.configure(STANDARD, "replace")
    await env.give("Member", "Level 5")  # a moderator gave it, not the bot
    since = len(env.sim.rest_calls)

    await env.syncer.sync_member(GUILD, USER, 12)

    [call] = env.patches(since)
    assert {int(r) for r in call.json["roles"]} == env.ids("Member", "Level 5", "Level 10")
    assert await env.granted() == env.ids("Level 10")


async def test_level_down_removes_roles_above_the_current_level(env: Env) -> None:
    env.configure(STANDARD, "stack")
    await env.syncer.sync_member(GUILD, USER, 25)
    await env.settle()
    assert await env.granted() == env.ids("Level 5", "Level 10", "Level 20")
    since = len(env.sim.rest_calls)

    plan = await env.syncer.sync_member(GUILD, USER, 7)

    assert plan is not None and plan.removed == env.ids("Level 10", "Level 20")
    assert len(env.patches(since)) == 1
    assert env.member_roles() == env.ids("Member", "Level 5")
    assert await env.granted() == env.ids("Level 5")


async def test_manual_non_reward_roles_are_kept(env: Env) -> None:
    env.configure(STANDARD, "stack")
    await env.syncer.sync_member(GUILD, USER, 25)
    await env.settle()
    await env.give("Member", "Helper", "Level 20")  # a person took Level 5 and 10 away and gave Helper
    since = len(env.sim.rest_calls)

    await env.syncer.sync_member(GUILD, USER, 0)

    [call] = env.patches(since)
    assert {int(r) for r in call.json["roles"]} == env.ids("Member", "Helper")
    assert env.member_roles() == env.ids("Member", "Helper")
    assert await env.granted() == frozenset()


async def test_a_role_a_person_gave_back_after_the_bot_granted_it_is_theirs(env: Env) -> None:
    env.configure(STANDARD, "stack")
    await env.syncer.sync_member(GUILD, USER, 7)  # the bot grants Level 5
    await env.settle()
    await env.give("Member")  # a moderator takes it away …
    await env.syncer.sync_member(GUILD, USER, 1)  # … the next sync forgets the bot's grant
    assert await env.granted() == frozenset()
    await env.give("Member", "Level 5")  # … and gives it back by hand: now it is theirs
    since = len(env.sim.rest_calls)

    await env.syncer.sync_member(GUILD, USER, 1)

    assert env.patches(since) == []
    assert env.member_roles() == env.ids("Member", "Level 5")


async def test_a_second_change_before_the_gateway_echo_uses_the_roles_just_written(env: Env) -> None:
    """Level up, then straight back down before hikari's cache has seen our update: the new roles must go again.

    The gateway connection is cut first, so the simulator buffers the GUILD_MEMBER_UPDATE of our update until
    hikari resumes (hikari waits at least a second before reconnecting), as a lagging gateway would.
    """
    env.configure(STANDARD, "stack")
    since = len(env.sim.rest_calls)
    assert await env.sim.drop_connection() == 1

    await env.syncer.sync_member(GUILD, USER, 12)
    cached = env.bot.cache.get_member(GUILD, USER)
    assert cached is not None and set(cached.role_ids) == {GUILD, ROLE_MEMBER_ID}  # the cache is behind
    await env.syncer.sync_member(GUILD, USER, 0)

    assert [{int(r) for r in c.json["roles"]} for c in env.patches(since)] == [
        env.ids("Member", "Level 5", "Level 10"),
        env.ids("Member"),
    ]
    assert env.member_roles() == env.ids("Member")
    await env.settle()  # after the resume, the cache agrees and a further sync makes no call
    await env.syncer.sync_member(GUILD, USER, 0)
    assert len(env.patches(since)) == 2


async def test_after_the_gateway_echo_a_persons_change_back_is_seen(env: Env) -> None:
    """Our update's memory ends with its echo: a moderator who then gives back a role the bot took (so the roles
    look exactly as before our update) must not lose it to the next sync planned from the remembered roles."""
    env.configure(STANDARD, "stack")
    await env.syncer.sync_member(GUILD, USER, 12)  # the bot grants Level 5 and Level 10
    await env.settle()
    await env.syncer.sync_member(GUILD, USER, 7)  # and takes Level 10 back
    await env.settle()
    await env.give("Member", "Level 5", "Level 10")  # a moderator gives Level 10 back by hand
    since = len(env.sim.rest_calls)

    await env.syncer.sync_member(GUILD, USER, 1)

    [call] = env.patches(since)
    assert {int(r) for r in call.json["roles"]} == env.ids("Member", "Level 10")
    assert env.member_roles() == env.ids("Member", "Level 10")
    assert await env.granted() == frozenset()


# --- pre-checks ----------------------------------------------------------------------------------------------


async def test_a_role_above_the_bot_is_skipped_and_alone_makes_no_call(env: Env) -> None:
    bot_position = env.sim.guild().roles[ROLE_BOT_ID].position
    env.roles["Legend"] = int(await env.sim.create_role("Legend", position=bot_position + 1))
    await env.settle()
    env.configure([(5, "Legend")], "stack")
    since = len(env.sim.rest_calls)

    plan = await env.syncer.sync_member(GUILD, USER, 5)

    assert plan is not None
    assert plan.skipped == (RoleSkip(env.roles["Legend"], "role_above_bot"),)
    assert plan.new_roles is None
    assert env.patches(since) == []
    assert env.syncer.problems(GUILD) == {env.roles["Legend"]: "role_above_bot"}

    # With an assignable reward at the same level, the call is made without the role above the bot.
    env.configure([(5, "Legend"), (5, "Level 5")], "stack")
    await env.syncer.sync_member(GUILD, USER, 5)
    [call] = env.patches(since)
    assert {int(r) for r in call.json["roles"]} == env.ids("Member", "Level 5")
    assert env.syncer.problems(GUILD) == {env.roles["Legend"]: "role_above_bot"}


async def test_a_managed_role_is_skipped_as_role_managed(env: Env) -> None:
    env.roles["Booster"] = int(await env.sim.create_role("Booster", position=1, managed=True))
    await env.settle()
    env.configure([(5, "Booster")], "stack")
    since = len(env.sim.rest_calls)

    plan = await env.syncer.sync_member(GUILD, USER, 5)

    assert plan is not None and plan.skipped == (RoleSkip(env.roles["Booster"], "role_managed"),)
    assert env.patches(since) == []
    assert env.syncer.problems(GUILD) == {env.roles["Booster"]: "role_managed"}


async def test_without_manage_roles_nothing_is_called_until_it_is_granted_again(env: Env) -> None:
    env.configure(STANDARD, "stack")
    await env.sim.update_role(ROLE_BOT_ID, permissions=DEFAULT_BOT_PERMISSIONS & ~Permission.MANAGE_ROLES)
    await env.settle()
    since = len(env.sim.rest_calls)

    plan = await env.syncer.sync_member(GUILD, USER, 12)

    assert plan is not None and plan.new_roles is None
    assert {skip.reason for skip in plan.skipped} == {"missing_manage_roles"}
    assert env.patches(since) == []
    assert env.syncer.problems(GUILD) == {
        env.roles["Level 5"]: "missing_manage_roles",
        env.roles["Level 10"]: "missing_manage_roles",
    }

    await env.sim.update_role(ROLE_BOT_ID, permissions=DEFAULT_BOT_PERMISSIONS)
    await env.settle()
    await env.syncer.sync_member(GUILD, USER, 12)
    assert len(env.patches(since)) == 1
    assert env.member_roles() == env.ids("Member", "Level 5", "Level 10")
    assert env.syncer.problems(GUILD) == {}


async def test_bots_are_never_touched(env: Env) -> None:
    env.configure(STANDARD, "stack")
    other_bot = int(await env.sim.join(username="helper_bot", bot=True))
    await env.settle()
    since = len(env.sim.rest_calls)

    assert await env.syncer.sync_member(GUILD, other_bot, 20) is None
    assert await env.syncer.sync_member(GUILD, SANDBOX_BOT_ID, 20) is None

    assert env.patches(since) == []


# --- Discord errors ------------------------------------------------------------------------------------------


async def test_403_is_logged_and_not_retried(env: Env) -> None:
    """Discord revoked Manage Roles but the gateway event has not arrived: the pre-check passes, Discord says 403."""
    env.configure(STANDARD, "stack")
    env.sim.guild().roles[ROLE_BOT_ID].permissions = DEFAULT_BOT_PERMISSIONS & ~Permission.MANAGE_ROLES  # no event
    since = len(env.sim.rest_calls)

    plan = await env.syncer.sync_member(GUILD, USER, 12)

    assert plan is not None and plan.new_roles == env.ids("Member", "Level 5", "Level 10")
    assert [c.status for c in env.patches(since)] == [403]
    assert env.member_roles() == env.ids("Member")
    assert env.syncer.snapshot() == {"pending": 0, "updated": 0, "failed": 1}


async def test_a_member_who_left_is_fetched_once_and_not_retried(env: Env) -> None:
    env.configure(STANDARD, "stack")
    await env.sim.leave(USER)
    await wait_for(lambda: env.bot.cache.get_member(GUILD, USER) is None)
    since = len(env.sim.rest_calls)

    assert await env.syncer.sync_member(GUILD, USER, 12) is None

    calls = env.sim.rest_calls[since:]
    assert [(c.method, c.route, c.status) for c in calls] == [("GET", MEMBER_ROUTE, 404)]
    assert env.syncer.snapshot()["failed"] == 0


def _production_bot(sim: DiscordSimulator) -> hikari.GatewayBot:
    """The GatewayBot exactly as the app builds it, with hikari's own 5xx retries (3, exponential backoff)."""
    return make_gateway_bot(sim.token, sim.api_url)


async def test_5xx_is_retried_by_hikari_in_the_production_configuration(migrated_database: str) -> None:
    """SPEC §13 "5xx → up to 3 retries with backoff", as the app runs it: hikari retries, the syncer adds none."""
    async with open_env(migrated_database, _production_bot, max_retries=None) as env:
        env.configure(STANDARD, "stack")
        env.faults.member_patch_500s = 2
        since = len(env.sim.rest_calls)

        await env.syncer.sync_member(GUILD, USER, 12)

        assert [c.status for c in env.patches(since)] == [500, 500, 200]
        assert env.member_roles() == env.ids("Member", "Level 5", "Level 10")
        assert env.syncer.snapshot() == {"pending": 0, "updated": 1, "failed": 0}


async def test_5xx_gives_up_after_three_retries_in_the_production_configuration(migrated_database: str) -> None:
    async with open_env(migrated_database, _production_bot, max_retries=None) as env:
        env.configure(STANDARD, "stack")
        env.faults.member_patch_500s = 100
        since = len(env.sim.rest_calls)

        await env.syncer.sync_member(GUILD, USER, 12)

        assert [c.status for c in env.patches(since)] == [500, 500, 500, 500]  # the first try and hikari's 3
        assert env.member_roles() == env.ids("Member")
        assert env.syncer.snapshot() == {"pending": 0, "updated": 0, "failed": 1}


def _bot_without_hikari_retries(sim: DiscordSimulator) -> hikari.GatewayBot:
    """Like `make_bot`, but hikari gives 5xx straight to the caller: for the syncer's own retries (`max_retries`
    > 0), which exist for REST clients that do not retry by themselves."""
    return hikari.GatewayBot(
        token=sim.token,
        rest_url=sim.api_url,
        intents=INTENTS,
        banner=None,
        logs=None,
        suppress_optimization_warning=True,
        max_retries=0,
    )


async def test_5xx_is_retried_with_backoff_until_it_succeeds(migrated_database: str) -> None:
    async with open_env(migrated_database, _bot_without_hikari_retries, max_retries=3) as env:
        env.configure(STANDARD, "stack")
        env.faults.member_patch_500s = 2
        since = len(env.sim.rest_calls)

        await env.syncer.sync_member(GUILD, USER, 12)

        assert [c.status for c in env.patches(since)] == [500, 500, 200]
        assert all(
            {int(r) for r in c.json["roles"]} == env.ids("Member", "Level 5", "Level 10") for c in env.patches(since)
        )
        assert env.member_roles() == env.ids("Member", "Level 5", "Level 10")
        assert env.syncer.snapshot() == {"pending": 0, "updated": 1, "failed": 0}


async def test_5xx_gives_up_after_max_retries(migrated_database: str) -> None:
    async with open_env(migrated_database, _bot_without_hikari_retries, max_retries=2) as env:
        env.configure(STANDARD, "stack")
        env.faults.member_patch_500s = 100
        since = len(env.sim.rest_calls)

        await env.syncer.sync_member(GUILD, USER, 12)

        assert [c.status for c in env.patches(since)] == [500, 500, 500]  # the first try and 2 retries
        assert env.member_roles() == env.ids("Member")
        assert env.syncer.snapshot() == {"pending": 0, "updated": 0, "failed": 1}


async def test_members_missing_from_the_cache_are_fetched_over_rest(migrated_database: str) -> None:
    """Large guilds are not fully chunked: without a member cache the syncer reads the member (and itself) once."""

    def bot_without_member_cache(sim: DiscordSimulator) -> hikari.GatewayBot:
        return hikari.GatewayBot(
            token=sim.token,
            rest_url=sim.api_url,
            intents=INTENTS,
            banner=None,
            logs=None,
            suppress_optimization_warning=True,
            cache_settings=hikari.impl.CacheSettings(
                components=hikari.api.CacheComponents.ALL & ~hikari.api.CacheComponents.MEMBERS
            ),
        )

    async with open_env(migrated_database, bot_without_member_cache, member_cache=False) as env:
        env.configure(STANDARD, "stack")
        since = len(env.sim.rest_calls)

        await env.syncer.sync_member(GUILD, USER, 12)

        calls = [(c.method, c.path) for c in env.sim.rest_calls[since:]]
        assert calls == [
            ("GET", f"/guilds/{GUILD}/members/{USER}"),
            ("GET", f"/guilds/{GUILD}/members/{SANDBOX_BOT_ID}"),
            ("PATCH", f"/guilds/{GUILD}/members/{USER}"),
        ]
        assert env.member_roles() == env.ids("Member", "Level 5", "Level 10")


# --- queue and job -------------------------------------------------------------------------------------------


async def test_requests_for_one_member_coalesce_to_one_patch_with_the_last_level(env: Env) -> None:
    env.configure(STANDARD, "stack")
    since = len(env.sim.rest_calls)
    env.syncer.request(GUILD, USER, 5)
    env.syncer.request(GUILD, USER, 12)
    assert env.syncer.snapshot()["pending"] == 1

    runner = asyncio.create_task(env.syncer.run())
    try:
        await wait_for(lambda: env.syncer.snapshot()["pending"] == 0 and env.syncer.snapshot()["updated"] >= 1)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner

    [call] = env.patches(since)
    assert {int(r) for r in call.json["roles"]} == env.ids("Member", "Level 5", "Level 10")
    assert env.syncer.snapshot() == {"pending": 0, "updated": 1, "failed": 0}


async def test_run_keeps_draining_after_each_member(env: Env) -> None:
    env.configure(STANDARD, "stack")
    runner = asyncio.create_task(env.syncer.run())
    try:
        env.syncer.request(GUILD, USER, 5)
        await wait_for(lambda: env.member_roles() == env.ids("Member", "Level 5"))
        await env.settle()
        env.syncer.request(GUILD, SANDBOX_BOT_ID, 20)  # a bot: ignored, the loop carries on
        env.syncer.request(GUILD, USER + 1, 20)
        await wait_for(lambda: env.member_roles(USER + 1) == env.ids("Member", "Level 5", "Level 10", "Level 20"))
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert env.syncer.snapshot() == {"pending": 0, "updated": 2, "failed": 0}


def _members(env: Env) -> list[int]:
    return env.sim.member_ids()  # humans only, ascending; the owner and 20 members


async def test_sync_guild_stops_between_members_when_asked(env: Env) -> None:
    members = [m for m in _members(env) if m >= USER]
    await env.store(STANDARD, dict.fromkeys(members, 5))
    since = len(env.sim.rest_calls)

    result = await env.syncer.sync_guild(
        GUILD, members, per_second=1000.0, should_stop=lambda: len(env.patches(since)) >= 3
    )

    assert result == {"checked": 3, "updated": 3, "skipped": 0, "failed": 0}
    updated = [m for m in members if env.member_roles(m) == env.ids("Member", "Level 5")]
    assert updated == members[:3]


async def test_sync_guild_paces_member_updates(env: Env) -> None:
    """≤ per_second updates/s: count the updates made by the time `should_stop` trips after a fixed window.

    The bound is an upper one (a slow machine only makes fewer updates), while an unpaced loop would update all
    20 members long before the window ends.
    """
    members = [m for m in _members(env) if m >= USER]
    await env.store(STANDARD, dict.fromkeys(members, 5))
    loop = asyncio.get_running_loop()
    started: list[float] = []
    per_second, window = 10.0, 0.5

    def should_stop() -> bool:
        if not started:
            started.append(loop.time())
        return loop.time() - started[0] >= window

    since = len(env.sim.rest_calls)
    result = await env.syncer.sync_guild(GUILD, members, per_second=per_second, should_stop=should_stop)

    made = len(env.patches(since))
    assert 1 <= made <= per_second * window + 2
    assert result["updated"] == result["checked"] == made < len(members)


async def test_sync_guild_only_paces_actual_updates(env: Env) -> None:
    """Members that need no change cost no wait: at 0.2 updates/s, pacing each member would take ~100 s."""
    members = [m for m in _members(env) if m >= USER]
    levels = dict.fromkeys(members, 1)  # level 1: no reward, nothing to change …
    levels[members[0]] = 5  # … except for the first and the last member
    levels[members[-1]] = 5
    await env.store(STANDARD, levels)
    await env.give("Member", "Level 5", user_id=members[-1])  # … who already holds the role
    since = len(env.sim.rest_calls)

    async with asyncio.timeout(20):
        result = await env.syncer.sync_guild(GUILD, members, per_second=0.2)

    assert result == {"checked": len(members), "updated": 1, "skipped": 0, "failed": 0}
    assert [c.path for c in env.patches(since)] == [f"/guilds/{GUILD}/members/{members[0]}"]


async def test_sync_guild_counts_skipped_members(env: Env) -> None:
    bot_position = env.sim.guild().roles[ROLE_BOT_ID].position
    env.roles["Legend"] = int(await env.sim.create_role("Legend", position=bot_position + 1))
    await env.settle()
    a, b, c = [m for m in _members(env) if m >= USER][:3]
    await env.store([(5, "Level 5"), (10, "Legend")], {a: 5, b: 10, c: 1})

    result = await env.syncer.sync_guild(GUILD, [a, b, c], per_second=1000.0)

    # a: gets Level 5; b: gets Level 5, Legend skipped; c: nothing to do.
    assert result == {"checked": 3, "updated": 2, "skipped": 1, "failed": 0}
    assert env.member_roles(b) == env.ids("Member", "Level 5")


async def test_the_request_queue_is_bounded_but_a_waiting_member_can_still_be_updated(env: Env) -> None:
    syncer = LevelRoleSyncer(env.bot, env.cache, GrantStore(env.db), max_pending=1)

    syncer.request(GUILD, USER, 5)
    syncer.request(GUILD, USER + 1, 5)  # a second member: refused, the queue is full
    syncer.request(GUILD, USER, 12)  # the waiting member: coalesced, takes no extra room

    assert syncer.snapshot()["pending"] == 1
    assert syncer.dropped == 1
