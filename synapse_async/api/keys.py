"""Typed application keys: the API's explicit dependencies, set once by `build_app` (no module globals)."""

from __future__ import annotations

from aiohttp import web

from synapse_async.api.dbgate import HttpDatabaseGate
from synapse_async.config import Config
from synapse_async.health import Components

CONFIG = web.AppKey("config", Config)
COMPONENTS = web.AppKey("components", Components)
DB_GATE = web.AppKey("db_gate", HttpDatabaseGate)
