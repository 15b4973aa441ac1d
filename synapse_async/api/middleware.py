"""Cross-cutting HTTP behaviour: request ids, the startup/shutdown gate, uniform errors, access log, and
`Cache-Control: no-store` on every authenticated or auth-flow response (SPEC §18).

Order matters: the request-id middleware runs first so every later log line and error carries the id; the error
middleware turns any exception into the uniform body (a pool timeout or lost connection becomes 503
`unavailable`, never a hang or a 500).

The access log (SPEC §24.3) records method, route template, status, duration, principal, client IP and request id.
The client IP is the peer address unless the peer is one of `TRUSTED_PROXIES`: then `X-Forwarded-For` is read
from the right, skipping trusted hops, and the first untrusted address is the client (addresses further left
were written by the client itself and prove nothing). The principal is whatever authentication stored under
`PRINCIPAL` for this request (None for anonymous requests).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from synapse_async.api.clients import Network, client_ip
from synapse_async.api.errors import ApiError, error_response
from synapse_async.api.ratelimit import SlidingWindowLimiter
from synapse_async.components import Lifecycle
from synapse_async.db.faults import is_transient
from synapse_async.obs.logging import get_logger
from synapse_async.obs.ring import reset_operator_only, set_operator_only

log = get_logger("synapse_async.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
PROBE_PATHS = frozenset({"/health", "/ready"})
REQUEST_ID = web.RequestKey("request_id", str)
CLIENT_IP = web.RequestKey("client_ip", str)
PRINCIPAL = web.RequestKey("principal", str)
"""Set by authentication to the caller's principal id (a Discord user id or `svc:…`); read by the access log."""
PRIVATE_PREFIXES = ("/api/admin/", "/api/auth/")
"""Answers under these (also errors and the login redirects that set cookies) are never stored by any cache."""


def _route_template(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "<unmatched>"


def request_context(trusted_proxies: Sequence[Network] = ()) -> Middleware:
    """Request id, client IP and the access log line for every request but the probes."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        request[REQUEST_ID] = request_id
        ip = client_ip(request, trusted_proxies)
        request[CLIENT_IP] = ip
        structlog.contextvars.bind_contextvars(request_id=request_id)
        # Until authentication succeeds, what this request logs is for operators only: anonymous traffic must not
        # flush the guild admins' live-log rings (SPEC §24.3). `contract` lifts it for authenticated callers.
        anonymous = set_operator_only(True)
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            response.headers["X-Request-ID"] = request_id
            private = PRINCIPAL in request or request.path.startswith(PRIVATE_PREFIXES)
            # SPEC §18: no cache may keep a private answer; a page's own `private, no-store` (§28) already says so.
            if private and "no-store" not in response.headers.get("Cache-Control", ""):
                response.headers["Cache-Control"] = "no-store"
            return response
        finally:
            if request.path not in PROBE_PATHS:
                log.info(
                    "http_request",
                    method=request.method,
                    route=_route_template(request),
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    principal=request.get(PRINCIPAL),
                    client_ip=ip,
                )
            structlog.contextvars.unbind_contextvars("request_id")
            reset_operator_only(anonymous)

    return middleware


RATE_LIMITED_PREFIXES = ("/api/",)
RATE_LIMIT_EXEMPT_PREFIXES = ("/api/admin/",)  # admin mutations have their own per-principal limit (SPEC §21.4)


def public_rate_limit(limiter: SlidingWindowLimiter, proxies: Sequence[Network]) -> Middleware:
    """`PUBLIC_RATE_LIMIT_PER_MINUTE` per client IP on the public and auth endpoints, checked before any work.

    Every limited response (also an error) carries the `X-RateLimit-*` headers; a refusal is 429 `rate_limited`
    with `Retry-After` and `details.retry_after`. Probes and the sandbox are not limited. It runs outside the
    error middleware, so it sees every finished response and renders its own refusal."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if not path.startswith(RATE_LIMITED_PREFIXES) or path.startswith(RATE_LIMIT_EXEMPT_PREFIXES):
            return await handler(request)
        decision = limiter.hit(client_ip(request, proxies))
        if decision.allowed:
            response = await handler(request)
        else:
            details = {"retry_after": decision.reset_seconds}
            response = error_response(429, "rate_limited", "Too many requests; slow down.", details)
        response.headers.update(decision.headers())
        return response

    return middleware


def gate(lifecycle: Lifecycle) -> Middleware:
    """Before startup step 10 and after shutdown began, the API answers 503 (probes always answer)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api/") and (lifecycle.shutting_down or not lifecycle.api_open):
            reason = "shutting down" if lifecycle.shutting_down else "starting up"
            raise ApiError.unavailable(f"The service is {reason}; try again shortly.")
        return await handler(request)

    return middleware


def fixed_route_methods(request: web.Request) -> list[str]:
    """The methods of the most specific route at this path when it is not the one that took the request:
    `…/members/import` is POST only although `GET …/members/{user_id}` also matches the path (aiohttp would list
    both in `Allow`, and `PATCH …/achievements/trigger-types` would reach `PATCH …/achievements/{id}`)."""
    path = request.rel_url.path
    matches: list[tuple[int, web.AbstractResource]] = []
    for resource in request.app.router.resources():
        info = resource.get_info()
        pattern = info.get("pattern")
        if pattern.fullmatch(path) if pattern is not None else info.get("path") == path:
            matches.append(((resource.canonical or "").count("{"), resource))
    if not matches:
        return []
    fewest = min(count for count, _ in matches)
    taken = request.match_info.route.resource
    if taken is not None and (taken.canonical or "").count("{") <= fewest:
        return []  # the request reached a route of the most specific path: its own validation answers
    return sorted({route.method for count, resource in matches if count == fewest for route in resource})


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        response.headers.update(exc.headers)
        if exc.status == 408:  # the rest of a late body may still arrive: this connection cannot be reused
            response.force_close()
    except web.HTTPRequestEntityTooLarge:
        response = error_response(413, "payload_too_large", "The request body is too large.")
    except web.HTTPNotFound:
        response = error_response(404, "not_found", "Not found.")
    except web.HTTPMethodNotAllowed as exc:
        response = error_response(405, "method_not_allowed", "Method not allowed.")
        allowed = fixed_route_methods(request) or sorted(exc.allowed_methods)
        response.headers["Allow"] = ", ".join(allowed)  # RFC 9110 §15.5.6
    except web.HTTPException:
        raise
    except Exception as exc:
        if is_transient(exc):
            log.warning("http_database_unavailable", error=type(exc).__name__)
            response = error_response(503, "unavailable", "The database is temporarily unavailable; try again shortly.")
        else:
            log.exception("http_internal_error")
            response = error_response(500, "internal_error", "An internal error occurred.")
    response.headers["X-Request-ID"] = request.get(REQUEST_ID, "")
    return response
