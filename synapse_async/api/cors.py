"""CORS for exactly the origins in `CORS_ORIGINS` (SPEC §18): exact match, credentials allowed, never a wildcard.

Only `/api/` paths take part (the probes and the sandbox never answer cross-origin). A preflight from an
allowed origin gets 204 with the methods and headers the API uses; one from any other origin gets no CORS
headers at all, so the browser refuses the request on its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ALLOW_METHODS: Final = "GET, POST, PUT, PATCH, DELETE"
ALLOW_HEADERS: Final = "Authorization, Content-Type, Idempotency-Key, X-CSRF-Token, X-Request-ID"
EXPOSE_HEADERS: Final = (
    "X-Request-ID, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, Idempotent-Replayed"
)


def cors(origins: Collection[str]) -> Middleware:
    allowed = frozenset(origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not request.path.startswith("/api/"):
            return await handler(request)
        is_allowed = origin is not None and origin in allowed
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response: web.StreamResponse = web.Response(status=204 if is_allowed else 403)
            if is_allowed:
                response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
                response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
                response.headers["Access-Control-Max-Age"] = "600"
        else:
            response = await handler(request)
        if is_allowed:
            assert origin is not None
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        response.headers.add("Vary", "Origin")
        return response

    return middleware
