"""Admin achievement, grant/revoke and award routes (SPEC §20, §12, §10.3) over real HTTP: real app, PostgreSQL,
simulator. Every mutation is checked for its audit row (before/after) and for the NOTIFY reaching the cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from synapse_async.domain.vocabulary import TRIGGER_TYPES
from synapse_async.runtime import Runtime
from synapse_async.sandbox.world import SANDBOX_FIRST_MEMBER_ID, SANDBOX_GUILD_ID
from tests.api_support import Reply, base, call, login
from tests.support import make_runtime, simulator_of, wait_for

GUILD = SANDBOX_GUILD_ID
ADMIN = f"/api/admin/guilds/{GUILD}"
ALICE = SANDBOX_FIRST_MEMBER_ID
BOB = SANDBOX_FIRST_MEMBER_ID + 1
# Not sandbox members: rows of our own for the season standings.
STANDINGS = [777000000000000001 + i for i in range(5)]
SECRET = "catalog-routes-" + "s" * 40


@pytest.fixture(scope="module")
async def runtime(fresh_database: str) -> AsyncIterator[Runtime]:
    rt = make_runtime(
        fresh_database, JWT_SECRET=SECRET, PUBLIC_RATE_LIMIT_PER_MINUTE="0", ADMIN_RATE_LIMIT_PER_MINUTE="10000"
    )
    await rt.start()
    cache = rt.components.cache
    assert cache is not None
    await wait_for(lambda: GUILD in cache.known_guild_ids())
    await simulator_of(rt).message(ALICE, "general", "hello everyone, this is a first message")
    await wait_for(lambda: _has_member(rt, ALICE))
    yield rt
    await rt.shutdown()


async def _has_member(rt: Runtime, user_id: int) -> bool:
    return bool(await scalar(rt, "SELECT count(*) FROM members WHERE guild_id = :g AND user_id = :u", u=user_id))


def admin(rt: Runtime, guilds: list[int] | None = None) -> dict[str, str]:
    assert rt.api is not None
    token = rt.api.codec.issue_service("catalog-tests", guilds or [GUILD], ttl=600, now=rt.api.now())
    return {"Authorization": f"Bearer {token}"}


async def send(rt: Runtime, method: str, path: str, body: Any = None, **params: str) -> Reply:
    kw: dict[str, Any] = {"headers": admin(rt), "params": params}
    if body is not None:
        kw["json"] = body
    return await call(method, base(rt) + path, **kw)


async def scalar(rt: Runtime, sql: str, **params: Any) -> Any:
    assert rt.components.db is not None
    async with rt.components.db.engine.connect() as conn:
        return (await conn.execute(text(sql), {"g": GUILD, **params})).scalar()


async def audit(rt: Runtime, action: str, target_id: str) -> tuple[Any, Any]:
    assert rt.components.db is not None
    sql = text(
        "SELECT before, after FROM audit_log WHERE guild_id = :g AND action = :a AND target_id = :t "
        "ORDER BY id DESC LIMIT 1"
    )
    async with rt.components.db.engine.connect() as conn:
        row = (await conn.execute(sql, {"g": GUILD, "a": action, "t": target_id})).one()
    return row.before, row.after


def fields(reply: Reply) -> set[str]:
    assert reply.status == 400, reply.body
    assert reply.body["error"]["code"] == "validation_error"
    return {d["field"] for d in reply.body["error"]["details"]}


def cached_template_ids(rt: Runtime) -> set[int]:
    assert rt.components.cache is not None
    return {t.template_id for t in rt.components.cache.guild(GUILD).templates}


async def create(rt: Runtime, **body: Any) -> dict[str, Any]:
    reply = await send(rt, "POST", ADMIN + "/achievements", {"trigger_type": "manual", **body})
    assert reply.status == 201, reply.body
    return dict(reply.body)


async def test_non_admins_get_403_and_unknown_guilds_404(runtime: Runtime) -> None:
    member = await login(runtime, ALICE)
    for method, path, body in (
        ("GET", "/achievements", None),
        ("GET", "/achievements/trigger-types", None),
        ("POST", "/achievements", {"name": "x", "trigger_type": "manual"}),
        ("POST", "/achievements/1/grant", {"user_id": str(ALICE)}),
        ("POST", "/awards", {"user_id": str(ALICE), "xp": 5, "reason": "r"}),
    ):
        headers = member.cookie_headers()
        refused = await call(method, base(runtime) + ADMIN + path, headers=headers, json=body)
        assert refused.status == 403, (path, refused.body)
    other = 123456789012345678
    missing = await call(
        "GET", base(runtime) + f"/api/admin/guilds/{other}/achievements", headers=admin(runtime, [GUILD, other])
    )
    assert missing.status == 404


async def test_trigger_types_are_json_schemas(runtime: Runtime) -> None:
    reply = await send(runtime, "GET", ADMIN + "/achievements/trigger-types")
    assert reply.status == 200
    by_type = {item["trigger_type"]: item["config_schema"] for item in reply.body["items"]}
    assert list(by_type) == list(TRIGGER_TYPES)
    stat = by_type["stat_threshold"]
    assert stat["type"] == "object" and stat["additionalProperties"] is False
    assert stat["required"] == ["stat", "value"] and stat["properties"]["scope"]["default"] == "lifetime"
    assert by_type["level_reached"]["properties"]["value"]["minimum"] == 2


async def test_create_is_validated_audited_and_earned_by_the_next_event(runtime: Runtime) -> None:
    bad = await send(
        runtime, "POST", ADMIN + "/achievements",
        {"name": "Bad", "trigger_type": "stat_threshold", "trigger_config": {"stat": "bogus", "value": "5", "x": 1},
         "category_id": 999999, "series_order": 2},
    )  # fmt: skip
    assert fields(bad) == {
        "trigger_config.x",
        "trigger_config.stat",
        "trigger_config.value",
        "category_id",
        "series_order",
    }
    wrong_types = await send(runtime, "POST", ADMIN + "/achievements", {"name": 5, "trigger_type": "nope", "extra": 1})
    assert fields(wrong_types) == {"name", "trigger_type", "extra"}
    assert await scalar(runtime, "SELECT count(*) FROM achievement_templates WHERE guild_id = :g") == 0

    created = await create(
        runtime, name="First words", trigger_type="stat_threshold",
        trigger_config={"stat": "messages_sent", "value": 1}, xp_reward=10, description="Say something",
    )  # fmt: skip
    assert created["trigger_config"] == {"stat": "messages_sent", "value": 1, "scope": "lifetime"}
    assert created["earned_count"] == 0 and created["active"] is True and created["warnings"] == []
    _, after = await audit(runtime, "achievement.create", str(created["id"]))
    assert after["name"] == "First words" and after["xp_reward"] == 10

    await wait_for(lambda: created["id"] in cached_template_ids(runtime))  # the NOTIFY reloaded the cache
    await simulator_of(runtime).message(BOB, "general", "my first words here, hello all of you")

    async def earned() -> bool:
        sql = "SELECT count(*) FROM member_achievements WHERE guild_id = :g AND user_id = :u AND template_id = :t"
        return bool(await scalar(runtime, sql, u=BOB, t=created["id"]))

    await wait_for(earned)
    taken = await send(runtime, "POST", ADMIN + "/achievements", {"name": "First words", "trigger_type": "manual"})
    assert taken.status == 409 and taken.body["error"]["code"] == "conflict"

    listed = await send(runtime, "GET", ADMIN + "/achievements")
    assert [t["name"] for t in listed.body["items"]] == ["First words"]
    assert listed.body["items"][0]["earned_count"] == 1
    earners = await send(runtime, "GET", ADMIN + f"/achievements/{created['id']}/earners")
    assert earners.status == 200 and earners.body["total"] == 1
    assert earners.body["items"][0]["user_id"] == str(BOB) and earners.body["items"][0]["source"] == "auto"

    refused = await send(runtime, "DELETE", ADMIN + f"/achievements/{created['id']}")
    assert refused.status == 409  # earned: deactivate it instead


async def test_patch_merges_validates_and_deactivation_reaches_the_cache(runtime: Runtime) -> None:
    created = await create(runtime, name="Patchable", xp_reward=5)
    path = ADMIN + f"/achievements/{created['id']}"
    await wait_for(lambda: created["id"] in cached_template_ids(runtime))

    assert fields(await send(runtime, "PATCH", path, {"name": None, "xp_reward": -1})) == {"name", "xp_reward"}
    assert fields(await send(runtime, "PATCH", path, {"trigger_type": "xp_milestone"})) == {"trigger_config.value"}
    missing = await send(runtime, "PATCH", ADMIN + "/achievements/987654", {"xp_reward": 1})
    assert missing.status == 404

    patched = await send(runtime, "PATCH", path, {"description": "Now described", "active": False, "xp_reward": 7})
    assert patched.status == 200, patched.body
    assert patched.body["description"] == "Now described" and patched.body["xp_reward"] == 7
    assert patched.body["name"] == "Patchable" and patched.body["active"] is False
    assert any(w.startswith("inactive") for w in patched.body["warnings"])
    before, after = await audit(runtime, "achievement.update", str(created["id"]))
    assert before["active"] is True and before["xp_reward"] == 5 and after["active"] is False
    await wait_for(lambda: created["id"] not in cached_template_ids(runtime))

    cleared = await send(runtime, "PATCH", path, {"description": None})
    assert cleared.status == 200 and cleared.body["description"] is None
    got = await send(runtime, "GET", path)
    assert got.status == 200 and got.body["description"] is None and got.body["xp_reward"] == 7


async def test_grant_and_revoke_with_reverse_rewards(runtime: Runtime) -> None:
    template = await create(runtime, name="Helper", xp_reward=40, gold_reward=15)
    grant = ADMIN + f"/achievements/{template['id']}/grant"
    revoke = ADMIN + f"/achievements/{template['id']}/revoke"
    xp_before = await scalar(runtime, "SELECT xp FROM members WHERE guild_id = :g AND user_id = :u", u=ALICE)

    assert (await send(runtime, "POST", grant, {"user_id": "424242"})).status == 404  # not a member
    assert (await send(runtime, "POST", ADMIN + "/achievements/99999/grant", {"user_id": str(ALICE)})).status == 404
    assert fields(await send(runtime, "POST", grant, {"user_id": "abc", "reason": ""})) == {
        "user_id",
        "reason",
    }

    done = await send(runtime, "POST", grant, {"user_id": str(ALICE), "reason": "Helped a lot"})
    assert done.status == 200, done.body
    assert done.body["achievement_id"] == template["id"] and done.body["xp_applied"] == 40
    # The rewards' XP change re-evaluates automatic achievements (§12.4), which may pay more on top.
    assert done.body["gold_applied"] == 15 and done.body["xp"] >= xp_before + 40
    _, after = await audit(runtime, "achievement.grant", f"{ALICE}:{template['id']}")
    assert after["source"] == "grant" and after["granted_by"] == "svc:catalog-tests"
    again = await send(runtime, "POST", grant, {"user_id": str(ALICE)})
    assert again.status == 409 and "already" in again.body["error"]["message"]
    earners = await send(runtime, "GET", ADMIN + f"/achievements/{template['id']}/earners")
    assert earners.body["items"][0]["granted_by"] == "svc:catalog-tests"

    assert fields(await send(runtime, "POST", revoke, {"user_id": str(ALICE)})) == {"reason"}
    revoked = await send(runtime, "POST", revoke, {"user_id": str(ALICE), "reason": "Oops", "reverse_rewards": True})
    assert revoked.status == 200, revoked.body
    assert revoked.body["xp_applied"] == -40 and revoked.body["gold_applied"] == -15
    assert revoked.body["xp"] == done.body["xp"] - 40
    before, after = await audit(runtime, "achievement.revoke", f"{ALICE}:{template['id']}")
    assert before["source"] == "grant" and after["reverse_rewards"] is True and after["xp_applied"] == -40
    not_earned = await send(runtime, "POST", revoke, {"user_id": str(ALICE), "reason": "Again"})
    assert not_earned.status == 404

    # Unearned again, so it can be deleted now (204), and is gone (404).
    deleted = await send(runtime, "DELETE", ADMIN + f"/achievements/{template['id']}")
    assert deleted.status == 204 and deleted.body is None
    assert (await send(runtime, "GET", ADMIN + f"/achievements/{template['id']}")).status == 404
    before, _ = await audit(runtime, "achievement.delete", str(template["id"]))
    assert before["name"] == "Helper"


async def test_grant_refuses_inactive_and_full_templates(runtime: Runtime) -> None:
    inactive = await create(runtime, name="Dormant", active=False)
    refused = await send(runtime, "POST", ADMIN + f"/achievements/{inactive['id']}/grant", {"user_id": str(ALICE)})
    assert refused.status == 409 and "inactive" in refused.body["error"]["message"]
    single = await create(runtime, name="Only one", max_earners=1)
    first = await send(runtime, "POST", ADMIN + f"/achievements/{single['id']}/grant", {"user_id": str(ALICE)})
    assert first.status == 200, first.body
    full = await send(runtime, "POST", ADMIN + f"/achievements/{single['id']}/grant", {"user_id": str(BOB)})
    assert full.status == 409 and "max_earners" in full.body["error"]["message"]
    below = await send(runtime, "PATCH", ADMIN + f"/achievements/{single['id']}", {"max_earners": None})
    assert below.status == 200 and below.body["max_earners"] is None


async def test_awards_apply_clamp_and_are_audited(runtime: Runtime) -> None:
    gold = await scalar(runtime, "SELECT gold FROM members WHERE guild_id = :g AND user_id = :u", u=ALICE)
    given = await send(
        runtime, "POST", ADMIN + "/awards", {"user_id": str(ALICE), "xp": 25, "gold": 5, "reason": "Nice"}
    )
    assert given.status == 200, given.body
    assert given.body["xp_applied"] == 25 and given.body["gold_applied"] == 5 and given.body["gold"] == gold + 5
    before, after = await audit(runtime, "award.create", str(ALICE))
    assert before["gold"] == gold and after["gold"] == gold + 5 and after["journal_id"] == given.body["journal_id"]

    taken = await send(
        runtime, "POST", ADMIN + "/awards", {"user_id": str(ALICE), "gold": -1_000_000, "reason": "Reset gold"}
    )
    assert taken.status == 200 and taken.body["gold"] == 0 and taken.body["gold_applied"] == -(gold + 5)

    zero = await send(runtime, "POST", ADMIN + "/awards", {"user_id": str(ALICE), "reason": "Nothing"})
    assert fields(zero) == {"xp", "gold"}
    bad = await send(runtime, "POST", ADMIN + "/awards", {"user_id": str(ALICE), "xp": 1_000_001, "reason": "  "})
    assert fields(bad) == {"xp", "reason"}
    stranger = await send(runtime, "POST", ADMIN + "/awards", {"user_id": "424242", "xp": 1, "reason": "Who"})
    assert stranger.status == 404


def cached_active_season(rt: Runtime) -> int | None:
    assert rt.components.cache is not None
    season = rt.components.cache.guild(GUILD).active_season
    return None if season is None else season.season_id


async def test_seasons_start_replace_patch_and_end(runtime: Runtime) -> None:
    seasons = ADMIN + "/seasons"
    assert fields(await send(runtime, "POST", seasons, {"name": " ", "days": 0, "bogus": 1})) == {
        "name",
        "days",
        "bogus",
    }
    past = await send(runtime, "POST", seasons, {"name": "Past", "ends_at": "2020-01-01T00:00:00Z"})
    assert fields(past) == {"ends_at"}
    both = await send(runtime, "POST", seasons, {"name": "Both", "days": 3, "ends_at": "2999-01-01T00:00:00Z"})
    assert fields(both) == {"ends_at"}

    first = await send(runtime, "POST", seasons, {"name": "Spring", "days": 30})
    assert first.status == 201, first.body
    assert first.body["status"] == "active" and first.body["replaced"] is None
    spring = first.body["id"]
    _, after = await audit(runtime, "season.start", str(spring))
    assert after["name"] == "Spring" and after["status"] == "active"
    await wait_for(lambda: cached_active_season(runtime) == spring)

    clash = await send(runtime, "POST", seasons, {"name": "Summer", "days": 30})
    assert clash.status == 409 and "replace_active" in clash.body["error"]["message"]
    taken = await send(runtime, "POST", seasons, {"name": "Spring", "replace_active": True})
    assert taken.status == 409

    second = await send(
        runtime, "POST", seasons, {"name": "Summer", "ends_at": "2999-06-01T00:00:00Z", "replace_active": True}
    )
    assert second.status == 201, second.body
    summer = second.body["id"]
    assert second.body["replaced"]["id"] == spring and second.body["replaced"]["status"] == "ended"
    assert second.body["ends_at"] == "2999-06-01T00:00:00Z"
    await wait_for(lambda: cached_active_season(runtime) == summer)

    listed = await send(runtime, "GET", seasons)
    mine = [s for s in listed.body["items"] if s["name"] in ("Summer", "Spring")]  # other tests start seasons too
    assert [s["name"] for s in mine] == ["Summer", "Spring"]
    assert [s["status"] for s in mine] == ["active", "ended"]

    assert (await send(runtime, "PATCH", seasons + f"/{spring}", {"ends_at": "2999-01-01T00:00:00Z"})).status == 409
    assert fields(await send(runtime, "PATCH", seasons + f"/{summer}", {"ends_at": "2020-01-01T00:00:00Z"})) == {
        "ends_at"
    }
    assert fields(await send(runtime, "PATCH", seasons + f"/{summer}", {"name": None})) == {"name"}
    assert (await send(runtime, "PATCH", seasons + "/99999", {"name": "Nope"})).status == 404
    assert (await send(runtime, "PATCH", seasons + f"/{summer}", {"name": "Spring"})).status == 409
    renamed = await send(
        runtime, "PATCH", seasons + f"/{summer}", {"name": "Hot summer", "ends_at": "2999-07-01T00:00:00+02:00"}
    )
    assert renamed.status == 200, renamed.body
    assert renamed.body["name"] == "Hot summer" and renamed.body["ends_at"] == "2999-06-30T22:00:00Z"
    before, after = await audit(runtime, "season.update", str(summer))
    assert before["name"] == "Summer" and after["name"] == "Hot summer"

    assert (await send(runtime, "POST", seasons + f"/{spring}/end")).status == 409  # not the active one
    assert (await send(runtime, "POST", seasons + "/99999/end")).status == 404
    # Final standings: season stars as the pipeline would have paid them, to members of our own.
    stars = {STANDINGS[0]: 5, STANDINGS[1]: 5, STANDINGS[2]: 3, STANDINGS[3]: 9, STANDINGS[4]: 0}
    for user, count in stars.items():
        left = "now()" if user == STANDINGS[3] else "NULL"
        await execute(
            runtime,
            f"INSERT INTO members (guild_id, user_id, display_name, left_at) VALUES (:g, :u, :n, {left})"
            " ON CONFLICT DO NOTHING",
            u=user,
            n=f"Standing {user % 10}",
        )
        await execute(
            runtime,
            "INSERT INTO season_stats (season_id, user_id, guild_id, stars) VALUES (:s, :u, :g, :n)",
            s=summer,
            u=user,
            n=count,
        )
    ended = await send(runtime, "POST", seasons + f"/{summer}/end")
    assert ended.status == 200, ended.body
    assert ended.body["season"]["status"] == "ended" and ended.body["season"]["ended_at"] is not None
    # §17.3 top 3 by season stars with §17.1 ranks: ties share a rank (listed by user id), the member who left (9)
    # and the member without stars are not ranked.
    assert [(t["rank"], t["user_id"], t["stars"]) for t in ended.body["top"]] == [
        (1, str(STANDINGS[0]), 5),
        (1, str(STANDINGS[1]), 5),
        (3, str(STANDINGS[2]), 3),
    ]
    before, after = await audit(runtime, "season.end", str(summer))
    assert before["status"] == "active" and after["status"] == "ended"
    await wait_for(lambda: cached_active_season(runtime) is None)
    assert (await send(runtime, "POST", seasons + f"/{summer}/end")).status == 409


async def execute(rt: Runtime, sql: str, **params: Any) -> None:
    assert rt.components.db is not None
    async with rt.components.db.engine.begin() as conn:
        await conn.execute(text(sql), {"g": GUILD, **params})


async def test_member_search_escapes_wildcards_sorts_and_pages(runtime: Runtime) -> None:
    await wait_for(lambda: _has_member(runtime, BOB))
    await execute(
        runtime, "UPDATE members SET display_name = '50% off_Sale' WHERE guild_id = :g AND user_id = :u", u=BOB
    )
    members = ADMIN + "/members"
    everyone = await send(runtime, "GET", members)
    assert everyone.status == 200 and everyone.body["total"] >= 2
    xps = [m["xp"] for m in everyone.body["items"]]
    assert xps == sorted(xps, reverse=True)

    for term in ("%", "_", "0% OFF_s"):  # literal characters, not LIKE wildcards; case-insensitive
        found = await send(runtime, "GET", members, q=term)
        assert [m["user_id"] for m in found.body["items"]] == [str(BOB)], term
    assert (await send(runtime, "GET", members, q="no such name")).body["total"] == 0
    by_id = await send(runtime, "GET", members, q=str(ALICE))
    assert [m["user_id"] for m in by_id.body["items"]] == [str(ALICE)]

    by_name = await send(runtime, "GET", members, sort="name")
    names = [m["display_name"].lower() for m in by_name.body["items"]]
    assert names == sorted(names)
    paged = await send(runtime, "GET", members, sort="name", page_size="1", page="2")
    assert paged.body["total"] == by_name.body["total"] and paged.body["items"] == by_name.body["items"][1:2]
    assert fields(await send(runtime, "GET", members, sort="rank", page_size="101")) == {"sort", "page_size"}


async def test_member_detail_journal_and_ledger(runtime: Runtime) -> None:
    member = STANDINGS[4] + 100  # a row of our own, so that earlier tests' awards cannot change what is seen here
    await execute(runtime, "INSERT INTO members (guild_id, user_id, display_name) VALUES (:g, :u, 'Ledger')", u=member)
    badge = await create(runtime, name="Ledger badge")
    season = await send(runtime, "POST", ADMIN + "/seasons", {"name": "Ledger season", "replace_active": True})
    assert season.status == 201, season.body
    await wait_for(lambda: cached_active_season(runtime) == season.body["id"])
    granted = await send(runtime, "POST", ADMIN + f"/achievements/{badge['id']}/grant", {"user_id": str(member)})
    assert granted.status == 200, granted.body
    award = await send(
        runtime, "POST", ADMIN + "/awards", {"user_id": str(member), "xp": 3, "gold": 2, "reason": "Ledger"}
    )
    assert award.status == 200, award.body
    ended = await send(runtime, "POST", ADMIN + f"/seasons/{season.body['id']}/end")
    assert ended.status == 200, ended.body
    await wait_for(lambda: cached_active_season(runtime) is None)

    detail = await send(runtime, "GET", ADMIN + f"/members/{member}")
    assert detail.status == 200, detail.body
    assert detail.body["member"]["user_id"] == str(member) and detail.body["member"]["gold"] == 2
    assert detail.body["preferences"] == {
        "announce_level_up": True,
        "announce_achievements": True,
        "announce_awards": True,
    }
    assert [(b["name"], b["source"]) for b in detail.body["achievements"]] == [("Ledger badge", "grant")]
    # §20 "season stats": the award made during the season counts there by its applied amounts (§11: XP and gold
    # earned), and nothing else happened in it.
    assert detail.body["seasons"] == [
        {
            "season_id": season.body["id"],
            "name": "Ledger season",
            "status": "ended",
            "stars": 0,
            "xp": 3,
            "gold_earned": 2,
            "messages_sent": 0,
            "reactions_given": 0,
            "reactions_received": 0,
            "threads_created": 0,
            "voice_minutes": 0,
        }
    ]

    journal = await send(runtime, "GET", ADMIN + f"/members/{member}/journal", page_size="1")
    assert journal.status == 200 and journal.body["total"] == 2  # the grant's and the award's rows
    newest = journal.body["items"][0]
    assert newest["id"] == award.body["journal_id"] and newest["event_type"] == "manual_award"
    assert newest["xp_delta"] == 3 and newest["details"]["reason"] == "Ledger"
    ledger = await send(runtime, "GET", ADMIN + f"/members/{member}/gold-ledger")
    assert ledger.status == 200 and [i["delta"] for i in ledger.body["items"]] == [2]
    assert ledger.body["items"][0]["balance_after"] == award.body["gold"]
    assert ledger.body["items"][0]["journal_id"] == award.body["journal_id"]

    for suffix in ("", "/journal", "/gold-ledger"):
        assert (await send(runtime, "GET", ADMIN + f"/members/424242{suffix}")).status == 404
    assert fields(await send(runtime, "GET", ADMIN + "/members/abc")) == {"user_id"}


async def test_categories_rarities_series_crud_and_deleting_nulls_references(runtime: Runtime) -> None:
    cache = runtime.components.cache
    assert cache is not None
    categories = ADMIN + "/achievement-categories"
    assert fields(await send(runtime, "POST", categories, {"name": "", "sort_order": "1"})) == {"name", "sort_order"}
    made = await send(runtime, "POST", categories, {"name": "Social", "icon": "💬"})
    assert made.status == 201, made.body
    category = made.body["id"]
    assert made.body == {"id": category, "name": "Social", "icon": "💬", "sort_order": 0}
    assert (await send(runtime, "POST", categories, {"name": "Social"})).status == 409
    _, after = await audit(runtime, "category.create", str(category))
    assert after["name"] == "Social"
    await wait_for(lambda: category in cache.guild(GUILD).categories)

    patched = await send(runtime, "PATCH", categories + f"/{category}", {"sort_order": 3, "icon": None})
    assert patched.status == 200 and patched.body["sort_order"] == 3 and patched.body["icon"] is None
    before, after = await audit(runtime, "category.update", str(category))
    assert before["icon"] == "💬" and after["icon"] is None
    assert fields(await send(runtime, "PATCH", categories + f"/{category}", {"name": None})) == {"name"}
    assert (await send(runtime, "PATCH", categories + "/999999", {"sort_order": 1})).status == 404

    rarities = ADMIN + "/achievement-rarities"
    seeded = await send(runtime, "GET", rarities)
    assert [r["name"] for r in seeded.body["items"]][:5] == ["Common", "Uncommon", "Rare", "Epic", "Legendary"]
    assert fields(await send(runtime, "POST", rarities, {"name": "Mythic", "color": "red"})) == {"color"}
    rarity = await send(runtime, "POST", rarities, {"name": "Mythic", "color": "#FF0000", "sort_order": 9})
    assert rarity.status == 201, rarity.body

    series = ADMIN + "/achievement-series"
    chain = await send(runtime, "POST", series, {"name": "Chatter", "description": "Talk more"})
    assert chain.status == 201 and chain.body["tiers"] == []
    chain_id = chain.body["id"]

    # Another guild's category is not this guild's (400), this guild's own rows are accepted.
    await execute(runtime, "INSERT INTO achievement_categories (guild_id, name) VALUES (4242, 'Elsewhere')")
    foreign = await scalar(runtime, "SELECT id FROM achievement_categories WHERE guild_id = 4242")
    refused = await send(
        runtime, "POST", ADMIN + "/achievements",
        {"name": "Linked", "trigger_type": "manual", "category_id": foreign, "series_id": chain_id},
    )  # fmt: skip
    assert fields(refused) == {"category_id", "series_order"}
    linked = await create(
        runtime, name="Linked", category_id=category, rarity_id=rarity.body["id"], series_id=chain_id, series_order=1
    )
    tier_clash = await send(
        runtime, "POST", ADMIN + "/achievements",
        {"name": "Linked 2", "trigger_type": "manual", "series_id": chain_id, "series_order": 1},
    )  # fmt: skip
    assert tier_clash.status == 409
    listed = await send(runtime, "GET", series)
    assert listed.body["items"][0]["tiers"] == [
        {"id": linked["id"], "name": "Linked", "series_order": 1, "active": True}
    ]

    for path, ref in ((categories, category), (rarities, rarity.body["id"]), (series, chain_id)):
        gone = await send(runtime, "DELETE", path + f"/{ref}")
        assert gone.status == 204, gone.body
        assert (await send(runtime, "DELETE", path + f"/{ref}")).status == 404
    template = (await send(runtime, "GET", ADMIN + f"/achievements/{linked['id']}")).body
    assert template["category_id"] is None and template["rarity_id"] is None
    assert template["series_id"] is None and template["series_order"] is None
    before, _ = await audit(runtime, "series.delete", str(chain_id))
    assert before["name"] == "Chatter"
    await wait_for(lambda: category not in cache.guild(GUILD).categories)

    # The cache's copy of the template loses the references too: the deletes cleared them in their own
    # transaction (the catalog tables' triggers), and each delete notifies the templates with it.
    def cached_refs() -> tuple[object, ...]:
        cached = next(t for t in cache.guild(GUILD).templates if t.template_id == linked["id"])
        return (cached.category_id, cached.rarity_id, cached.series_id, cached.series_order)

    await wait_for(lambda: cached_refs() == (None, None, None, None))
