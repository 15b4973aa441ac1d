"""Builds the aiohttp application with its typed keys, middlewares and routes."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from synapse_async.api import probes, sandbox
from synapse_async.api.contract import PLATFORM
from synapse_async.api.cors import cors
from synapse_async.api.dbgate import HttpDatabaseGate
from synapse_async.api.keys import COMPONENTS, CONFIG, DB_GATE
from synapse_async.api.middleware import errors, gate, public_rate_limit, request_context
from synapse_async.api.platform import ApiPlatform
from synapse_async.api.ratelimit import SlidingWindowLimiter
from synapse_async.api.routes import API
from synapse_async.components import Components
from synapse_async.config import Config


def build_app(config: Config, components: Components, db_gate: HttpDatabaseGate) -> web.Application:
    middlewares: list[Middleware] = [request_context(config.trusted_proxies)]
    if config.cors_origins:
        middlewares.append(cors(config.cors_origins))
    if config.public_rate_limit_per_minute > 0:  # 0 turns the limit off (benchmarks)
        limiter = SlidingWindowLimiter(config.public_rate_limit_per_minute)
        middlewares.append(public_rate_limit(limiter, config.trusted_proxies))
    middlewares += [errors, gate(components.lifecycle)]
    app = web.Application(middlewares=middlewares, client_max_size=config.http_max_body_bytes)
    app[CONFIG] = config
    app[COMPONENTS] = components
    app[DB_GATE] = db_gate
    platform = ApiPlatform(config, components, db_gate)
    app[PLATFORM] = platform

    async def stop_refreshes(_app: web.Application) -> None:
        await platform.close()

    app.on_cleanup.append(stop_refreshes)
    app.add_routes(probes.routes)
    API.install(app)
    if config.sandbox:
        app.add_routes(sandbox.routes)
    return app
