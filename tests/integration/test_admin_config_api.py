"""Admin routes of the reward configuration (SPEC §20, §9.1) over real HTTP: real app, PostgreSQL, simulator.

Each rule endpoint: happy path with its status codes, validation errors with field details, 404 for unknown
targets and rows, the audit row with before/after, and the NOTIFY reaching the cache, shown by the next message
paying the new rate. `rewards/explain` is compared with what the pipeline journals for a real message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from synapse_async.runtime import Runtime
from synapse_async.sandbox.world import CHANNEL_COMMUNITY_ID, CHANNEL_GENERAL_ID, ROLE_ADMIN_ID, SANDBOX_OWNER_ID
from tests.api_support import base, call, login
from tests.pipeline_support import GUILD, MEMBERS_30, PLAIN, pipeline_runtime, query, wait_key
from tests.support import simulator_of, wait_for

G = f"/api/admin/guilds/{GUILD}"
U = MEMBERS_30


@pytest.fixture(scope="module")
async def runtime(fresh_database: str) -> AsyncIterator[tuple[Runtime, int]]:
    """30 members, the cooldown off, and an announcement channel outside the category (no rule applies there)."""
    async with pipeline_runtime(
        fresh_database, 30, ADMIN_RATE_LIMIT_PER_MINUTE="10000", PUBLIC_RATE_LIMIT_PER_MINUTE="0"
    ) as rt:
        cache = rt.components.cache
        assert cache is not None
        plain = int(await simulator_of(rt).create_channel("plain", "announcement"))
        await wait_for(lambda: plain in cache.guild(GUILD).channels)
        yield rt, plain


def admin(rt: Runtime) -> dict[str, str]:
    assert rt.api is not None
    token = rt.api.codec.issue_service("config-tests", [GUILD], ttl=600, now=rt.api.now())
    return {"Authorization": f"Bearer {token}"}


async def api(rt: Runtime, method: str, path: str, **kw: Any) -> Any:
    return await call(method, base(rt) + G + path, headers=admin(rt), **kw)


async def audit(rt: Runtime, action: str, target_id: str) -> list[dict[str, Any]]:
    return await query(
        rt,
        "SELECT actor_id, via, before, after FROM audit_log WHERE guild_id = :g AND action = :a AND target_id = :t"
        " ORDER BY id",
        a=action,
        t=target_id,
    )


def fields(reply: Any) -> set[str]:
    assert reply.status == 400, reply.body
    assert reply.body["error"]["code"] == "validation_error"
    return {d["field"] for d in reply.body["error"]["details"]}


async def paid(rt: Runtime, user: int, channel: int) -> dict[str, Any]:
    message_id = int(await simulator_of(rt).message(user, channel, PLAIN))
    return await wait_key(rt, f"msg:{message_id}")


async def test_members_are_refused_and_unknown_guilds_are_404(runtime: tuple[Runtime, int]) -> None:
    rt, _ = runtime
    member = await login(rt, U[0])
    owner = await login(rt, SANDBOX_OWNER_ID)
    reads = ("/channels", "/channel-type-defaults", "/channel-overrides", "/role-multipliers", "/no-xp")
    for path in reads:
        refused = await call("GET", base(rt) + G + path, headers=member.bearer())
        assert refused.status == 403, path
        assert (await call("GET", base(rt) + G + path, headers=owner.bearer())).status == 200, path
        missing = await call("GET", base(rt) + "/api/admin/guilds/123" + path, headers=owner.bearer())
        assert missing.status == 404, path
    write = await call(
        "PUT", base(rt) + G + "/channel-type-defaults/text/message", headers=member.bearer(),
        json={"xp_multiplier": 2, "star_multiplier": 1},
    )  # fmt: skip
    assert write.status == 403
    assert (await call("DELETE", base(rt) + G + "/settings/cooldown.seconds", headers=member.bearer())).status == 403


async def test_channels_list_the_snapshot_with_category_names(runtime: tuple[Runtime, int]) -> None:
    rt, plain = runtime
    reply = await api(rt, "GET", "/channels")
    assert reply.status == 200
    by_id = {c["channel_id"]: c for c in reply.body["items"]}
    general = by_id[str(CHANNEL_GENERAL_ID)]
    assert (general["type"], general["parent_id"], general["category_name"], general["deleted"]) == (
        "text", str(CHANNEL_COMMUNITY_ID), "Community", False,
    )  # fmt: skip
    assert by_id[str(plain)]["category_name"] is None


async def test_type_default_put_delete_audit_and_the_next_message_pays_it(runtime: tuple[Runtime, int]) -> None:
    rt, plain = runtime
    cache = rt.components.cache
    assert cache is not None
    assert (await paid(rt, U[1], plain))["xp_delta"] == 15

    created = await api(
        rt, "PUT", "/channel-type-defaults/announcement/message", json={"xp_multiplier": 2, "star_multiplier": 3}
    )
    assert created.status == 201, created.body
    assert (created.body["xp_multiplier"], created.body["star_multiplier"]) == (2.0, 3.0)
    await wait_for(lambda: ("announcement", "message") in cache.guild(GUILD).type_defaults)
    row = await paid(rt, U[1], plain)
    assert (row["xp_delta"], row["star_delta"]) == (30, 3)
    assert row["details"]["channel_multiplier"]["rule"] == "type_default"

    replaced = await api(
        rt, "PUT", "/channel-type-defaults/announcement/message", json={"xp_multiplier": 1.5, "star_multiplier": 1}
    )
    assert replaced.status == 200 and replaced.body["xp_multiplier"] == 1.5
    listed = await api(rt, "GET", "/channel-type-defaults")
    assert [(i["channel_type"], i["event_type"], i["xp_multiplier"]) for i in listed.body["items"]] == [
        ("announcement", "message", 1.5)
    ]
    first, second = await audit(rt, "channel_default.upsert", "announcement/message")
    assert first["before"] is None and first["after"]["xp_multiplier"] == 2.0
    assert second["before"]["xp_multiplier"] == 2.0 and second["after"]["xp_multiplier"] == 1.5
    assert second["via"] == "api" and second["actor_id"].startswith("svc")

    assert (await api(rt, "DELETE", "/channel-type-defaults/announcement/message")).status == 204
    assert (await api(rt, "DELETE", "/channel-type-defaults/announcement/message")).status == 404
    (deleted,) = await audit(rt, "channel_default.delete", "announcement/message")
    assert deleted["before"]["xp_multiplier"] == 1.5 and deleted["after"] is None
    await wait_for(lambda: ("announcement", "message") not in cache.guild(GUILD).type_defaults)
    assert (await paid(rt, U[1], plain))["xp_delta"] == 15


async def test_rule_bodies_and_paths_are_validated_with_field_details(runtime: tuple[Runtime, int]) -> None:
    rt, plain = runtime
    bad = await api(
        rt, "PUT", "/channel-type-defaults/category/bogus", json={"xp_multiplier": 11, "star_multiplier": True}
    )
    assert fields(bad) == {"channel_type", "event_type", "xp_multiplier", "star_multiplier"}
    missing = await api(rt, "PUT", f"/channel-overrides/{plain}/*", json={"xp_multiplier": 1, "extra": 1})
    assert fields(missing) == {"star_multiplier", "extra"}
    long_reason = await api(rt, "PUT", f"/no-xp/channel/{plain}", json={"reason": "x" * 201})
    assert fields(long_reason) == {"reason"}
    assert fields(await api(rt, "PUT", "/no-xp/user/1", json={})) == {"target_type"}
    assert fields(await api(rt, "GET", "/rewards/explain", params={"event_type": "vote"})) == {
        "channel_id",
        "event_type",
    }
    assert await query(rt, "SELECT 1 FROM channel_overrides WHERE guild_id = :g") == []


async def test_overrides_need_a_guild_channel_and_explain_agrees_with_the_pipeline(
    runtime: tuple[Runtime, int],
) -> None:
    rt, plain = runtime
    cache = rt.components.cache
    assert cache is not None
    unknown = await api(rt, "PUT", "/channel-overrides/4242/message", json={"xp_multiplier": 2, "star_multiplier": 1})
    assert unknown.status == 404

    put = await api(
        rt, "PUT", f"/channel-overrides/{CHANNEL_COMMUNITY_ID}/*",
        json={"xp_multiplier": 0.5, "star_multiplier": 2, "reason": "the category pays half"},
    )  # fmt: skip
    assert put.status == 201 and put.body["channel_exists"] is True and put.body["reason"] == "the category pays half"
    await wait_for(lambda: (CHANNEL_COMMUNITY_ID, "*") in cache.guild(GUILD).overrides)
    listed = await api(rt, "GET", "/channel-overrides", params={"channel_id": str(CHANNEL_COMMUNITY_ID)})
    assert [(i["channel_id"], i["event_type"]) for i in listed.body["items"]] == [(str(CHANNEL_COMMUNITY_ID), "*")]
    assert (await api(rt, "GET", "/channel-overrides", params={"channel_id": str(plain)})).body["items"] == []

    explained = await api(
        rt,
        "GET",
        "/rewards/explain",
        params={"channel_id": str(CHANNEL_GENERAL_ID), "event_type": "message", "user_id": str(U[2])},
    )
    assert explained.status == 200, explained.body
    body = explained.body
    assert body["channel_rule"] == "override:category" and body["category_id"] == str(CHANNEL_COMMUNITY_ID)
    assert [s["matched"] for s in body["steps"]] == [False, False, True, False, False]
    row = await paid(rt, U[2], CHANNEL_GENERAL_ID)
    assert row["details"]["channel_multiplier"] == body["channel_multiplier"]
    assert row["details"]["role_multiplier"] == body["role_multiplier"]
    assert row["xp_delta"] == 7 and body["final_multiplier"] == {"xp": 0.5, "stars": 2.0}  # floor(15 × 0.5)

    (audited,) = await audit(rt, "override.upsert", f"{CHANNEL_COMMUNITY_ID}/*")
    assert audited["before"] is None and audited["after"]["reason"] == "the category pays half"
    assert (await api(rt, "DELETE", f"/channel-overrides/{CHANNEL_COMMUNITY_ID}/*")).status == 204
    await wait_for(lambda: (CHANNEL_COMMUNITY_ID, "*") not in cache.guild(GUILD).overrides)
    unknown_channel = await api(rt, "GET", "/rewards/explain", params={"channel_id": "4242", "event_type": "message"})
    assert unknown_channel.status == 404


async def test_role_multipliers_apply_to_holders_and_explain_shows_the_factors(runtime: tuple[Runtime, int]) -> None:
    rt, plain = runtime
    cache = rt.components.cache
    assert cache is not None
    # The sandbox's Admin role, held by the owner only.
    booster, holder = ROLE_ADMIN_ID, SANDBOX_OWNER_ID
    assert (
        await api(rt, "PUT", "/role-multipliers/4242", json={"xp_multiplier": 2, "star_multiplier": 1})
    ).status == 404
    put = await api(rt, "PUT", f"/role-multipliers/{booster}", json={"xp_multiplier": 2, "star_multiplier": 4})
    assert put.status == 201, put.body
    await wait_for(lambda: booster in cache.guild(GUILD).role_multipliers)
    listed = await api(rt, "GET", "/role-multipliers")
    assert [(i["role_id"], i["xp_multiplier"], i["role_exists"]) for i in listed.body["items"]] == [
        (str(booster), 2.0, True)
    ]

    explained = await api(
        rt,
        "GET",
        "/rewards/explain",
        params={"channel_id": str(plain), "event_type": "message", "user_id": str(holder)},
    )
    assert explained.status == 200, explained.body
    assert explained.body["role_factors"] == [{"role_id": str(booster), "xp": 2.0, "stars": 4.0}]
    row = await paid(rt, holder, plain)
    assert (row["xp_delta"], row["star_delta"]) == (30, 4)
    assert row["details"]["role_multiplier"] == explained.body["role_multiplier"]
    (audited,) = await audit(rt, "role_multiplier.upsert", str(booster))
    assert audited["before"] is None and audited["after"] == {
        "role_id": str(booster),
        "xp_multiplier": 2.0,
        "star_multiplier": 4.0,
    }

    assert (await api(rt, "DELETE", f"/role-multipliers/{booster}")).status == 204
    assert (await api(rt, "DELETE", f"/role-multipliers/{booster}")).status == 404
    await wait_for(lambda: booster not in cache.guild(GUILD).role_multipliers)


async def test_a_role_created_after_start_up_can_be_configured_at_once(runtime: tuple[Runtime, int]) -> None:
    """GUILD_ROLE_CREATE/UPDATE/DELETE reach `guild_roles` themselves: no 404 until the next full guild sync."""
    rt, _ = runtime
    sim = simulator_of(rt)
    booster = int(await sim.create_role("Booster"))

    async def stored_as(name: str, *, deleted: bool = False) -> bool:
        rows = await query(
            rt, "SELECT name, deleted_at FROM guild_roles WHERE guild_id = :g AND role_id = :r", r=booster
        )
        return bool(rows) and rows[0]["name"] == name and (rows[0]["deleted_at"] is not None) == deleted

    await wait_for(lambda: stored_as("Booster"))
    put = await api(rt, "PUT", f"/role-multipliers/{booster}", json={"xp_multiplier": 1.5, "star_multiplier": 1})
    assert put.status == 201, put.body

    await sim.update_role(booster, name="Server Booster")
    await wait_for(lambda: stored_as("Server Booster"))

    await sim.delete_role(booster)
    await wait_for(lambda: stored_as("Server Booster", deleted=True))
    listed = await api(rt, "GET", "/role-multipliers")
    # The rule stays visible, flagged as pointing nowhere (SPEC §6.1).
    assert (str(booster), False) in [(i["role_id"], i["role_exists"]) for i in listed.body["items"]]
    assert (await api(rt, "DELETE", f"/role-multipliers/{booster}")).status == 204


async def test_no_xp_targets_pay_nothing_and_are_listed(runtime: tuple[Runtime, int]) -> None:
    rt, plain = runtime
    cache = rt.components.cache
    assert cache is not None
    assert (await api(rt, "PUT", "/no-xp/role/4242", json={})).status == 404
    put = await api(rt, "PUT", f"/no-xp/channel/{plain}", json={"reason": "bot spam"})
    assert put.status == 201 and put.body["target_exists"] is True
    again = await api(rt, "PUT", f"/no-xp/channel/{plain}", json={"reason": "bot commands"})
    assert again.status == 200 and again.body["created_at"] == put.body["created_at"]
    await wait_for(lambda: plain in cache.guild(GUILD).no_xp.channels)
    row = await paid(rt, U[4], plain)
    assert (row["xp_delta"], row["zero_reason"]) == (0, "no_xp")
    explained = await api(rt, "GET", "/rewards/explain", params={"channel_id": str(plain), "event_type": "message"})
    assert explained.body["no_xp"] == {"applies": True, "channel_ids": [str(plain)], "role_ids": []}
    listed = await api(rt, "GET", "/no-xp")
    assert [(i["target_type"], i["target_id"], i["reason"]) for i in listed.body["items"]] == [
        ("channel", str(plain), "bot commands")
    ]
    first, second = await audit(rt, "no_xp.upsert", f"channel/{plain}")
    assert first["before"] is None and second["before"]["reason"] == "bot spam"
    assert (await api(rt, "DELETE", f"/no-xp/channel/{plain}")).status == 204
    await wait_for(lambda: plain not in cache.guild(GUILD).no_xp.channels)
    assert (await paid(rt, U[4], plain))["xp_delta"] == 15


async def test_settings_reset_returns_the_default_audited_and_cached(runtime: tuple[Runtime, int]) -> None:
    rt, plain = runtime
    cache = rt.components.cache
    assert cache is not None
    patched = await api(rt, "PATCH", "/settings", json={"values": {"rewards.message.xp": 40}})
    assert patched.status == 200
    await wait_for(lambda: cache.settings(GUILD).int("rewards.message.xp") == 40)
    assert (await paid(rt, U[5], plain))["xp_delta"] == 40

    assert (await api(rt, "DELETE", "/settings/rewards.message.xp")).status == 204
    await wait_for(lambda: cache.settings(GUILD).int("rewards.message.xp") == 15)
    (audited,) = await audit(rt, "settings.reset", "rewards.message.xp")
    assert audited["before"]["value"] == 40 and audited["after"] == {
        "key": "rewards.message.xp",
        "value": 15,
        "is_default": True,
    }
    assert (await paid(rt, U[5], plain))["xp_delta"] == 15
    assert (await api(rt, "DELETE", "/settings/rewards.message.xp")).status == 204  # already the default
    assert (await api(rt, "DELETE", "/settings/no.such.key")).status == 404


async def test_a_reset_that_breaks_a_cross_field_rule_is_400_and_writes_nothing(runtime: tuple[Runtime, int]) -> None:
    rt, _ = runtime
    cache = rt.components.cache
    assert cache is not None
    values = {"quality.medium_chars": 600, "quality.long_chars": 700}
    assert (await api(rt, "PATCH", "/settings", json={"values": values})).status == 200
    refused = await api(rt, "DELETE", "/settings/quality.long_chars")  # the default 500 is not above 600
    assert "quality.long_chars" in fields(refused)
    stored = await query(rt, "SELECT value FROM settings WHERE guild_id = :g AND key = 'quality.long_chars'")
    assert stored == [{"value": 700}]
    assert await audit(rt, "settings.reset", "quality.long_chars") == []
    assert fields(await api(rt, "DELETE", "/settings/%C2%B2")) == {"key"}
    for key in ("quality.medium_chars", "quality.long_chars"):
        assert (await api(rt, "DELETE", f"/settings/{key}")).status == 204


async def test_explain_for_threads_and_members_who_are_not_in_the_guild(runtime: tuple[Runtime, int]) -> None:
    rt, plain = runtime
    thread = await api(
        rt, "GET", "/rewards/explain",
        params={"channel_id": "999999999999", "parent_id": str(CHANNEL_GENERAL_ID), "event_type": "thread_create"},
    )  # fmt: skip
    assert thread.status == 200, thread.body
    assert (thread.body["is_thread"], thread.body["base_channel_id"], thread.body["channel_type"]) == (
        True, str(CHANNEL_GENERAL_ID), "text",
    )  # fmt: skip
    assert thread.body["user_id"] is None and thread.body["role_ids"] == []
    stranger = await api(
        rt, "GET", "/rewards/explain", params={"channel_id": str(plain), "event_type": "message", "user_id": "4242"}
    )
    assert stranger.status == 404
