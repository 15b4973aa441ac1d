"""The admin console (SPEC §28.3): server-rendered pages over the admin JSON API, one module per section.

Each section module has `install(app)`; pages read through their JSON twins (`gate.Console.ask`) and every change
is made by the browser calling the JSON API itself (`static/console.js`), so the console has no write path of its
own (docs/decisions.md, "One path for every change").
"""

from __future__ import annotations

import uuid

import aiohttp_jinja2
from aiohttp import web

from synapse_async.web.console import (
    achievements,
    audit,
    home,
    jobs,
    lake,
    level_roles,
    logs,
    members,
    overview,
    seasons,
    settings,
    transfer,
    xp_rules,
)


def install(app: web.Application) -> None:
    env = aiohttp_jinja2.get_env(app)
    # A fresh Idempotency-Key per rendered form: a double click or a retry after a network error does one thing.
    env.globals["new_key"] = lambda: str(uuid.uuid4())
    sections = (home, overview, settings, xp_rules, level_roles, achievements, members, seasons, transfer)
    for section in (*sections, lake, jobs, audit, logs):
        section.install(app)
