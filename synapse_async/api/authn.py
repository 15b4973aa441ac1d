"""Who is calling (SPEC §21): the token from the Bearer header or the cookie, verified, not revoked, CSRF-checked.

A Bearer header wins over the cookie (an API client may carry a stale browser cookie). Cookie-authenticated
mutations must send `X-CSRF-Token` equal to the token's `csrf` claim: a cross-site form can make the browser
send the cookie, but cannot read the `synapse_csrf` cookie to copy it into a header. The token itself never
reaches a log line: failures log only the reason class.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from synapse_async.api.errors import ApiError
from synapse_async.api.platform import ApiPlatform
from synapse_async.auth.tokens import Claims, InvalidToken
from synapse_async.obs.logging import get_logger

log = get_logger("synapse_async.auth")

TOKEN_COOKIE: Final = "synapse_token"
CSRF_COOKIE: Final = "synapse_csrf"
CSRF_HEADER: Final = "X-CSRF-Token"
MUTATIONS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller (its verified claims; the token string itself is not kept)."""

    claims: Claims
    via_cookie: bool

    @property
    def id(self) -> str:
        return self.claims.sub


def unauthenticated(message: str = "Authentication required.") -> ApiError:
    return ApiError(401, "unauthenticated", message, headers={"WWW-Authenticate": 'Bearer realm="synapse-async"'})


def _token_of(request: web.Request) -> tuple[str | None, bool]:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise unauthenticated("The Authorization header must be `Bearer <token>`.")
        return value.strip(), False
    cookie = request.cookies.get(TOKEN_COOKIE)
    return (cookie, True) if cookie else (None, False)


async def authenticate(request: web.Request, platform: ApiPlatform) -> Principal:
    """The verified principal of the request, or 401 `unauthenticated` / 403 `csrf_failed`."""
    token, via_cookie = _token_of(request)
    if token is None:
        raise unauthenticated()
    try:
        claims = platform.codec.decode(token)
    except InvalidToken as exc:
        log.info("token_refused", reason=exc.reason)
        raise unauthenticated("The token is invalid or expired.") from None
    if await platform.is_revoked(claims.jti):
        log.info("token_refused", reason="revoked", principal=claims.sub)
        raise unauthenticated("The token has been revoked.")
    principal = Principal(claims, via_cookie)
    if request.method in MUTATIONS:
        require_csrf(request, principal)
    return principal


def require_csrf(request: web.Request, principal: Principal) -> None:
    """403 `csrf_failed` unless a cookie-authenticated request sends the token's CSRF value in `X-CSRF-Token`.

    Mutations always need it; a GET with a side effect (the audited member export) calls this too, so that a
    browser prefetch, a link or an `<img>` on another site, which cannot add headers, never triggers it."""
    if not principal.via_cookie:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    csrf = principal.claims.csrf
    if csrf is None or not hmac.compare_digest(sent.encode(), csrf.encode()):
        raise ApiError(403, "csrf_failed", f"Cookie-authenticated requests with effects need the {CSRF_HEADER} header.")
