"""Every declared JSON route of the API in one registry, and the OpenAPI document generated from it."""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from aiohttp import web

from synapse_async import __version__
from synapse_async.api import auth_routes, card, public, public_stats
from synapse_async.api.admin import achievements, awards, config, lake, logs, members, platform, seasons
from synapse_async.api.contract import Access, Api, Call
from synapse_async.api.openapi import build_document
from synapse_async.api.schema import NoParams

_docs = Api()


@_docs.route(
    "GET",
    "/api/openapi.json",
    summary="This OpenAPI 3.1 document",
    tag="meta",
    access=Access.PUBLIC,
    responses={200: "The OpenAPI document"},
)
async def openapi_json(_call: Call[NoParams, NoParams, None]) -> web.StreamResponse:
    """Generated from the same models the server validates with; cached once built."""
    return web.Response(body=_document_bytes(), content_type="application/json")


# aiohttp matches routes in registration order: a module with fixed paths under `…/members/` (export, import)
# must come before `admin.members`, whose `…/members/{user_id}` would otherwise answer them with a 400.
API = Api.combine(
    public.api,
    public_stats.api,
    card.api,
    auth_routes.api,
    platform.api,
    config.api,
    achievements.api,
    awards.api,
    seasons.api,
    members.api,
    logs.api,
    lake.api,
    _docs,
)


def openapi_document() -> dict[str, Any]:
    return build_document(API, __version__)


@cache
def _document_bytes() -> bytes:
    return orjson.dumps(openapi_document())
