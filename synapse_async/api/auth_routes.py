"""Discord login and the session endpoints (SPEC §21.1): login, callback, me, logout.

The OAuth `state` is a single-use row (≥ 32 random bytes, 10 minutes) consumed atomically by
`DELETE … RETURNING`, so a state works once even when two callbacks race. The state is also bound to the browser
that started the login by the HttpOnly `synapse_oauth_state` cookie: without it, an attacker could start a login,
stop at the callback URL and make a victim's browser open it, logging the victim into the attacker's account
(login CSRF). The callback refuses a state whose cookie is absent or different before consuming anything. The
token never travels in a URL: the callback answers 303 to the landing page with the HttpOnly `synapse_token`
cookie (Path=/, so the web console sees it too) and the script-readable `synapse_csrf` cookie. Neither the OAuth
code nor any token is ever logged.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import web
from pydantic import Field, field_validator
from sqlalchemy import text

from synapse_async.api.authn import CSRF_COOKIE, TOKEN_COOKIE
from synapse_async.api.contract import Access, Api, Call
from synapse_async.api.errors import ApiError, FieldProblem
from synapse_async.api.platform import ApiPlatform, OAuthClient
from synapse_async.api.schema import NoParams, ResponseModel, Snowflake, StrictModel, UtcTime
from synapse_async.auth.tokens import MAX_CANDIDATES
from synapse_async.db.notify import notify_config
from synapse_async.obs.logging import get_logger
from synapse_async.services.audit import record

log = get_logger("synapse_async.auth")

api = Api()
STATE_TTL: Final = timedelta(minutes=10)
STATE_COOKIE: Final = "synapse_oauth_state"
STATE_COOKIE_PATH: Final = "/api/auth"
DISCORD_TIMEOUT: Final = aiohttp.ClientTimeout(total=10)
_TAG: Final = "auth"


class LoginQuery(StrictModel):
    next: str | None = Field(
        None,
        max_length=512,
        pattern=r"^/(?:[^/\\\x00-\x1f\x7f][^\\\x00-\x1f\x7f]*)?$",
        description="Relative path to land on after login: one leading `/`, no `\\`, no control characters",
    )

    @field_validator("next")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if not value.startswith("/") or value.startswith("//") or "\\" in value or parts.scheme or parts.netloc:
            raise ValueError("must be a path on this site, starting with a single /")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise ValueError("must not contain control characters")
        return value


class CallbackQuery(StrictModel):
    code: str = Field(min_length=1, max_length=512)
    state: str = Field(min_length=1, max_length=64)


class Me(ResponseModel):
    user_id: str
    username: str
    avatar_url: str | None
    kind: str
    expires_at: UtcTime
    csrf_token: str | None
    admin_guild_ids: list[Snowflake]


_PUT_STATE = text("INSERT INTO oauth_states (state, next_url, expires_at) VALUES (:s, :n, :e)")
_TAKE_STATE = text("DELETE FROM oauth_states WHERE state = :s RETURNING next_url, expires_at")
_REVOKE = text(
    """
    INSERT INTO revoked_tokens (jti, subject, expires_at) VALUES (CAST(:jti AS uuid), :sub, :exp)
    ON CONFLICT (jti) DO NOTHING
    """
)


def _require_oauth(platform: ApiPlatform) -> OAuthClient:
    if platform.oauth is None:
        raise ApiError.unavailable("Discord login is not configured (DISCORD_CLIENT_ID/SECRET/REDIRECT_URI).")
    return platform.oauth


@api.route(
    "GET",
    "/api/auth/login",
    summary="Start the Discord login",
    tag=_TAG,
    access=Access.PUBLIC,
    query=LoginQuery,
    status=302,
    responses={302: "Redirect to Discord's authorize page"},
)
async def auth_login(call: Call[NoParams, LoginQuery, None]) -> web.StreamResponse:
    """Stores a single-use state (10 minutes) and redirects to Discord with the code-flow parameters."""
    oauth = _require_oauth(call.platform)
    state = secrets.token_urlsafe(32)
    async with call.platform.sessions() as sessions, sessions.begin() as session:
        expires = datetime.now(UTC) + STATE_TTL
        await session.execute(_PUT_STATE, {"s": state, "n": call.query.next, "e": expires})
    params = {
        "response_type": "code",
        "scope": "identify guilds",
        "client_id": oauth.client_id,
        "redirect_uri": oauth.redirect_uri,
        "state": state,
    }
    response = web.Response(status=302, headers={"Location": f"{oauth.authorize_url}?{urlencode(params)}"})
    # Binds the state to this browser (login CSRF, §21.1); Lax still sends it on Discord's top-level redirect back.
    response.set_cookie(
        STATE_COOKIE,
        state,
        path=STATE_COOKIE_PATH,
        max_age=int(STATE_TTL.total_seconds()),
        httponly=True,
        secure=call.platform.config.cookie_secure,
        samesite="Lax",
    )
    return response


def _bad_state() -> ApiError:
    return ApiError.validation([FieldProblem("state", "invalid_value", "unknown, already used or expired")])


def _require_browser_binding(request: web.Request, state: str) -> None:
    """400 unless this browser carries the state cookie set when it started this login (compared in constant time)."""
    bound = request.cookies.get(STATE_COOKIE, "")
    if not bound or not hmac.compare_digest(bound.encode(), state.encode()):
        raise ApiError.validation(
            [FieldProblem("state", "invalid_value", "this login was not started in this browser")]
        )


async def _discord_json(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    """One Discord call: its JSON, 400 for a Discord refusal (4xx), 503 when unreachable or failing (5xx)."""
    try:
        async with http.request(method, url, **kw) as resp:
            if 400 <= resp.status < 500:
                raise ApiError.validation([FieldProblem("code", "invalid_value", "Discord refused the login")])
            if resp.status >= 300:
                raise ApiError.unavailable("Discord is unavailable; try again shortly.")
            return await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        raise ApiError.unavailable("Discord is unreachable; try again shortly.") from None


async def _exchange(oauth: OAuthClient, code: str) -> tuple[dict[str, Any], list[int]]:
    """Code → access token → (users/@me, ids of users/@me/guilds)."""
    async with aiohttp.ClientSession(timeout=DISCORD_TIMEOUT) as http:
        form = {
            "client_id": oauth.client_id,
            "client_secret": oauth.client_secret,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": oauth.redirect_uri,
        }
        grant = await _discord_json(http, "POST", f"{oauth.api_url}/oauth2/token", data=form)
        access = grant.get("access_token") if isinstance(grant, dict) else None
        if not isinstance(access, str):
            raise ApiError.unavailable("Discord answered the token exchange unexpectedly.")
        auth = {"Authorization": f"Bearer {access}"}
        me = await _discord_json(http, "GET", f"{oauth.api_url}/users/@me", headers=auth)
        guilds = await _discord_json(http, "GET", f"{oauth.api_url}/users/@me/guilds", headers=auth)
    if not isinstance(me, dict) or not str(me.get("id", "")).isdigit() or not isinstance(guilds, list):
        raise ApiError.unavailable("Discord answered users/@me unexpectedly.")
    ids = [int(g["id"]) for g in guilds if isinstance(g, dict) and str(g.get("id", "")).isdigit()]
    return me, ids


def _landing(platform: ApiPlatform, next_url: str | None) -> tuple[str, str]:
    """(where to land, SameSite): None when the landing page is on another origin (it must then be Secure)."""
    target = next_url or platform.config.oauth_success_url
    return target, ("Lax" if target.startswith("/") else "None")


@api.route(
    "GET",
    "/api/auth/callback",
    summary="Finish the Discord login",
    tag=_TAG,
    access=Access.PUBLIC,
    query=CallbackQuery,
    status=303,
    responses={303: "Logged in: redirect to the landing page with the session cookies"},
)
async def auth_callback(call: Call[NoParams, CallbackQuery, None]) -> web.StreamResponse:
    """Consumes the state, exchanges the code with Discord, issues the JWT in cookies and audits `auth.login`."""
    platform = call.platform
    oauth = _require_oauth(platform)
    _require_browser_binding(call.request, call.query.state)
    async with platform.sessions() as sessions, sessions.begin() as session:
        row = (await session.execute(_TAKE_STATE, {"s": call.query.state})).first()
    if row is None or row.expires_at <= datetime.now(UTC):
        raise _bad_state()
    me, guild_ids = await _exchange(oauth, call.query.code)
    user_id = int(me["id"])
    name = str(me.get("global_name") or me.get("username") or user_id)[:100]
    candidates = [g for g in guild_ids if platform.serves(g)][:MAX_CANDIDATES]
    token, claims = platform.codec.issue_login(user_id, name, candidates, now=platform.now())
    actor = call.actor_as(str(user_id), "user")
    async with platform.sessions() as sessions, sessions.begin() as session:
        await record(
            session,
            actor,
            guild_id=None,
            action="auth.login",
            target_type="user",
            target_id=str(user_id),
            after={"user_id": str(user_id), "name": name, "candidates": len(candidates), "jti": claims.jti},
        )
    target, same_site = _landing(platform, row.next_url)
    response = web.Response(status=303, headers={"Location": target})
    secure = platform.config.cookie_secure or same_site == "None"
    ttl = platform.config.jwt_ttl_seconds
    response.set_cookie(TOKEN_COOKIE, token, path="/", max_age=ttl, httponly=True, secure=secure, samesite=same_site)
    assert claims.csrf is not None
    response.set_cookie(CSRF_COOKIE, claims.csrf, path="/", max_age=ttl, secure=secure, samesite=same_site)
    response.del_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH)
    log.info("login", user_id=user_id, candidates=len(candidates))
    return response


@api.route("GET", "/api/auth/me", summary="The current session", tag=_TAG, access=Access.AUTHENTICATED, response=Me)
async def auth_me(call: Call[NoParams, NoParams, None]) -> Me:
    """Who the token belongs to, when it expires, its CSRF token and the guilds it may administer (live-checked)."""
    principal = call.require_principal()
    claims = principal.claims
    platform = call.platform
    if claims.kind == "service":
        admin_ids = sorted(claims.guilds)
    else:
        admin_ids = await platform.admin_guilds(claims)
    avatar = None
    if claims.user_id is not None:
        avatar = f"{platform.config.discord_cdn_url}/embed/avatars/{(claims.user_id >> 22) % 6}.png"
    return Me(
        user_id=claims.sub,
        username=claims.name,
        avatar_url=avatar,
        kind=claims.kind,
        expires_at=datetime.fromtimestamp(claims.exp, UTC),
        csrf_token=claims.csrf,
        admin_guild_ids=admin_ids,
    )


@api.route(
    "POST", "/api/auth/logout", summary="Log out (revoke the token)", tag=_TAG, access=Access.AUTHENTICATED, status=204
)
async def auth_logout(call: Call[NoParams, NoParams, None]) -> web.StreamResponse:
    """Revokes the token's `jti` in every process (NOTIFY), clears the cookies and audits `auth.logout`."""
    principal = call.require_principal()
    claims = principal.claims
    platform = call.platform
    async with platform.sessions() as sessions, sessions.begin() as session:
        expires = datetime.fromtimestamp(claims.exp, UTC) + timedelta(seconds=60)
        await session.execute(_REVOKE, {"jti": claims.jti, "sub": claims.sub, "exp": expires})
        await notify_config(session, "revoked_tokens")
        await record(
            session,
            call.actor(),
            guild_id=None,
            action="auth.logout",
            target_type="token",
            target_id=claims.jti,
            before={"jti": claims.jti, "sub": claims.sub},
        )
    platform.revoked_locally(claims.jti)
    response = web.Response(status=204)
    response.del_cookie(TOKEN_COOKIE, path="/")
    response.del_cookie(CSRF_COOKIE, path="/")
    return response
