"""Builds the aiohttp application with its typed keys, middlewares and routes."""

from __future__ import annotations

from aiohttp import web

from synapse_async.api import probes, public, sandbox
from synapse_async.api.keys import COMPONENTS, CONFIG
from synapse_async.api.middleware import errors, gate, request_context
from synapse_async.config import Config
from synapse_async.health import Components


def build_app(config: Config, components: Components) -> web.Application:
    app = web.Application(
        middlewares=[request_context(config.trusted_proxies), errors, gate(components.lifecycle)],
        client_max_size=config.http_max_body_bytes,
    )
    app[CONFIG] = config
    app[COMPONENTS] = components
    app.add_routes(probes.routes)
    app.add_routes(public.routes)
    if config.sandbox:
        app.add_routes(sandbox.routes)
    return app
