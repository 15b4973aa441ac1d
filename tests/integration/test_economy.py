"""Manual awards, grants, revokes and purchases against a real PostgreSQL (SPEC §10.2, §10.3, §12.3, §12.4, §14, §22;
invariants 3–5 of §27).

The services run on a migrated database with their own `Database`, `ConfigCache` and `Processor`; the cache is
reloaded explicitly after each config write (the listener is tested elsewhere). Each test uses its own guild id, so
settings, seasons and templates never leak between tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from synapse_async.cache.config_cache import ConfigCache
from synapse_async.db.engine import Database
from synapse_async.ledger import LevelEngine
from synapse_async.rewards.leveling import curve_for
from synapse_async.services.audit import Actor
from synapse_async.services.economy import (
    AwardResult,
    Economy,
    GrantRejected,
    GrantResult,
    RevokeRejected,
    RevokeResult,
)
from synapse_async.services.settings import update_settings

ADMIN = Actor("100000000000000777", "user", "api", request_id="req-econ")
U = [300000000000000000 + i for i in range(40)]


@dataclass
class Env:
    db: Database
    cache: ConfigCache
    economy: Economy


@pytest.fixture(scope="module")
async def env(migrated_database: str) -> AsyncIterator[Env]:
    # Enough connections for ten concurrent grants, each in its own transaction.
    db = Database(migrated_database, pool_size=4, max_overflow=16, pool_timeout=30, statement_timeout_ms=15000)
    cache = ConfigCache(db.engine)
    await cache.full_reload()
    # Effects are asserted on the results; nothing here announces, so publishing is a no-op.
    yield Env(db, cache, Economy(db, LevelEngine(), cache, lambda _effects: None))
    await db.dispose()


async def fetch(env: Env, query: str, *args: Any) -> list[dict[str, Any]]:
    async with env.db.engine.connect() as sa_conn:
        raw = await sa_conn.get_raw_connection()
        return [dict(r) for r in await raw.driver_connection.fetch(query, *args)]


async def one(env: Env, query: str, *args: Any) -> dict[str, Any]:
    rows = await fetch(env, query, *args)
    assert len(rows) == 1, rows
    return rows[0]


def details(row: dict[str, Any]) -> dict[str, Any]:
    value = row["details"]
    return value if isinstance(value, dict) else json.loads(value)


async def settings(env: Env, guild: int, values: dict[str, object]) -> None:
    await update_settings(env.db.sessions, guild, values, ADMIN)
    await env.cache.reload("settings", guild)
    for key, value in values.items():
        assert env.cache.settings(guild).raw(key) == value


async def template(env: Env, guild: int, name: str, **columns: Any) -> int:
    cols = {"trigger_type": "manual", "trigger_config": "{}", **columns}
    names = ", ".join(cols)
    params = ", ".join(f"${i + 3}" + ("::jsonb" if k == "trigger_config" else "") for i, k in enumerate(cols))
    row = await one(
        env,
        f"INSERT INTO achievement_templates (guild_id, name, {names}) VALUES ($1, $2, {params}) RETURNING id",
        guild,
        name,
        *cols.values(),
    )
    await env.cache.reload("achievement_templates", guild)
    return int(row["id"])


async def give(env: Env, guild: int, user: int, *, xp: int = 0, gold: int = 0, rid: str, **kw: Any) -> AwardResult:
    return await env.economy.award(
        guild_id=guild,
        user_id=user,
        xp=xp,
        gold=gold,
        reason="test",
        actor=ADMIN,
        request_id=rid,
        **kw,
    )


async def do_grant(env: Env, guild: int, user: int, template_id: int, rid: str, **kw: Any) -> GrantResult:
    return await env.economy.grant(
guild_id=guild, user_id=user, template_id=template_id, actor=ADMIN,
        request_id=rid, **kw,
    )  # fmt: skip


async def do_revoke(env: Env, guild: int, user: int, template_id: int, rid: str, **kw: Any) -> RevokeResult:
    return await env.economy.revoke(
guild_id=guild, user_id=user, template_id=template_id, actor=ADMIN,
        request_id=rid, **kw,
    )  # fmt: skip


async def member(env: Env, guild: int, user: int) -> dict[str, Any]:
    return await one(env, "SELECT * FROM members WHERE guild_id = $1 AND user_id = $2", guild, user)


async def counts(env: Env, guild: int) -> dict[str, int]:
    """Row counts of everything these services may write for a guild."""
    out = {}
    for table in ("members", "reward_journal", "gold_ledger", "member_achievements", "audit_log", "season_stats"):
        out[table] = int((await one(env, f"SELECT count(*) AS n FROM {table} WHERE guild_id = $1", guild))["n"])
    out["earned"] = int(
        (
            await one(
                env, "SELECT COALESCE(sum(earned_count), 0) AS n FROM achievement_templates WHERE guild_id = $1", guild
            )
        )["n"]
    )
    return out


async def assert_books_balance(env: Env, guild: int) -> None:
    """§27 items 3 and 4: balances equal the sums of their journal / ledger deltas; level = level(xp)."""
    rows = await fetch(
        env,
        """
        SELECT m.user_id, m.xp, m.gold, m.level,
               (SELECT COALESCE(sum(xp_delta), 0) FROM reward_journal j WHERE j.guild_id = m.guild_id
                   AND j.user_id = m.user_id) AS journal_xp,
               (SELECT COALESCE(sum(delta), 0) FROM gold_ledger l WHERE l.guild_id = m.guild_id
                   AND l.user_id = m.user_id) AS ledger_gold
          FROM members m WHERE m.guild_id = $1
        """,
        guild,
    )
    assert rows
    s = env.cache.settings(guild)
    curve = curve_for(s.int("leveling.level_base"), s.float("leveling.level_factor"))
    for r in rows:
        assert r["xp"] == r["journal_xp"], r
        assert r["gold"] == r["ledger_gold"], r
        assert r["level"] == curve.level(r["xp"]), r


# --- §10.2 -----------------------------------------------------------------------------------------------------


async def test_level_down_and_back_pays_gold_only_above_the_peak(env: Env) -> None:
    guild, user = 910000000000000001, U[0]
    await settings(env, guild, {"leveling.level_base": 400, "leveling.gold_per_level_up": 50})
    # base 400, factor 1.25: level 6 starts at 1,220 XP, 10 at 2,980, 11 at 3,725, 12 at 4,656.
    first = await give(env, guild, user, xp=3300, rid="ex-1")
    assert (first.xp_applied, first.level, first.gold) == (3300, 10, 9 * 50)
    assert [(u.level, u.gold) for u in first.effects.level_ups] == [(10, 450)]
    down = await give(env, guild, user, xp=-2000, rid="ex-2")
    assert (down.xp_applied, down.xp, down.level, down.gold) == (-2000, 1300, 6, 450)
    assert down.effects.level_ups == [] and down.effects.role_syncs == {(guild, user): 6}
    assert down.effects.awards == []  # nothing positive was applied: no award announcement
    back = await give(env, guild, user, xp=3400, rid="ex-3")
    assert (back.xp, back.level, back.gold) == (4700, 12, 450 + 2 * 50)
    assert [(u.level, u.gold) for u in back.effects.level_ups] == [(12, 100)]
    m = await member(env, guild, user)
    assert (m["level"], m["peak_level"], m["gold"]) == (12, 12, 550)
    levels = await fetch(
        env,
        "SELECT idempotency_key, details FROM reward_journal WHERE guild_id = $1 AND event_type = 'level_change'"
        " ORDER BY id",
        guild,
    )
    assert [(r["idempotency_key"], details(r)) for r in levels] == [
        ("award:ex-1#lvl", {"from": 1, "to": 10, "bonus": 450}),
        ("award:ex-2#lvl", {"from": 10, "to": 6, "bonus": 0}),
        ("award:ex-3#lvl", {"from": 6, "to": 12, "bonus": 100}),
    ]
    ledger = await fetch(
        env, "SELECT reason, delta, idempotency_key FROM gold_ledger WHERE guild_id = $1 ORDER BY id", guild
    )
    assert [(r["reason"], r["delta"], r["idempotency_key"]) for r in ledger] == [
        ("level_up", 450, "award:ex-1#lvl"),
        ("level_up", 100, "award:ex-3#lvl"),
    ]
    await assert_books_balance(env, guild)


# --- §10.3 clamping, seasons, announcements, audit -------------------------------------------------------------


async def test_negative_award_is_clamped_and_reported_as_applied(env: Env) -> None:
    guild, user = 910000000000000002, U[1]
    await give(env, guild, user, xp=100, gold=30, rid="cl-1")  # no name known yet: stored as the user id
    assert (await member(env, guild, user))["display_name"] == str(user)
    result = await give(env, guild, user, xp=-500, gold=-1000, rid="cl-2", display_name="Clara")
    assert (result.xp_applied, result.gold_applied, result.xp, result.gold, result.level) == (-100, -30, 0, 0, 1)
    journal = await one(
        env, "SELECT * FROM reward_journal WHERE guild_id = $1 AND idempotency_key = 'award:cl-2'", guild
    )
    assert journal["event_type"] == "manual_award" and journal["xp_delta"] == -100
    assert journal["actor_id"] == ADMIN.actor_id
    assert details(journal) == {"reason": "test", "requested": {"xp": -500, "gold": -1000}, "gold": -30}
    ledger = await one(env, "SELECT * FROM gold_ledger WHERE guild_id = $1 AND idempotency_key = 'award:cl-2'", guild)
    assert (ledger["reason"], ledger["delta"], ledger["balance_after"], ledger["journal_id"]) == (
        "manual_award",
        -30,
        0,
        journal["id"],
    )
    # Already at zero: the applied amounts are 0, the journal says so and no ledger row is written for 0 gold.
    again = await give(env, guild, user, xp=-1, gold=-1, rid="cl-3", display_name="Not replacing a known name")
    assert (again.xp_applied, again.gold_applied) == (0, 0)
    assert (
        await fetch(env, "SELECT 1 FROM gold_ledger WHERE guild_id = $1 AND idempotency_key = 'award:cl-3'", guild)
        == []
    )
    m = await member(env, guild, user)
    assert (m["xp"], m["gold"], m["display_name"]) == (0, 0, "Clara")
    audit = await fetch(
        env, "SELECT * FROM audit_log WHERE guild_id = $1 AND action = 'award.create' ORDER BY id", guild
    )
    assert len(audit) == 3
    last = audit[1]
    assert (last["actor_id"], last["via"], last["target_type"], last["target_id"], last["reason"]) == (
        ADMIN.actor_id,
        "api",
        "member",
        str(user),
        "test",
    )
    after = last["after"] if isinstance(last["after"], dict) else json.loads(last["after"])
    assert (after["xp_applied"], after["gold_applied"], after["xp"], after["gold"]) == (-100, -30, 0, 0)
    await assert_books_balance(env, guild)


async def test_award_season_stats_use_applied_deltas(env: Env) -> None:
    guild, user = 910000000000000003, U[2]
    now = datetime.now(UTC)
    season = await one(
        env,
        "INSERT INTO seasons (guild_id, name, starts_at, ends_at, status) VALUES ($1, 'S1', $2, $3, 'active')"
        " RETURNING season_id",
        guild,
        now - timedelta(days=1),
        now + timedelta(days=1),
    )
    await env.cache.reload("seasons", guild)
    await give(env, guild, user, xp=200, gold=40, rid="se-1")  # 200 XP: level 4 (3 levels × 50 gold)
    stats = await one(env, "SELECT xp, gold_earned FROM season_stats WHERE season_id = $1", season["season_id"])
    assert stats == {"xp": 200, "gold_earned": 40 + 150}
    await give(env, guild, user, xp=-500, gold=-100, rid="se-2")  # clamped: −200 XP, −100 gold
    stats = await one(env, "SELECT xp, gold_earned FROM season_stats WHERE season_id = $1", season["season_id"])
    assert stats == {"xp": 0, "gold_earned": 190}  # season gold counts positive movements only
    journal = await one(env, "SELECT season_id FROM reward_journal WHERE idempotency_key = 'award:se-2'")
    assert journal["season_id"] == season["season_id"]
    await assert_books_balance(env, guild)


async def test_award_announcement_candidate_follows_toggle_and_preference(env: Env) -> None:
    guild, user, quiet = 910000000000000004, U[3], U[4]
    result = await give(env, guild, user, xp=-5, gold=7, rid="an-1", channel_id=555)
    assert [(a.user_id, a.xp, a.gold, a.reason, a.actor_id, a.channel_id) for a in result.effects.awards] == [
        (user, 0, 7, "test", ADMIN.actor_id, 555)
    ]
    await one(
        env,
        "INSERT INTO members (guild_id, user_id, display_name) VALUES ($1, $2, 'q') RETURNING user_id",
        guild,
        quiet,
    )
    await one(
        env,
        "INSERT INTO member_preferences (guild_id, user_id, announce_awards) VALUES ($1, $2, false) RETURNING user_id",
        guild,
        quiet,
    )
    assert (await give(env, guild, quiet, gold=5, rid="an-2")).effects.awards == []
    await settings(env, guild, {"announce.manual_awards": False})
    assert (await give(env, guild, user, gold=5, rid="an-3")).effects.awards == []


async def test_award_validation_writes_nothing(env: Env) -> None:
    guild, user = 910000000000000005, U[5]
    before = await counts(env, guild)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"xp": 0, "gold": 0, "reason": "r"}, "non-zero"),
        ({"xp": 1_000_001, "gold": 0, "reason": "r"}, r"^xp must be"),
        ({"xp": 0, "gold": -1_000_001, "reason": "r"}, r"^gold must be"),
        ({"xp": True, "gold": 0, "reason": "r"}, r"^xp must be"),
        ({"xp": 1, "gold": 0, "reason": ""}, r"^reason must be"),
        ({"xp": 1, "gold": 0, "reason": "   "}, r"^reason must be"),
        ({"xp": 1, "gold": 0, "reason": "x" * 201}, r"^reason must be"),
    ]
    for i, (kw, problem) in enumerate(bad):
        with pytest.raises(ValueError, match=problem):
            await env.economy.award(guild_id=guild, user_id=user, actor=ADMIN, request_id=f"v-{i}", **kw)
    with pytest.raises(ValueError, match=r"^request_id must be"):
        await give(env, guild, user, xp=1, rid="")
    assert await counts(env, guild) == before
    ok = await give(env, guild, user, xp=1_000_000, gold=-1_000_000, rid="v-ok")  # both limits are allowed
    assert (ok.xp_applied, ok.gold_applied) == (1_000_000, 0)


# --- idempotency -------------------------------------------------------------------------------------------------


async def test_repeated_request_ids_apply_once(env: Env) -> None:
    guild, user = 910000000000000006, U[6]
    first = await give(env, guild, user, xp=50, gold=10, rid="dup-1")
    again = await give(env, guild, user, xp=50, gold=10, rid="dup-1")
    assert again.replayed and not first.replayed
    assert (again.journal_id, again.xp_applied, again.gold_applied) == (first.journal_id, 50, 10)
    assert (again.xp, again.gold, again.level) == (50, 10, 1)
    assert again.effects.awards == [] and first.effects.awards != []
    # Concurrent duplicates: the unique key lets exactly one apply, the rest read the winner back.
    results = await asyncio.gather(*(give(env, guild, user, xp=7, gold=3, rid="dup-2") for _ in range(6)))
    assert sum(not r.replayed for r in results) == 1
    assert {r.journal_id for r in results} == {results[0].journal_id}
    assert all((r.xp_applied, r.gold_applied) == (7, 3) for r in results)
    m = await member(env, guild, user)
    assert (m["xp"], m["gold"]) == (57, 13)
    for key, n in (("award:dup-1", 1), ("award:dup-2", 1)):
        assert len(await fetch(env, "SELECT 1 FROM reward_journal WHERE idempotency_key = $1", key)) == n
        assert len(await fetch(env, "SELECT 1 FROM gold_ledger WHERE idempotency_key = $1", key)) == n
    assert len(await fetch(env, "SELECT 1 FROM audit_log WHERE guild_id = $1", guild)) == 2

    tid = await template(env, guild, "Once", xp_reward=10, gold_reward=5)
    g1 = await do_grant(env, guild, user, tid, "dup-g")
    g2 = await do_grant(env, guild, user, tid, "dup-g")
    assert g2.replayed and (g2.journal_id, g2.template_id, g2.xp_applied, g2.gold_applied) == (
        g1.journal_id,
        tid,
        10,
        5,
    )
    r1 = await do_revoke(env, guild, user, tid, "dup-r", reason="oops", reverse_rewards=True)
    r2 = await do_revoke(env, guild, user, tid, "dup-r", reason="oops", reverse_rewards=True)
    assert r2.replayed and (r2.journal_id, r2.xp_applied, r2.gold_applied) == (r1.journal_id, -10, -5)
    m = await member(env, guild, user)
    assert (m["xp"], m["gold"]) == (57, 13)
    await assert_books_balance(env, guild)


# --- grants ------------------------------------------------------------------------------------------------------


async def test_max_earners_holds_under_concurrent_grants(env: Env) -> None:
    guild = 910000000000000007
    tid = await template(env, guild, "Scarce", max_earners=3, xp_reward=5)
    users = U[10:20]

    async def attempt(user: int) -> GrantResult | GrantRejected:
        try:
            return await do_grant(env, guild, user, tid, f"scarce-{user}")
        except GrantRejected as exc:
            return exc

    outcomes = await asyncio.gather(*(attempt(u) for u in users))
    assert sum(isinstance(o, GrantResult) for o in outcomes) == 3
    assert sorted(o.reason for o in outcomes if isinstance(o, GrantRejected)) == ["max_earners"] * 7
    assert (await one(env, "SELECT earned_count FROM achievement_templates WHERE id = $1", tid))["earned_count"] == 3
    earned = await fetch(env, "SELECT source, granted_by FROM member_achievements WHERE template_id = $1", tid)
    assert earned == [{"source": "grant", "granted_by": ADMIN.actor_id}] * 3
    assert len(await fetch(env, "SELECT 1 FROM reward_journal WHERE guild_id = $1", guild)) == 3
    # The seven refused members were never even created: a refused grant writes nothing.
    assert len(await fetch(env, "SELECT 1 FROM members WHERE guild_id = $1", guild)) == 3
    await assert_books_balance(env, guild)


async def test_grant_pays_rewards_ignores_series_order_and_is_audited(env: Env) -> None:
    guild, user = 910000000000000008, U[20]
    series = await one(env, "INSERT INTO achievement_series (guild_id, name) VALUES ($1, 'Ladder') RETURNING id", guild)
    await template(env, guild, "Tier 1", series_id=series["id"], series_order=1)
    tier2 = await template(
        env,
        guild,
        "Tier 2",
        series_id=series["id"],
        series_order=2,
        xp_reward=600,
        gold_reward=20,
        announce_channel_id=4242,
    )
    result = await do_grant(env, guild, user, tier2, "tier2", reason="helped out", channel_id=77)
    # 600 XP with base 100 / factor 1.25 is level 9 (596): 8 level-ups × 50 gold on top of the template's 20.
    assert (result.xp_applied, result.gold_applied, result.xp, result.level, result.gold) == (600, 20, 600, 9, 420)
    [earned] = result.effects.achievements
    assert (earned.template.template_id, earned.granted_by, earned.channel_id) == (tier2, ADMIN.actor_id, 4242)
    assert [u.level for u in result.effects.level_ups] == [9]
    journal = await one(env, "SELECT * FROM reward_journal WHERE idempotency_key = 'grant:tier2'")
    assert (journal["event_type"], journal["xp_delta"], journal["actor_id"]) == ("achievement", 600, ADMIN.actor_id)
    ledger = await one(env, "SELECT * FROM gold_ledger WHERE idempotency_key = 'grant:tier2'")
    assert (ledger["reason"], ledger["delta"], ledger["journal_id"]) == ("achievement", 20, journal["id"])
    badge = await one(env, "SELECT * FROM member_achievements WHERE guild_id = $1 AND user_id = $2", guild, user)
    assert (badge["template_id"], badge["source"], badge["granted_by"], badge["journal_id"]) == (
        tier2,
        "grant",
        ADMIN.actor_id,
        journal["id"],
    )
    audit = await one(env, "SELECT * FROM audit_log WHERE guild_id = $1 AND action = 'achievement.grant'", guild)
    assert (audit["target_type"], audit["target_id"], audit["reason"]) == (
        "member_achievement",
        f"{user}:{tier2}",
        "helped out",
    )
    await assert_books_balance(env, guild)


async def test_grant_rejections_write_nothing(env: Env) -> None:
    guild, user, fresh = 910000000000000009, U[21], U[22]
    tid = await template(env, guild, "Shiny", xp_reward=100, gold_reward=10)
    solo = await template(env, guild, "Solo", max_earners=1)
    inactive = await template(env, guild, "Retired", active=False, xp_reward=100)
    other_guild = await template(env, 910000000000000099, "Elsewhere")
    await do_grant(env, guild, user, tid, "shiny-1")
    await do_grant(env, guild, user, solo, "solo")
    before = await counts(env, guild)
    cases = [
        (user, tid, "already_earned"),
        (user, solo, "already_earned"),  # full too, but the member's own badge is the reason that matters
        (fresh, solo, "max_earners"),
        (fresh, inactive, "inactive"),
        (fresh, 987654321, "unknown"),
        (fresh, other_guild, "unknown"),
    ]
    for i, (who, template_id, reason) in enumerate(cases):
        with pytest.raises(GrantRejected) as info:
            await do_grant(env, guild, who, template_id, f"rej-{i}")
        assert info.value.reason == reason
    assert await counts(env, guild) == before
    assert await fetch(env, "SELECT 1 FROM members WHERE guild_id = $1 AND user_id = $2", guild, fresh) == []


async def test_award_earns_automatic_achievements_in_the_same_transaction(env: Env) -> None:
    guild, user = 910000000000000010, U[23]
    tid = await template(
        env,
        guild,
        "Big spender",
        trigger_type="xp_milestone",
        trigger_config='{"value": 1000}',
        xp_reward=10,
        gold_reward=3,
    )
    result = await give(env, guild, user, xp=1000, rid="auto-1")
    assert [e.template.template_id for e in result.effects.achievements] == [tid]
    row = await one(env, "SELECT xp_delta FROM reward_journal WHERE idempotency_key = $1", f"award:auto-1#ach:{tid}")
    assert row["xp_delta"] == 10
    assert result.xp == 1010
    await assert_books_balance(env, guild)


# --- revokes -----------------------------------------------------------------------------------------------------


async def test_revoke_reverses_rewards_clamped_and_frees_the_slot(env: Env) -> None:
    guild, user = 910000000000000011, U[24]
    tid = await template(env, guild, "Medal", xp_reward=600, gold_reward=20, max_earners=1)
    await do_grant(env, guild, user, tid, "medal")
    await give(env, guild, user, gold=-415, rid="spend")  # 20 + 400 level gold − 415 → 5 left
    result = await do_revoke(env, guild, user, tid, "rv-1", reason="cheated", reverse_rewards=True)
    assert (result.xp_applied, result.gold_applied, result.xp, result.gold, result.level) == (-600, -5, 0, 0, 1)
    assert result.effects.level_ups == [] and result.effects.role_syncs == {(guild, user): 1}
    journal = await one(env, "SELECT * FROM reward_journal WHERE idempotency_key = 'revoke:rv-1'")
    assert (journal["event_type"], journal["xp_delta"], journal["actor_id"]) == ("revoke", -600, ADMIN.actor_id)
    assert details(journal)["template_id"] == tid and details(journal)["gold"] == -5
    ledger = await one(env, "SELECT * FROM gold_ledger WHERE idempotency_key = 'revoke:rv-1'")
    assert (ledger["reason"], ledger["delta"], ledger["balance_after"]) == ("revoke", -5, 0)
    lvl = await one(env, "SELECT details FROM reward_journal WHERE idempotency_key = 'revoke:rv-1#lvl'")
    assert details(lvl) == {"from": 9, "to": 1, "bonus": 0}
    assert await fetch(env, "SELECT 1 FROM member_achievements WHERE template_id = $1", tid) == []
    assert (await one(env, "SELECT earned_count FROM achievement_templates WHERE id = $1", tid))["earned_count"] == 0
    audit = await one(env, "SELECT * FROM audit_log WHERE guild_id = $1 AND action = 'achievement.revoke'", guild)
    assert (audit["target_id"], audit["reason"]) == (f"{user}:{tid}", "cheated")
    await assert_books_balance(env, guild)

    # The freed slot can be granted again; climbing back to the old peak pays no level gold (§10.2).
    again = await do_grant(env, guild, user, tid, "medal-2")
    assert (again.level, again.gold) == (9, 20)
    before = await counts(env, guild)
    # Without reversal: the badge goes, balances stay; the revoke is still journaled (0 XP) for idempotency.
    kept = await do_revoke(env, guild, user, tid, "rv-2", reason="policy")
    assert (kept.xp_applied, kept.gold_applied, kept.xp, kept.gold) == (0, 0, 600, 20)
    after = await counts(env, guild)
    assert after["reward_journal"] == before["reward_journal"] + 1 and after["gold_ledger"] == before["gold_ledger"]
    assert after["member_achievements"] == before["member_achievements"] - 1
    # Not earned any more: refused, nothing written.
    with pytest.raises(RevokeRejected) as info:
        await do_revoke(env, guild, user, tid, "rv-3", reason="again", reverse_rewards=True)
    assert info.value.reason == "not_earned"
    assert await counts(env, guild) == after
    await assert_books_balance(env, guild)


async def test_books_balance_after_a_mix_of_operations(env: Env) -> None:
    """§27 item 3 across every writer of this module and the level-up gold they trigger."""
    guild, a, b = 910000000000000014, U[34], U[35]
    milestone = await template(
        env, guild, "Milestone", trigger_type="xp_milestone", trigger_config='{"value": 300}', xp_reward=25,
        gold_reward=15,
    )  # fmt: skip
    prize = await template(env, guild, "Prize", xp_reward=400, gold_reward=60)
    await give(env, guild, a, xp=350, gold=10, rid="mix-1")  # earns Milestone automatically, several level-ups
    await give(env, guild, b, xp=-50, gold=-50, rid="mix-2")  # new member, fully clamped
    await do_grant(env, guild, b, prize, "mix-3")
    await do_grant(env, guild, a, prize, "mix-4")
    assert (await env.economy.buy_coffee(guild_id=guild, user_id=a, interaction_id=9001)).ok
    await give(env, guild, a, xp=-10_000, gold=-7, rid="mix-5")
    await do_revoke(env, guild, a, prize, "mix-6", reason="r", reverse_rewards=True)
    await do_revoke(env, guild, a, milestone, "mix-7", reason="r", reverse_rewards=True)
    await give(env, guild, a, xp=800, rid="mix-8")  # back above the old peak: Milestone again, gold only above it
    # b: the prize's 400 XP is level 7 (6 level-ups × 50) + 60 gold; the grant's XP also crossed Milestone's 300, so
    # the evaluation after the grant earned it at once (+25 XP, +15 gold); minus one coffee.
    assert (await env.economy.buy_coffee(guild_id=guild, user_id=b, interaction_id=9002)).balance == 325
    auto = await one(
        env, "SELECT xp_delta FROM reward_journal WHERE idempotency_key = $1", f"grant:mix-3#ach:{milestone}"
    )
    assert auto["xp_delta"] == 25
    reasons = {r["reason"] for r in await fetch(env, "SELECT reason FROM gold_ledger WHERE guild_id = $1", guild)}
    assert reasons == {"manual_award", "level_up", "achievement", "purchase", "revoke"}
    earned = await fetch(env, "SELECT source FROM member_achievements WHERE guild_id = $1 AND user_id = $2", guild, a)
    assert earned == [{"source": "auto"}]
    await assert_books_balance(env, guild)


# --- purchases ---------------------------------------------------------------------------------------------------


async def test_buy_coffee_charges_once_or_writes_nothing(env: Env) -> None:
    guild, rich, poor, nobody = 910000000000000012, U[30], U[31], U[32]
    await settings(env, guild, {"economy.coffee_cost": 40})
    await give(env, guild, rich, gold=100, rid="rich")
    await give(env, guild, poor, gold=39, rid="poor")
    before = await counts(env, guild)

    refused = await env.economy.buy_coffee(guild_id=guild, user_id=poor, interaction_id=1)
    assert (refused.ok, refused.cost, refused.balance) == (False, 40, 39)
    missing = await env.economy.buy_coffee(guild_id=guild, user_id=nobody, interaction_id=2)
    assert (missing.ok, missing.balance) == (False, 0)
    assert await counts(env, guild) == before

    bought = await env.economy.buy_coffee(guild_id=guild, user_id=rich, interaction_id=3)
    assert (bought.ok, bought.cost, bought.balance, bought.replayed) == (True, 40, 60, False)
    replay = await env.economy.buy_coffee(guild_id=guild, user_id=rich, interaction_id=3)
    assert (replay.ok, replay.balance, replay.replayed) == (True, 60, True)
    # Concurrent deliveries of one interaction charge once; distinct ones stop when the gold runs out.
    same = await asyncio.gather(
        *(env.economy.buy_coffee(guild_id=guild, user_id=rich, interaction_id=4) for _ in range(5))
    )
    assert sum(not r.replayed for r in same) == 1 and {r.balance for r in same} == {20}
    distinct = await asyncio.gather(
        *(env.economy.buy_coffee(guild_id=guild, user_id=rich, interaction_id=10 + i) for i in range(3))
    )
    assert [r.ok for r in distinct] == [False] * 3 and {r.balance for r in distinct} == {20}
    purchases = await fetch(
        env,
        "SELECT delta, balance_after, idempotency_key FROM gold_ledger WHERE guild_id = $1 AND user_id = $2"
        " AND reason = 'purchase' ORDER BY id",
        guild,
        rich,
    )
    assert purchases == [
        {"delta": -40, "balance_after": 60, "idempotency_key": "buy:3"},
        {"delta": -40, "balance_after": 20, "idempotency_key": "buy:4"},
    ]
    assert (await member(env, guild, rich))["gold"] == 20
    await assert_books_balance(env, guild)


async def test_concurrent_purchases_never_overdraw(env: Env) -> None:
    guild, user = 910000000000000013, U[33]
    await give(env, guild, user, gold=100, rid="wallet")  # default price 50: exactly two coffees
    results = await asyncio.gather(
        *(env.economy.buy_coffee(guild_id=guild, user_id=user, interaction_id=100 + i) for i in range(6))
    )
    assert sum(r.ok for r in results) == 2
    assert sorted(r.balance for r in results if r.ok) == [0, 50]
    assert {r.balance for r in results if not r.ok} == {0}  # the balance as it is after the winners, not before
    assert (await member(env, guild, user))["gold"] == 0
    await assert_books_balance(env, guild)
