"""Login, tokens, CSRF, revocation and the live admin check (SPEC §21, §27 item 7), over real HTTP.

One sandbox runtime serves the module: real PostgreSQL, the Discord simulator (whose OAuth2 stands in for
Discord's) and the real hikari client; the second process of the revocation test is a second runtime on the same
database.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from sqlalchemy import text

from synapse_async.cache.listener import ListenerState
from synapse_async.obs import clear_context, configure_logging, reset_logging
from synapse_async.runtime import Runtime
from synapse_async.sandbox import SANDBOX_FIRST_MEMBER_ID, SANDBOX_GUILD_ID, SANDBOX_OWNER_ID
from tests.api_support import authorize, base, call, login
from tests.support import make_runtime, running, wait_for

SECRET = secrets.token_urlsafe(48)
GUILD = SANDBOX_GUILD_ID
OWNER = SANDBOX_OWNER_ID
MOD = SANDBOX_FIRST_MEMBER_ID + 3
SETTINGS = f"/api/admin/guilds/{GUILD}/settings"
ADMINISTRATOR = 1 << 3


@pytest.fixture(scope="module")
async def runtime(fresh_database: str) -> AsyncIterator[Runtime]:
    async with running(
        fresh_database, JWT_SECRET=SECRET, PUBLIC_RATE_LIMIT_PER_MINUTE="0", HTTP_DB_WAIT_SECONDS="20"
    ) as rt:
        yield rt


def _patch(value: int) -> dict[str, Any]:
    return {"json": {"values": {"economy.coffee_cost": value}}}


# --------------------------------------------------------------------------------------------------- login


async def test_login_end_to_end_sets_the_cookies_and_never_puts_the_token_in_a_url(runtime: Runtime) -> None:
    stream = io.StringIO()
    configure_logging(level="DEBUG", fmt="json", stream=stream)
    try:
        session = await login(runtime, OWNER, next_path="/dashboard?tab=1")
        me = await call("GET", base(runtime) + "/api/auth/me", headers=session.cookie_headers(csrf=False))
    finally:
        clear_context()
        reset_logging()
    assert session.login.headers["Location"] == "/dashboard?tab=1"
    token_cookie, csrf_cookie = session.login.cookies["synapse_token"], session.login.cookies["synapse_csrf"]
    assert token_cookie["httponly"] is True and token_cookie["path"] == "/"
    assert token_cookie["max-age"] == "3600" and token_cookie["samesite"] == "Lax" and token_cookie["secure"] is True
    assert not csrf_cookie["httponly"] and csrf_cookie["path"] == "/"
    assert me.status == 200, me.body
    assert me.body["user_id"] == str(OWNER) and me.body["kind"] == "user"
    assert me.body["csrf_token"] == session.csrf and me.body["admin_guild_ids"] == [str(GUILD)]
    assert all(session.token not in url for url in session.urls)
    logged = stream.getvalue()
    assert "http_request" in logged  # the access log did run while the token travelled
    assert session.token not in logged and session.token.split(".")[2] not in logged
    assert session.csrf not in logged


async def test_state_is_single_use(runtime: Runtime) -> None:
    started = await authorize(runtime, OWNER)
    first = await call("GET", started.callback, headers=started.browser())
    again = await call("GET", started.callback, headers=started.browser())
    assert first.status == 303
    assert again.status == 400 and again.body["error"]["details"][0]["field"] == "state"


async def test_expired_state_is_refused(runtime: Runtime) -> None:
    started = await authorize(runtime, OWNER)
    db = runtime.components.require_db()
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE oauth_states SET expires_at = created_at + interval '1 microsecond'"))
    refused = await call("GET", started.callback, headers=started.browser())
    assert refused.status == 400 and refused.body["error"]["code"] == "validation_error"


async def test_the_state_is_bound_to_the_browser_that_started_the_login(runtime: Runtime) -> None:
    """Login CSRF (issue 21 item 5): an attacker's callback URL opened in a victim's browser logs nobody in."""
    started = await authorize(runtime, SANDBOX_FIRST_MEMBER_ID + 9)  # the attacker's own login, stopped early
    cookie = started.state_cookie
    login_reply = await call("GET", base(runtime) + "/api/auth/login")
    state_cookie = login_reply.cookies["synapse_oauth_state"]
    assert state_cookie["httponly"] is True and state_cookie["path"] == "/api/auth"
    assert state_cookie["samesite"] == "Lax" and state_cookie["max-age"] == "600"
    victim_without = await call("GET", started.callback)
    victim_other = await call("GET", started.callback, headers={"Cookie": f"synapse_oauth_state={state_cookie.value}"})
    for refused in (victim_without, victim_other):
        assert refused.status == 400 and "synapse_token" not in refused.cookies
        assert refused.body["error"]["details"][0]["field"] == "state"
    done = await call("GET", started.callback, headers={"Cookie": f"synapse_oauth_state={cookie}"})
    assert done.status == 303 and "synapse_token" in done.cookies  # refusals did not burn the attacker's state
    assert done.cookies["synapse_oauth_state"]["max-age"] == "0"


async def test_login_refuses_a_next_url_on_another_site(runtime: Runtime) -> None:
    for bad in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        reply = await call("GET", base(runtime) + "/api/auth/login", params={"next": bad})
        assert reply.status == 400, bad
        assert reply.body["error"]["details"][0]["field"] == "next"


# --------------------------------------------------------------------------------------------------- CSRF


async def test_cookie_mutations_need_the_csrf_header_bearer_ones_do_not(runtime: Runtime) -> None:
    session = await login(runtime, OWNER)
    url = base(runtime) + SETTINGS
    missing = await call("PATCH", url, headers=session.cookie_headers(csrf=False), **_patch(60))
    wrong = await call("PATCH", url, headers={**session.cookie_headers(), "X-CSRF-Token": "x" * 32}, **_patch(60))
    right = await call("PATCH", url, headers=session.cookie_headers(), **_patch(61))
    bearer = await call("PATCH", url, headers=session.bearer(), **_patch(62))
    read = await call("GET", url, headers=session.cookie_headers(csrf=False))
    assert missing.status == 403 and missing.body["error"]["code"] == "csrf_failed"
    assert wrong.status == 403 and wrong.body["error"]["code"] == "csrf_failed"
    assert right.status == 200 and bearer.status == 200 and read.status == 200
    values = {item["key"]: item["value"] for item in bearer.body["items"]}
    assert values["economy.coffee_cost"] == 62


# --------------------------------------------------------------------------------------------------- JWT attacks


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "synapse-async",
        "aud": "synapse-async-api",
        "sub": str(OWNER),
        "iat": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
        "kind": "user",
        "name": "owner",
        "candidates": [str(GUILD)],
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _none_token(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, None, algorithm="none")


ATTACKS = {
    "alg_none": lambda: _none_token(_claims()),
    "hs512": lambda: jwt.encode(_claims(), SECRET, algorithm="HS512"),
    "wrong_key": lambda: jwt.encode(_claims(), SECRET + "x", algorithm="HS256"),
    "wrong_iss": lambda: jwt.encode(_claims(iss="someone-else"), SECRET, algorithm="HS256"),
    "wrong_aud": lambda: jwt.encode(_claims(aud="another-api"), SECRET, algorithm="HS256"),
    "expired_beyond_leeway": lambda: jwt.encode(_claims(exp=int(time.time()) - 60), SECRET, algorithm="HS256"),
    "bad_kind": lambda: jwt.encode(_claims(kind="admin"), SECRET, algorithm="HS256"),
    "service_without_guilds": lambda: jwt.encode(
        _claims(kind="service", sub="svc:x", candidates=None), SECRET, algorithm="HS256"
    ),
    **{
        f"missing_{claim}": (lambda c=claim: jwt.encode(_claims(**{c: None}), SECRET, algorithm="HS256"))
        for claim in ("iss", "aud", "sub", "iat", "exp", "jti", "kind", "name")
    },
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_forged_or_broken_tokens_get_401(runtime: Runtime, attack: str) -> None:
    token = ATTACKS[attack]()
    reply = await call("GET", base(runtime) + "/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 401, (attack, reply.body)
    assert reply.body["error"]["code"] == "unauthenticated"


async def test_expiry_within_the_leeway_is_accepted(runtime: Runtime) -> None:
    token = jwt.encode(_claims(exp=int(time.time()) - 5), SECRET, algorithm="HS256")
    reply = await call("GET", base(runtime) + "/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 200, reply.body


async def test_malformed_authorization_headers_get_401(runtime: Runtime) -> None:
    for header in ("Basic abc", "Bearer", "Bearer not.a.jwt", "Bearer " + "a" * 5000):
        reply = await call("GET", base(runtime) + "/api/auth/me", headers={"Authorization": header})
        assert reply.status == 401, header


# --------------------------------------------------------------------------------------------------- logout


async def test_logout_revokes_the_token_in_this_and_another_process(runtime: Runtime, fresh_database: str) -> None:
    other = make_runtime(fresh_database, JWT_SECRET=SECRET, PUBLIC_RATE_LIMIT_PER_MINUTE="0")
    await other.start()
    try:
        session = await login(runtime, OWNER)
        me_other = base(other) + "/api/auth/me"
        assert (await call("GET", me_other, headers=session.bearer())).status == 200
        out = await call("POST", base(runtime) + "/api/auth/logout", headers=session.cookie_headers())
        assert out.status == 204
        assert out.cookies["synapse_token"]["max-age"] == "0" and out.cookies["synapse_csrf"]["max-age"] == "0"
        here = await call("GET", base(runtime) + "/api/auth/me", headers=session.bearer())
        assert here.status == 401

        async def refused_there() -> bool:
            return (await call("GET", me_other, headers=session.bearer())).status == 401

        await wait_for(refused_there)  # delivered by NOTIFY to the other process's cache
        other_cache = other.components.require_cache()
        assert other_cache.is_revoked(session.claims_jti())

        # While the other process's listener is not connected, it asks the database on every request.
        assert other.api is not None and other.components.listener is not None
        fresh = await login(runtime, OWNER)
        await call("POST", base(runtime) + "/api/auth/logout", headers=fresh.bearer())
        other.components.listener.state = ListenerState.RECONNECTING
        try:
            assert await other.api.is_revoked(fresh.claims_jti())
            assert not await other.api.is_revoked(str(uuid.uuid4()))
        finally:
            other.components.listener.state = ListenerState.CONNECTED
        db = runtime.components.require_db()
        async with db.engine.connect() as conn:
            actions = (await conn.execute(text("SELECT action FROM audit_log WHERE action LIKE 'auth.%'"))).scalars()
            assert {"auth.login", "auth.logout"} <= set(actions)
    finally:
        await other.shutdown()


# --------------------------------------------------------------------------------------------------- admin check


async def test_removing_the_admin_role_gives_403_on_the_next_mutation(runtime: Runtime) -> None:
    sim = runtime.simulator
    assert sim is not None and runtime.gateway is not None
    bot = runtime.gateway.bot  # type: ignore[attr-defined]
    role = await sim.create_role("Moderators", permissions=ADMINISTRATOR)
    await sim.update_member(MOD, roles=[role])
    await wait_for(lambda: (m := bot.cache.get_member(GUILD, MOD)) is not None and int(role) in m.role_ids)
    session = await login(runtime, MOD)
    me = await call("GET", base(runtime) + "/api/auth/me", headers=session.bearer())
    assert me.body["admin_guild_ids"] == [str(GUILD)]
    allowed = await call("PATCH", base(runtime) + SETTINGS, headers=session.bearer(), **_patch(70))
    assert allowed.status == 200, allowed.body

    await sim.update_member(MOD, roles=[])
    await wait_for(lambda: (m := bot.cache.get_member(GUILD, MOD)) is not None and int(role) not in m.role_ids)
    refused = await call("PATCH", base(runtime) + SETTINGS, headers=session.bearer(), **_patch(71))
    assert refused.status == 403 and refused.body["error"]["code"] == "forbidden"
    guilds = await call("GET", base(runtime) + "/api/admin/guilds", headers=session.bearer())
    assert guilds.status == 200 and guilds.body["items"] == []


async def test_a_member_who_is_not_admin_is_refused(runtime: Runtime) -> None:
    session = await login(runtime, SANDBOX_FIRST_MEMBER_ID + 5)
    reply = await call("GET", base(runtime) + SETTINGS, headers=session.bearer())
    assert reply.status == 403


# --------------------------------------------------------------------------------------------------- service tokens


async def test_service_tokens_reach_only_their_guilds(runtime: Runtime) -> None:
    assert runtime.api is not None
    codec = runtime.api.codec
    now = int(time.time())
    ours = codec.issue_service("ci", [GUILD], ttl=600, now=now)
    elsewhere = codec.issue_service("ci", [GUILD + 1], ttl=600, now=now)
    ok = await call("GET", base(runtime) + SETTINGS, headers={"Authorization": f"Bearer {ours}"})
    refused = await call("GET", base(runtime) + SETTINGS, headers={"Authorization": f"Bearer {elsewhere}"})
    listed = await call("GET", base(runtime) + "/api/admin/guilds", headers={"Authorization": f"Bearer {ours}"})
    assert ok.status == 200 and refused.status == 403
    assert [g["guild_id"] for g in listed.body["items"]] == [str(GUILD)]


async def test_guilds_owned_elsewhere_are_checked_over_rest_and_cached_for_get_only(runtime: Runtime) -> None:
    """The REST path of §21.3 (another process owns the guild): a fresh lookup for mutations, ≤ 5 s for GETs."""
    from synapse_async.auth.admins import GatewayAdmins

    sim = runtime.simulator
    assert sim is not None and runtime.gateway is not None
    bot = runtime.gateway.bot  # type: ignore[attr-defined]
    remote = GatewayAdmins(bot, runtime.components.require_cache(), owns=lambda _guild: False)
    user = SANDBOX_FIRST_MEMBER_ID + 7
    role = await sim.create_role("Remote admins", permissions=ADMINISTRATOR)
    await sim.update_member(user, roles=[role])
    assert await remote.is_admin(GUILD, OWNER, allow_cached=False)  # the owner
    assert await remote.is_admin(GUILD, user, allow_cached=False)  # the role's permission, read over REST
    assert not await remote.is_admin(GUILD, SANDBOX_FIRST_MEMBER_ID + 8, allow_cached=False)
    await sim.update_member(user, roles=[])
    assert await remote.is_admin(GUILD, user, allow_cached=True)  # a GET may reuse the answer (≤ 5 s)
    assert not await remote.is_admin(GUILD, user, allow_cached=False)  # a mutation never does
    assert not await remote.is_admin(GUILD, 999_999_999_999_999_999, allow_cached=False)  # not a member: 404


# ------------------------------------------------------------------------------------- Discord amplification


def _member_lookups(runtime: Runtime, user: int) -> int:
    """GET /guilds/{g}/members/{user} calls the simulator received: what the admin check cost Discord."""
    sim = runtime.simulator
    assert sim is not None
    route = "/guilds/{guild_id}/members/{user_id}"
    return sum(1 for c in sim.rest_calls if c.method == "GET" and c.route == route and c.path.endswith(f"/{user}"))


async def _outsider(runtime: Runtime, user: int) -> None:
    """A sandbox user who left the guild: no gateway member, so the admin check must ask Discord over REST."""
    sim = runtime.simulator
    assert sim is not None and runtime.gateway is not None
    bot = runtime.gateway.bot  # type: ignore[attr-defined]
    await sim.leave(user)
    await wait_for(lambda: bot.cache.get_member(GUILD, user) is None)


async def test_concurrent_refused_mutations_cost_one_discord_lookup(runtime: Runtime) -> None:
    """Issue 21 item 4: N concurrent mutations by a non-member share one REST lookup; the "no" is reused."""
    outsider = SANDBOX_FIRST_MEMBER_ID + 11
    await _outsider(runtime, outsider)
    session = await login(runtime, outsider)
    before = _member_lookups(runtime, outsider)
    burst = [call("PATCH", base(runtime) + SETTINGS, headers=session.bearer(), **_patch(80)) for _ in range(12)]
    replies = await asyncio.gather(*burst)
    assert [r.status for r in replies] == [403] * 12
    assert _member_lookups(runtime, outsider) - before == 1


async def test_a_refusal_is_cached_for_mutations_too_a_grant_is_not(runtime: Runtime) -> None:
    """The REST answers of §21.3: "no" answers every request for the cache period, "yes" only GETs."""
    from synapse_async.auth.admins import GatewayAdmins

    assert runtime.gateway is not None
    bot = runtime.gateway.bot  # type: ignore[attr-defined]
    remote = GatewayAdmins(bot, runtime.components.require_cache(), owns=lambda _guild: False, cache_seconds=600)
    outsider = SANDBOX_FIRST_MEMBER_ID + 12
    before = _member_lookups(runtime, outsider)
    for _ in range(5):
        assert not await remote.is_admin(GUILD, outsider, allow_cached=False)
    assert _member_lookups(runtime, outsider) - before == 1
    owner_before = _member_lookups(runtime, OWNER)
    for _ in range(3):
        assert await remote.is_admin(GUILD, OWNER, allow_cached=False)
    assert _member_lookups(runtime, OWNER) - owner_before == 3  # a mutation never reuses a "yes"


async def test_concurrent_lookups_share_one_rest_call_even_without_a_cache(runtime: Runtime) -> None:
    """Coalescing alone (cache period 0): whatever the answer, concurrent checks of one (guild, user) cost one call."""
    from synapse_async.auth.admins import GatewayAdmins

    assert runtime.gateway is not None
    bot = runtime.gateway.bot  # type: ignore[attr-defined]
    remote = GatewayAdmins(bot, runtime.components.require_cache(), owns=lambda _guild: False, cache_seconds=0)
    for user, expected in ((SANDBOX_FIRST_MEMBER_ID + 14, False), (OWNER, True)):
        before = _member_lookups(runtime, user)
        answers = await asyncio.gather(*(remote.is_admin(GUILD, user, allow_cached=False) for _ in range(10)))
        assert answers == [expected] * 10
        assert _member_lookups(runtime, user) - before == 1
    assert await remote.is_admin(GUILD, OWNER, allow_cached=False)  # not concurrent any more: asked again
    assert _member_lookups(runtime, OWNER) - before == 2


async def test_the_mutation_limit_applies_before_the_admin_check(runtime: Runtime) -> None:
    """A refused caller spends its own mutation quota: past the limit it gets 429 and Discord is not asked."""
    outsider = SANDBOX_FIRST_MEMBER_ID + 13
    await _outsider(runtime, outsider)
    session = await login(runtime, outsider)
    limit = runtime.config.admin_rate_limit_per_minute
    statuses = []
    for _ in range(limit + 2):
        reply = await call("PATCH", base(runtime) + SETTINGS, headers=session.bearer(), **_patch(81))
        statuses.append(reply.status)
    assert statuses == [403] * limit + [429, 429]
