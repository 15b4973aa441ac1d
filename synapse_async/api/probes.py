"""`GET /health` (liveness, in-memory only) and `GET /ready` (readiness with machine-readable reasons)."""

from __future__ import annotations

from aiohttp import web

from synapse_async.api.keys import COMPONENTS
from synapse_async.health import ready_reasons, report

routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return web.json_response(report(request.app[COMPONENTS]))


@routes.get("/ready")
async def ready(request: web.Request) -> web.Response:
    reasons = ready_reasons(request.app[COMPONENTS])
    if reasons:
        return web.json_response({"ready": False, "reasons": reasons}, status=503)
    return web.json_response({"ready": True})
