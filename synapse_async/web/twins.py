"""Calling a page's JSON twin: the same declared route, the same validation, the same handler, the same model.

A page never queries the database or decides what the public may see: it asks the twin's handler (SPEC §28.1,
docs/web.md "one data function, two renderings") and renders the pydantic model it returns. Path and query are
validated by the route's own models, the route's guard runs first (unknown guild or public pages off → 404), and
answers are kept for the same few seconds as the JSON micro-cache, so a page costs what its twin costs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, TypeVar

from aiohttp import web
from cachetools import TTLCache
from pydantic import BaseModel, ValidationError

from synapse_async.api.authn import Principal
from synapse_async.api.contract import PLATFORM, Call, Handler, Operation, Reply
from synapse_async.api.errors import ApiError
from synapse_async.api.platform import MICRO_CACHE_SECONDS
from synapse_async.api.routes import API
from synapse_async.api.schema import problems_of

M = TypeVar("M", bound=BaseModel)

_OPERATIONS: dict[Handler, Operation] = {op.handler: op for op in API.operations}


def operation_of(handler: Handler) -> Operation:
    """The declared route whose handler this is (a page names its twin by the handler function)."""
    return _OPERATIONS[handler]


def validated_call(
    request: web.Request,
    op: Operation,
    path: Mapping[str, object],
    query: Mapping[str, object] | None,
    principal: Principal | None,
) -> Call[Any, Any, None]:
    """The `Call` the route would build: path and query validated by the route's own models, 400 with every
    problem otherwise (the same `details` a JSON client gets)."""
    try:
        path_model = op.path_model.model_validate(dict(path))
        query_model = op.query_model.model_validate(dict(query or {}))
    except ValidationError as exc:
        problems = problems_of(exc.errors(include_url=False, include_context=False), "query")
        raise ApiError(400, "validation_error", "The request is invalid.", problems) from None
    return Call(request, request.app[PLATFORM], path_model, query_model, None, principal)


class Twins:
    """The twin calls of one app; answers cached by (route, path, query) for `MICRO_CACHE_SECONDS`."""

    def __init__(self, ttl: float = MICRO_CACHE_SECONDS) -> None:
        self._cache: TTLCache[tuple[str, str], BaseModel] = TTLCache(maxsize=4096, ttl=ttl)
        self._inflight: dict[tuple[str, str], asyncio.Future[BaseModel]] = {}

    async def call(
        self,
        request: web.Request,
        handler: Handler,
        model: type[M],
        path: Mapping[str, object],
        query: Mapping[str, object] | None = None,
    ) -> M:
        """The twin's response model for `path` and `query`; its ApiError (404, 400, 503) propagates."""
        op = _OPERATIONS[handler]
        key = (op.operation_id, repr((sorted(path.items()), sorted((query or {}).items()))))
        call = validated_call(request, op, path, query, None)
        if op.guard is not None:
            op.guard(call)  # before the cache, like the JSON route: a guild that turned its pages off is 404 at once
        hit = self._cache.get(key)
        if hit is None and (pending := self._inflight.get(key)) is not None:
            hit = await asyncio.shield(pending)
        if hit is not None:
            assert isinstance(hit, model)
            return hit
        future: asyncio.Future[BaseModel] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await op.handler(call)
            body = result.body if isinstance(result, Reply) else result
            if not isinstance(body, model):
                raise TypeError(f"{op.operation_id} answered {type(body).__name__}, not {model.__name__}")
            self._cache[key] = body
            future.set_result(body)
            return body
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs "never retrieved"
            raise
        finally:
            self._inflight.pop(key, None)
