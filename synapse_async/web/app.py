"""Builds the whole HTTP application: the JSON API (`api.app.build_app`) plus the member pages (SPEC §28)."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from synapse_async.api.app import build_app
from synapse_async.api.dbgate import HttpDatabaseGate
from synapse_async.api.keys import COMPONENTS
from synapse_async.components import Components
from synapse_async.config import Config
from synapse_async.web import console, pages, sandbox
from synapse_async.web.assets import PREFIX, Assets
from synapse_async.web.site import SITE, Site, content_security_policy, environment, html_not_found
from synapse_async.web.twins import Twins


def build_site(config: Config, components: Components, db_gate: HttpDatabaseGate) -> web.Application:
    """The JSON API with the member pages, their hashed assets and the HTML 404 added."""
    app = build_app(config, components, db_gate)
    assets = Assets()
    app[SITE] = Site(config, app[COMPONENTS], assets, Twins(), content_security_policy(config.discord_cdn_url))
    app[aiohttp_jinja2.APP_KEY] = environment(assets)
    app.middlewares.append(html_not_found)
    app.router.add_get(PREFIX + "{name}", assets.serve, name="static")
    pages.install(app)
    sandbox.install(app)
    console.install(app)
    return app
