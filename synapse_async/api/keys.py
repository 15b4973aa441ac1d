"""Typed application keys: the API's explicit dependencies, set once by `build_app` (no module globals)."""

from __future__ import annotations

from aiohttp import web

from synapse_async.api.dbgate import HttpDatabaseGate
from synapse_async.components import Components
from synapse_async.config import Config

CONFIG = web.AppKey("config", Config)
COMPONENTS = web.AppKey("components", Components)
DB_GATE = web.AppKey("db_gate", HttpDatabaseGate)
