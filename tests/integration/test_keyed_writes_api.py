"""Money paths of the admin API that must pay exactly once and take back exactly what was paid (SPEC §7.5, §18,
§20, §20.1, §5.1), over real HTTP: real app, PostgreSQL, simulator and hikari.

- concurrent identical `POST …/awards` with one `Idempotency-Key`: one executes, the rest replay it (or hear
  `in_progress`), one journal row — and a retry after the 24 h replay window still finds the same journal row;
- awards and grants to a member Discord has in the guild but the bot has no row for create the row;
- `reverse_rewards` takes back what the grant's journal rows paid, not the template's current rewards;
- writing a setting to the value it already has is no change: no audit row, no NOTIFY, no relevel job.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from synapse_async.db.notify import CONFIG_CHANNEL
from synapse_async.db.urls import to_asyncpg_dsn
from synapse_async.runtime import Runtime
from synapse_async.sandbox.world import SANDBOX_FIRST_MEMBER_ID, SANDBOX_GUILD_ID
from tests.api_support import Reply, base, call
from tests.support import make_runtime, wait_for

GUILD = SANDBOX_GUILD_ID
ADMIN = f"/api/admin/guilds/{GUILD}"
SECRET = "keyed-writes-" + "s" * 40
# Sandbox members (in the guild per Discord) that no test makes active, so the bot has no row for them.
QUIET = [SANDBOX_FIRST_MEMBER_ID + i for i in (11, 12)]
# Members with a row (made here directly: what these tests check must not depend on how rows come to exist).
KNOWN = [SANDBOX_FIRST_MEMBER_ID + i for i in (2, 3, 4)]
STRANGER = 424242


@pytest.fixture(scope="module")
async def runtime(fresh_database: str) -> AsyncIterator[Runtime]:
    rt = make_runtime(
        fresh_database, JWT_SECRET=SECRET, PUBLIC_RATE_LIMIT_PER_MINUTE="0", ADMIN_RATE_LIMIT_PER_MINUTE="10000"
    )
    await rt.start()
    cache = rt.components.require_cache()
    await wait_for(lambda: GUILD in cache.known_guild_ids())
    for user_id in KNOWN:
        await execute(
            rt,
            "INSERT INTO members (guild_id, user_id, display_name) VALUES (:g, :u, :n)",
            u=user_id,
            n=f"Known {user_id}",
        )
    yield rt
    await rt.shutdown()


def headers(rt: Runtime, key: str | None = None) -> dict[str, str]:
    assert rt.api is not None
    token = rt.api.codec.issue_service("keyed-tests", [GUILD], ttl=600, now=rt.api.now())
    out = {"Authorization": f"Bearer {token}"}
    if key is not None:
        out["Idempotency-Key"] = key
    return out


async def send(rt: Runtime, method: str, path: str, body: Any = None, key: str | None = None) -> Reply:
    kw: dict[str, Any] = {"headers": headers(rt, key)}
    if body is not None:
        kw["json"] = body
    return await call(method, base(rt) + path, **kw)


async def scalar(rt: Runtime, sql: str, **params: Any) -> Any:
    db = rt.components.require_db()
    async with db.engine.connect() as conn:
        return (await conn.execute(text(sql), {"g": GUILD, **params})).scalar()


async def execute(rt: Runtime, sql: str, **params: Any) -> None:
    db = rt.components.require_db()
    async with db.engine.begin() as conn:
        await conn.execute(text(sql), {"g": GUILD, **params})


async def has_row(rt: Runtime, user_id: int) -> bool:
    return bool(await scalar(rt, "SELECT count(*) FROM members WHERE guild_id = :g AND user_id = :u", u=user_id))


async def test_concurrent_identical_awards_with_one_key_pay_once(runtime: Runtime) -> None:
    user = KNOWN[0]
    body = {"user_id": str(user), "xp": 30, "gold": 7, "reason": "Exactly once"}
    key = "award-once-000001"
    replies = await asyncio.gather(*(send(runtime, "POST", ADMIN + "/awards", body, key) for _ in range(12)))

    paid = [r for r in replies if r.status == 200]
    waiting = [r for r in replies if r.status != 200]
    assert paid, [r.body for r in replies]
    # Every success is THE first response (§18); anything else is the in-progress conflict, nothing else.
    assert all(r.body == paid[0].body for r in paid), [r.body for r in paid]
    for reply in waiting:
        assert reply.status == 409 and reply.body["error"]["code"] == "conflict", reply.body
        assert reply.body["error"]["details"]["reason"] == "in_progress"
    journal = "SELECT count(*) FROM reward_journal WHERE guild_id = :g AND user_id = :u AND event_type = 'manual_award'"
    assert await scalar(runtime, journal, u=user) == 1
    assert await scalar(runtime, "SELECT gold FROM members WHERE guild_id = :g AND user_id = :u", u=user) == 7
    # The journal row is keyed by the header (§7.5 `award:<request_id>`) ...
    keyed = "SELECT id FROM reward_journal WHERE guild_id = :g AND idempotency_key = :k"
    assert await scalar(runtime, keyed, k=f"award:{key}") == paid[0].body["journal_id"]

    # ... so a retry after the 24 h replay window (the pruner removed the stored response) still pays nothing.
    await execute(runtime, "DELETE FROM idempotency_keys WHERE key = :k", k=key)
    late = await send(runtime, "POST", ADMIN + "/awards", body, key)
    assert late.status == 200, late.body
    assert late.body["journal_id"] == paid[0].body["journal_id"] and late.body["gold_applied"] == 7
    assert await scalar(runtime, journal, u=user) == 1
    assert await scalar(runtime, "SELECT gold FROM members WHERE guild_id = :g AND user_id = :u", u=user) == 7

    # The key is scoped by route: the same key on another route is another operation, not a conflict.
    template = await send(runtime, "POST", ADMIN + "/achievements", {"name": "Keyed", "trigger_type": "manual"})
    assert template.status == 201, template.body
    granted = await send(
        runtime, "POST", ADMIN + f"/achievements/{template.body['id']}/grant", {"user_id": str(user)}, key
    )
    assert granted.status == 200, granted.body
    assert "Idempotent-Replayed" not in granted.headers


async def test_a_stored_refusal_is_replayed_and_another_body_is_a_conflict(runtime: Runtime) -> None:
    key = "award-missing-0001"
    body = {"user_id": str(STRANGER), "xp": 1, "reason": "Nobody"}
    first = await send(runtime, "POST", ADMIN + "/awards", body, key)
    again = await send(runtime, "POST", ADMIN + "/awards", body, key)
    assert first.status == again.status == 404 and again.headers["Idempotent-Replayed"] == "true"
    other = await send(runtime, "POST", ADMIN + "/awards", {**body, "xp": 2}, key)
    assert other.status == 409 and other.body["error"]["details"]["reason"] == "idempotency_key_reused"


async def test_awards_and_grants_create_the_row_of_a_guild_member(runtime: Runtime) -> None:
    awarded, granted = QUIET[0], QUIET[1]
    assert not await has_row(runtime, awarded) and not await has_row(runtime, granted)

    award = await send(runtime, "POST", ADMIN + "/awards", {"user_id": str(awarded), "xp": 12, "reason": "Welcome"})
    assert award.status == 200, award.body
    assert award.body["xp_applied"] == 12 and award.body["xp"] == 12
    assert await has_row(runtime, awarded)

    template = await send(
        runtime, "POST", ADMIN + "/achievements", {"name": "First steps", "trigger_type": "manual", "gold_reward": 3}
    )
    assert template.status == 201, template.body
    grant = await send(runtime, "POST", ADMIN + f"/achievements/{template.body['id']}/grant", {"user_id": str(granted)})
    assert grant.status == 200, grant.body
    assert grant.body["gold_applied"] == 3 and await has_row(runtime, granted)

    # Not in the guild and unknown to the bot: still 404, and no row is made.
    stranger = await send(runtime, "POST", ADMIN + "/awards", {"user_id": str(STRANGER), "xp": 1, "reason": "Who"})
    assert stranger.status == 404 and not await has_row(runtime, STRANGER)


async def test_reverse_rewards_takes_back_what_the_grant_paid(runtime: Runtime) -> None:
    user, imported = KNOWN[1], KNOWN[2]
    made = await send(
        runtime,
        "POST",
        ADMIN + "/achievements",
        {"name": "Edited later", "trigger_type": "manual", "xp_reward": 40, "gold_reward": 15},
    )
    assert made.status == 201, made.body
    template = made.body["id"]
    grant = await send(runtime, "POST", ADMIN + f"/achievements/{template}/grant", {"user_id": str(user)})
    assert grant.status == 200 and (grant.body["xp_applied"], grant.body["gold_applied"]) == (40, 15)
    # Award extra so that a reversal of the template's NEW rewards would not be hidden by the clamp at 0.
    extra = {"user_id": str(user), "xp": 500, "gold": 500, "reason": "Cushion"}
    cushion = await send(runtime, "POST", ADMIN + "/awards", extra)
    assert cushion.status == 200, cushion.body
    edited = await send(runtime, "PATCH", ADMIN + f"/achievements/{template}", {"xp_reward": 100, "gold_reward": 60})
    assert edited.status == 200, edited.body

    revoke = ADMIN + f"/achievements/{template}/revoke"
    back = await send(runtime, "POST", revoke, {"user_id": str(user), "reason": "Undo", "reverse_rewards": True})
    assert back.status == 200, back.body
    assert (back.body["xp_applied"], back.body["gold_applied"]) == (-40, -15)
    assert (back.body["xp"], back.body["gold"]) == (cushion.body["xp"] - 40, cushion.body["gold"] - 15)

    # A badge from an import paid nothing (§20.1: achievements granted without rewards): reversing takes back 0.
    cushion = await send(runtime, "POST", ADMIN + "/awards", {**extra, "user_id": str(imported)})
    assert cushion.status == 200, cushion.body
    await execute(
        runtime,
        "INSERT INTO member_achievements (guild_id, user_id, template_id, source) VALUES (:g, :u, :t, 'import')",
        u=imported,
        t=template,
    )
    nothing = await send(runtime, "POST", revoke, {"user_id": str(imported), "reason": "Undo", "reverse_rewards": True})
    assert nothing.status == 200, nothing.body
    assert (nothing.body["xp_applied"], nothing.body["gold_applied"]) == (0, 0)
    assert (nothing.body["xp"], nothing.body["gold"]) == (cushion.body["xp"], cushion.body["gold"])


async def test_writing_the_value_a_setting_already_has_is_no_change(runtime: Runtime, fresh_database: str) -> None:
    listener = await asyncpg.connect(to_asyncpg_dsn(fresh_database))
    heard: list[str] = []
    await listener.add_listener(CONFIG_CHANNEL, lambda *args: heard.append(str(args[3])))
    try:
        audits = "SELECT count(*) FROM audit_log WHERE guild_id = :g AND action LIKE 'settings.%'"
        relevels = "SELECT count(*) FROM jobs WHERE guild_id = :g AND kind = 'relevel'"
        settings = ADMIN + "/settings"
        # The defaults, never written before, and a stored value written again.
        same = {"leveling.level_base": 100, "leveling.level_factor": 1.25, "economy.coffee_cost": 50}
        assert (await send(runtime, "PATCH", settings, {"values": {"leaderboard.size": 30}})).status == 200
        audits_before, relevels_before = await scalar(runtime, audits), await scalar(runtime, relevels)
        await _marker(listener, heard)
        heard.clear()

        for values in (same, {"leaderboard.size": 30}):
            reply = await send(runtime, "PATCH", settings, {"values": values})
            assert reply.status == 200, reply.body
        reset = await send(runtime, "DELETE", settings + "/economy.xp_name")  # never set: already the default
        assert reset.status in (200, 204), reset.body

        assert await scalar(runtime, audits) == audits_before
        assert await scalar(runtime, relevels) == relevels_before
        await _marker(listener, heard)
        assert [p for p in heard if "settings" in p] == []
        stored = "SELECT count(*) FROM settings WHERE guild_id = :g AND key = 'leveling.level_base'"
        assert await scalar(runtime, stored) == 0
    finally:
        await listener.close()


async def _marker(listener: asyncpg.Connection, heard: list[str]) -> None:
    """Wait until every notification committed so far has arrived: a marker sent now comes after them."""
    await listener.execute(f"SELECT pg_notify('{CONFIG_CHANNEL}', 'marker')")
    await wait_for(lambda: "marker" in heard)
