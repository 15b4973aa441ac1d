"""`GET /health` (liveness, in-memory only) and `GET /ready` (readiness with machine-readable reasons)."""

from __future__ import annotations

from aiohttp import web

from synapse_async.api.keys import COMPONENTS

routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return web.json_response(request.app[COMPONENTS].report())


@routes.get("/ready")
async def ready(request: web.Request) -> web.Response:
    reasons = request.app[COMPONENTS].ready_reasons()
    if reasons:
        return web.json_response({"ready": False, "reasons": reasons}, status=503)
    return web.json_response({"ready": True})
