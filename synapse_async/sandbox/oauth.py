"""OAuth2 authorization-code flow of Discord, simulated for the admin API login (§21.1).

`/oauth2/authorize` approves at once and redirects back with a code, as the sandbox admin or as the user named by
`?as_user=<id>`, so tests and local use can log in as anyone without a browser. Codes are single-use and bound to
their redirect URI, tokens carry their scopes, and error bodies follow RFC 6749 as Discord's do, so the app's
error handling is exercised too.

Because the page approves anyone without a password, it answers only this machine: a loopback peer and a loopback
`Host` (no DNS-rebound page can drive it), and it redirects only to a registered redirect URI (the app registers
its callback; with none registered, only loopback URIs), so it can never hand a code to another site.
"""

from __future__ import annotations

import base64
import secrets
import time
import urllib.parse
from dataclasses import dataclass

from aiohttp import web

from synapse_async.sandbox.loopback import is_loopback_host, peer_is_loopback
from synapse_async.sandbox.recording import body_of
from synapse_async.sandbox.world import World

CODE_TTL_S = 600.0
TOKEN_TTL_S = 7 * 24 * 3600


@dataclass(slots=True)
class OAuthGrant:
    code: str
    user_id: int
    redirect_uri: str
    scopes: tuple[str, ...]
    expires_at: float
    used: bool = False


@dataclass(slots=True)
class OAuthToken:
    access_token: str
    refresh_token: str
    user_id: int
    scopes: tuple[str, ...]
    expires_at: float
    revoked: bool = False


class OAuthApi:
    """Authorize page, token endpoint and bearer-token lookup."""

    def __init__(self, world: World, *, client_id: int, client_secret: str, default_user_id: int) -> None:
        self.world = world
        self.client_id = client_id
        self.client_secret = client_secret
        self.default_user_id = default_user_id
        self.allowed_redirect_uris: set[str] | None = None
        """When set, only these redirect URIs are accepted (Discord's application setting); else loopback ones."""
        self.grants: dict[str, OAuthGrant] = {}
        self.tokens: dict[str, OAuthToken] = {}
        self._refresh: dict[str, OAuthToken] = {}

    def add_routes(self, app: web.Application, base: str) -> None:
        app.router.add_get("/oauth2/authorize", self.authorize)
        app.router.add_get(base + "/oauth2/authorize", self.authorize)
        app.router.add_post(base + "/oauth2/token", self.token)
        app.router.add_post(base + "/oauth2/token/revoke", self.revoke)

    # ------------------------------------------------------------------------------------------------ authorize

    def redirect_allowed(self, redirect_uri: str) -> bool:
        if self.allowed_redirect_uris is not None:
            return redirect_uri in self.allowed_redirect_uris
        parts = urllib.parse.urlsplit(redirect_uri)
        return parts.scheme in ("http", "https") and is_loopback_host(parts.netloc.rpartition("@")[2])

    async def authorize(self, request: web.Request) -> web.Response:
        query = request.query
        if not peer_is_loopback(request) or not is_loopback_host(request.headers.get("Host", "")):
            return web.Response(status=403, text="The simulated authorize page answers only this machine")
        if query.get("response_type", "code") != "code":
            return web.Response(status=400, text="unsupported response_type (the simulator serves the code flow)")
        if query.get("client_id") != str(self.client_id):
            return web.Response(status=400, text="Unknown application (invalid client_id)")
        redirect_uri = query.get("redirect_uri")
        if not redirect_uri:
            return web.Response(status=400, text="redirect_uri is required")
        if not self.redirect_allowed(redirect_uri):
            return web.Response(status=400, text="Invalid OAuth2 redirect_uri")
        try:
            user_id = int(query.get("as_user", self.default_user_id))
        except ValueError:
            return web.Response(status=400, text="as_user must be a user id")
        if user_id not in self.world.users:
            return web.Response(status=400, text=f"unknown user {user_id}")
        scopes = tuple(s for s in query.get("scope", "identify").replace("+", " ").split() if s)
        code = secrets.token_urlsafe(24)
        self.grants[code] = OAuthGrant(
            code=code,
            user_id=user_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            expires_at=time.monotonic() + CODE_TTL_S,
        )
        params = {"code": code}
        if "state" in query:
            params["state"] = query["state"]
        separator = "&" if urllib.parse.urlparse(redirect_uri).query else "?"
        return web.Response(status=302, headers={"Location": redirect_uri + separator + urllib.parse.urlencode(params)})

    # ------------------------------------------------------------------------------------------------ token

    def _client_ok(self, request: web.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("Authorization", "")
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header[6:]).decode()
            except ValueError:
                return False
            client_id, _, client_secret = decoded.partition(":")
        return client_id == str(self.client_id) and client_secret == self.client_secret

    def _issue(self, user_id: int, scopes: tuple[str, ...]) -> web.Response:
        token = OAuthToken(
            access_token=secrets.token_urlsafe(30),
            refresh_token=secrets.token_urlsafe(30),
            user_id=user_id,
            scopes=scopes,
            expires_at=time.time() + TOKEN_TTL_S,
        )
        self.tokens[token.access_token] = token
        self._refresh[token.refresh_token] = token
        return web.json_response(
            {
                "token_type": "Bearer",
                "access_token": token.access_token,
                "expires_in": TOKEN_TTL_S,
                "refresh_token": token.refresh_token,
                "scope": " ".join(scopes),
            }
        )

    async def token(self, request: web.Request) -> web.Response:
        body = body_of(request)
        form = dict(body.form)
        if isinstance(body.json, dict):
            form.update({k: str(v) for k, v in body.json.items()})
        if not self._client_ok(request, form):
            return web.json_response({"error": "invalid_client"}, status=401)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            grant = self.grants.get(form.get("code", ""))
            if grant is None or grant.used or time.monotonic() > grant.expires_at:
                return _invalid_grant('Invalid "code" in request.')
            if form.get("redirect_uri") != grant.redirect_uri:
                return _invalid_grant('Invalid "redirect_uri" in request.')
            grant.used = True
            return self._issue(grant.user_id, grant.scopes)
        if grant_type == "refresh_token":
            previous = self._refresh.pop(form.get("refresh_token", ""), None)
            if previous is None or previous.revoked:
                return _invalid_grant('Invalid "refresh_token" in request.')
            previous.revoked = True
            return self._issue(previous.user_id, previous.scopes)
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    async def revoke(self, request: web.Request) -> web.Response:
        body = body_of(request)
        if not self._client_ok(request, dict(body.form)):
            return web.json_response({"error": "invalid_client"}, status=401)
        token = body.form.get("token", "")
        found = self.tokens.get(token) or self._refresh.get(token)
        if found is not None:
            found.revoked = True
        return web.json_response({})

    # ------------------------------------------------------------------------------------------------ bearer

    def bearer(self, request: web.Request) -> OAuthToken | None:
        """The valid access token of a `Bearer` request, if any."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        token = self.tokens.get(header[7:])
        if token is None or token.revoked or time.time() > token.expires_at:
            return None
        return token


def _invalid_grant(description: str) -> web.Response:
    return web.json_response({"error": "invalid_grant", "error_description": description}, status=400)
