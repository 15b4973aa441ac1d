"""The one mechanism every JSON route goes through (SPEC §18, §21): typed models in, typed model out.

A route is declared once with its path, query and body models, its response model and who may call it; from that
declaration come both the request handling below and the OpenAPI document (`api/openapi.py`), so the document
cannot drift from what the server does. For each request, in this order:

1. authentication (`authn.authenticate`) for non-public routes → 401 / 403 `csrf_failed`;
2. the `Idempotency-Key` header format (writes) → 400;
3. the admin mutation limit (§21.4) → 429, before any admin check: refused callers spend their own quota, so they
   cannot make the server call Discord more often than the limit allows (§21.3, issue 21 item 4);
4. path and query against their pydantic models → 400 `validation_error` with every problem, the body's too if the
   caller passes the admin check of the path's guild (only then is that body read);
5. for guild-admin routes, the live admin check (§21.3) → 404 unknown guild / 403 `forbidden`;
6. the route's `body_gate`, if any (the member import's upload slots: 409 / 429 before a byte is buffered);
7. only now the body, against its model, within `HTTP_BODY_TIMEOUT_SECONDS` (else 408) → 400 (`invalid_json` for a
   body that is not JSON): SPEC §18 reads bodies after authentication, authorization and rate limiting, so a
   refused caller costs no buffering;
8. the `Idempotency-Key` reserved in the database (principal + route): a repeat replays the stored response,
   waits for a concurrent first attempt (then replays it, or 409 `in_progress`), or is 409 for another body;
9. the handler, whose reply is serialized by its response model (and stored for the idempotency key; a 5xx or
   an exception releases it instead).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any, Generic, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from synapse_async.api import admin_limit, idempotency
from synapse_async.api.authn import MUTATIONS, Principal, authenticate
from synapse_async.api.body import read_json_raw, whole_numbers
from synapse_async.api.errors import ApiError, error_response
from synapse_async.api.middleware import CLIENT_IP, PRINCIPAL, REQUEST_ID, fixed_route_methods
from synapse_async.api.platform import ApiPlatform, CachedAnswer
from synapse_async.api.ratelimit import Decision
from synapse_async.api.schema import GuildPath, NoParams, integer_literal_problems, problems_of
from synapse_async.obs.logging import get_logger
from synapse_async.obs.ring import set_operator_only
from synapse_async.services.audit import Actor, ActorKind

log = get_logger(__name__)
IDEMPOTENCY_KEY = web.RequestKey("idempotency_key", str)
"""The validated `Idempotency-Key` of an authenticated write, for `Call.operation_id`."""

PLATFORM = web.AppKey("api_platform", ApiPlatform)

PathT = TypeVar("PathT", bound=BaseModel)
QueryT = TypeVar("QueryT", bound=BaseModel)
BodyT = TypeVar("BodyT")


class Access(StrEnum):
    PUBLIC = "public"
    AUTHENTICATED = "authenticated"  # any valid token (auth/me, logout, the admin's guild list)
    GUILD_ADMIN = "guild_admin"  # admin of the path's `guild_id` (§21.3)


@dataclass(frozen=True, slots=True)
class Call(Generic[PathT, QueryT, BodyT]):
    """One validated request as a handler sees it."""

    request: web.Request
    platform: ApiPlatform
    path: PathT
    query: QueryT
    body: BodyT
    principal: Principal | None

    def require_principal(self) -> Principal:
        assert self.principal is not None, "only routes with access other than PUBLIC call this"
        return self.principal

    def actor(self) -> Actor:
        """The audit actor of this request (SPEC §22: client IP and request id included)."""
        principal = self.require_principal()
        return self.actor_as(principal.id, principal.claims.kind)

    def operation_id(self) -> str:
        """The request id of a keyed write (§7.5 `award:` / `grant:` / `revoke:` + it): the validated
        `Idempotency-Key` when the client sent one, so a retry of the same operation — even after the 24 h replay
        window of §18 — hits the same journal key and pays nothing twice; else a fresh UUID (a new operation)."""
        key = self.request.get(IDEMPOTENCY_KEY)
        return key if isinstance(key, str) else uuid.uuid4().hex

    def actor_as(self, actor_id: str, kind: ActorKind) -> Actor:
        """An audit actor for this request before a principal exists (the login itself)."""
        ip = self.request.get(CLIENT_IP)
        return Actor(
            actor_id,
            kind,
            "api",
            request_id=self.request.get(REQUEST_ID),
            client_ip=None if ip in (None, "unknown") else ip,
        )


@dataclass(frozen=True, slots=True)
class Reply:
    """A handler's answer: a model rendered with the route's response model, another status, extra headers."""

    body: BaseModel | None = None
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Call[Any, Any, Any]], Awaitable[BaseModel | Reply | web.StreamResponse | None]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One declared route: everything the server and the OpenAPI document need to know about it."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    access: Access
    path_model: type[BaseModel]
    query_model: type[BaseModel]
    body_model: type[BaseModel] | None
    response_model: type[BaseModel] | None
    status: int
    responses: Mapping[int, str]  # other documented statuses without a JSON body (redirects)
    description: str = ""
    alternatives: Mapping[int, type[BaseModel]] = field(default_factory=dict)
    """Other success statuses with a body of their own model (a `dry_run` preview answering 200)."""
    guard: Callable[[Call[Any, Any, Any]], object] | None = None
    """For `cached` routes: runs before the cache is consulted (e.g. the public guild check, raising 404)."""
    cached: bool = False
    raw_body: Callable[[ApiPlatform], int] | None = None
    """For routes taking an uploaded document (JSON or CSV) as raw bytes: its byte limit, which may exceed the
    app-wide `HTTP_MAX_BODY_BYTES` (the member import, §20.1). The handler receives the bytes as `call.body`."""
    body_gate: Callable[[Call[Any, Any, None]], AbstractAsyncContextManager[None]] | None = None
    """Entered after the admin check and rate limit, before the body is read, and held until the reply: may refuse
    the request (an `ApiError`) so an upload that cannot be taken is never buffered."""

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    @property
    def body_optional(self) -> bool:
        """A body model without required fields: the request may come without a body (SPEC §18)."""
        return self.body_model is not None and _optional_body(self.body_model)

    @property
    def is_write(self) -> bool:
        return self.method in MUTATIONS


@cache
def _optional_body(model: type[BaseModel]) -> bool:
    schema = model.model_json_schema()
    return not schema.get("required") and not schema.get("minProperties")


class Api:
    """The registry of declared routes; `install` adds them to an aiohttp app."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        access: Access,
        path_model: type[BaseModel] = NoParams,
        query: type[BaseModel] = NoParams,
        body: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        responses: Mapping[int, str] | None = None,
        alternatives: Mapping[int, type[BaseModel]] | None = None,
        guard: Callable[[Call[Any, Any, Any]], object] | None = None,
        raw_body: Callable[[ApiPlatform], int] | None = None,
        body_gate: Callable[[Call[Any, Any, None]], AbstractAsyncContextManager[None]] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare a route. With a `guard`, successful answers are kept in the platform's micro-cache (public
        reads: the same path and query within `MICRO_CACHE_SECONDS` get the same bytes, after the guard ran)."""

        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    method=method,
                    path=path,
                    handler=handler,
                    summary=summary,
                    tag=tag,
                    access=access,
                    path_model=path_model,
                    query_model=query,
                    body_model=body,
                    response_model=response,
                    status=status,
                    responses=responses or {},
                    description=(handler.__doc__ or "").strip(),
                    alternatives=alternatives or {},
                    guard=guard,
                    cached=guard is not None,
                    raw_body=raw_body,
                    body_gate=body_gate,
                )
            )
            return handler

        return register

    @classmethod
    def combine(cls, *parts: Api) -> Api:
        """One registry of several modules' routes, in the given order."""
        whole = cls()
        for part in parts:
            whole.operations.extend(part.operations)
        return whole

    def install(self, app: web.Application) -> None:
        for op in self.operations:
            app.router.add_route(op.method, op.path, _endpoint(op), name=op.operation_id)


def _query_dict(request: web.Request) -> tuple[dict[str, str], list[dict[str, str]]]:
    values: dict[str, str] = {}
    problems: list[dict[str, str]] = []
    for key, value in request.query.items():
        if key in values:
            problems.append({"field": key, "problem": "duplicate", "message": "given more than once"})
        if "\x00" in value or "\x00" in key:
            problems.append({"field": key, "problem": "invalid_value", "message": "must not contain U+0000"})
        values[key] = value
    return values, problems


def _validate(model: type[BaseModel], data: Any, root: str, problems: list[dict[str, str]]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(problems_of(exc.errors(include_url=False, include_context=False), root))
        return None


async def _read_limited(request: web.Request, limit: int) -> bytearray:
    """The whole body, streamed with its own cap (aiohttp's `client_max_size` applies to `read()` only), into one
    growing buffer (no list of chunks joined into a second copy). A `bytearray`, so the handler can release it as
    soon as it has turned it into something else (the import keeps only the decoded text)."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "payload_too_large", f"The document is larger than {limit} bytes.")
    buffer = bytearray()
    async for chunk in request.content.iter_chunked(65536):
        if len(buffer) + len(chunk) > limit:
            raise ApiError(413, "payload_too_large", f"The document is larger than {limit} bytes.")
        buffer += chunk
    return buffer


async def _body(
    op: Operation, request: web.Request, platform: ApiPlatform, problems: list[dict[str, str]]
) -> tuple[Any, bytes | bytearray]:
    """The body within `HTTP_BODY_TIMEOUT_SECONDS`, else 408 and the connection closed: a client trickling its
    body cannot hold a connection and a handler open for as long as it likes (issue 21 item 6)."""
    deadline = platform.config.http_body_timeout_seconds
    try:
        async with asyncio.timeout(deadline) as scope:
            return await _read_body(op, request, platform, problems)
    except TimeoutError:
        if not scope.expired():
            raise
        raise ApiError(408, "request_timeout", f"The request body did not arrive within {deadline:g} s.") from None


async def _read_body(
    op: Operation, request: web.Request, platform: ApiPlatform, problems: list[dict[str, str]]
) -> tuple[Any, bytes | bytearray]:
    if op.raw_body is not None:
        upload = await _read_limited(request, op.raw_body(platform))
        return upload, upload
    if op.body_model is None:
        raw = await request.read() if request.can_read_body else b""
        if raw.strip():
            problems.append({"field": "body", "problem": "unknown_field", "message": "this operation takes no body"})
        return None, raw
    # SPEC §18: a body of optional fields only may be left out (the same request as `{}`).
    raw = b"{}" if op.body_optional and not request.body_exists else whole_numbers(await read_json_raw(request))
    try:
        return op.body_model.model_validate_json(raw, strict=True), raw
    except ValidationError as exc:
        problems.extend(problems_of(exc.errors(include_url=False, include_context=False), "body"))
        return None, raw


async def _check_admin(op: Operation, call_path: BaseModel, principal: Principal, platform: ApiPlatform) -> None:
    guild_id = getattr(call_path, "guild_id", None)
    assert isinstance(guild_id, int), f"{op.path}: guild-admin routes have a guild_id path parameter"
    await check_guild_admin(guild_id, principal, platform, allow_cached=op.method == "GET")


async def check_guild_admin(guild_id: int, principal: Principal, platform: ApiPlatform, *, allow_cached: bool) -> None:
    """The §21.3 check: 404 for a guild this deployment does not serve, 403 unless the principal administers it
    now (a service token: its `guilds` claim; a user: live roles, cached ≤ 5 s for reads only). The JSON routes
    and the console pages (`web/console/gate.py`) both call this, so a page cannot be more lenient than its twin."""
    claims = principal.claims
    if not platform.serves(guild_id):
        raise ApiError.not_found("Unknown guild.")
    if claims.kind == "service":
        if guild_id not in claims.guilds:
            raise ApiError(403, "forbidden", "This service token is not valid for this guild.")
        return
    admins = platform.require_admins()
    assert claims.user_id is not None
    if not await admins.is_admin(guild_id, claims.user_id, allow_cached=allow_cached):
        raise ApiError(403, "forbidden", "You are not an admin of this guild.")


def _render(op: Operation, result: BaseModel | Reply | web.StreamResponse | None) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    reply = result if isinstance(result, Reply) else Reply(result)
    status = reply.status or op.status
    if reply.body is None:
        response = web.Response(status=status)
    else:
        response = web.Response(
            status=status, body=reply.body.model_dump_json(by_alias=True).encode(), content_type="application/json"
        )
    response.headers.update(reply.headers)
    return response


def _error(exc: ApiError) -> web.Response:
    response = error_response(exc.status, exc.code, exc.message, exc.details)
    response.headers.update(exc.headers)
    return response


async def _admit(platform: ApiPlatform, principal: Principal) -> Decision:
    limit = platform.config.admin_rate_limit_per_minute
    async with platform.read() as conn:
        decision = await admin_limit.admit(conn, principal.id, limit)
    if not decision.allowed:
        raise ApiError(
            429,
            "rate_limited",
            "Too many changes; slow down.",
            {"retry_after": decision.reset_seconds},
            headers=decision.headers(),
        )
    return decision


async def _cached(op: Operation, call: Call[Any, Any, Any]) -> web.StreamResponse:
    """The micro-cached answer of a public read; concurrent misses of one URL share a single computation, so an
    expiring entry under load costs one query, not one per waiting request (which would exhaust the pool).

    The waiters get what the computation got, a failure included (the same 503): retrying it each on its own
    would turn one slow query into a queue of them behind the public gate. An entry read in the last second of
    its life is recomputed in the background while it is still served (`ApiPlatform.refresh_after`)."""
    assert op.guard is not None
    op.guard(call)
    platform = call.platform
    # Keyed by the validated query (defaults filled, fixed order): `?page=1&page_size=25`, `?page_size=25` and no
    # query at all are one entry, so reordering or spelling out defaults cannot bypass the cache.
    query = call.query.model_dump_json() if isinstance(call.query, BaseModel) else ""
    key = f"{call.request.path}?{query}"
    hit: CachedAnswer | None = platform.micro_cache.get(key)
    pending = platform.inflight.get(key)
    if hit is not None:
        if pending is None and asyncio.get_running_loop().time() - hit.at >= platform.refresh_after:
            platform.refresh_ahead(key, lambda: _compute(op, call, key))
        return _replay(200, hit.body, hit.headers)
    if pending is not None:
        return _replay(*await asyncio.shield(pending))
    return await _compute(op, call, key)


def _replay(status: int, body: bytes | None, headers: dict[str, str]) -> web.Response:
    replay = web.Response(status=status, body=body, content_type="application/json")
    replay.headers.update(headers)
    return replay


async def _compute(op: Operation, call: Call[Any, Any, Any], key: str) -> web.StreamResponse:
    """Answer `call` from its handler and keep a 200 in the micro-cache; requests for `key` arriving meanwhile
    wait for this answer (`inflight`)."""
    platform = call.platform
    future: asyncio.Future[tuple[int, bytes | None, dict[str, str]]] = asyncio.get_running_loop().create_future()
    platform.inflight[key] = future
    try:
        response = _render(op, await op.handler(call))
    except Exception as exc:
        future.set_exception(exc)
        future.exception()  # retrieved even when nobody waited
        raise
    except BaseException:
        future.cancel()
        raise
    finally:
        platform.inflight.pop(key, None)
    body = response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else None
    headers = {k: v for k, v in response.headers.items() if k == "Cache-Control"}
    if response.status == 200 and body is not None:
        platform.micro_cache[key] = CachedAnswer(body, headers, asyncio.get_running_loop().time())
    future.set_result((response.status, body, headers))
    return response


async def _release(platform: ApiPlatform, slot: idempotency.Slot) -> None:
    try:
        await idempotency.release(platform.read, slot)
    except Exception:  # the reservation then expires on its own (STALE_RESERVATION_SQL)
        log.warning("idempotency_release_failed", key=slot.key)


async def _execute(
    op: Operation,
    request: web.Request,
    platform: ApiPlatform,
    path: Any,
    query_model: Any,
    body: Any,
    principal: Principal | None,
    key: str | None,
    decision: Decision | None,
) -> web.StreamResponse:
    """The handler; with an `Idempotency-Key` an `ApiError` becomes the (stored) response."""
    try:
        call: Call[Any, Any, Any] = Call(request, platform, path, query_model, body, principal)
        if op.cached:
            return await _cached(op, call)
        response = _render(op, await op.handler(call))
    except ApiError as exc:
        if key is None:
            raise
        response = _error(exc)
    if decision is not None:
        response.headers.update(decision.headers())
    return response


def _endpoint(op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        platform = request.app[PLATFORM]
        principal: Principal | None = None
        if op.access is not Access.PUBLIC:
            principal = await authenticate(request, platform)
            request[PRINCIPAL] = principal.id
            set_operator_only(False)  # authenticated: its guild-tagged entries may reach guild rings (§24.3)
        key = idempotency.parse_key(request.headers.get(idempotency.HEADER)) if op.is_write else None

        query, problems = _query_dict(request)
        path_values = dict(request.match_info)
        path = _validate(op.path_model, path_values, "path", problems)
        if problems and (allowed := fixed_route_methods(request)):
            # `PATCH …/achievements/trigger-types` reached `PATCH …/achievements/{achievement_id}`: the path
            # names a fixed resource that has no such method, so 405 with `Allow` (RFC 9110), not a bad id.
            raise ApiError(405, "method_not_allowed", "Method not allowed.", headers={"Allow": ", ".join(allowed)})
        query_model = _validate(op.query_model, query, "query", problems)
        decision: Decision | None = None
        if op.is_write and principal is not None and op.path.startswith("/api/admin/"):
            decision = await _admit(platform, principal)
        reported = {p["field"] for p in problems}
        for model, values in ((op.path_model, path_values), (op.query_model, query)):
            problems += [p for p in integer_literal_problems(model, values) if p["field"] not in reported]
        if problems:
            # Every problem at once, the body's too, but its body is read only for a caller allowed to send it.
            if op.raw_body is None and await _may_send_body(op, request, path, principal, platform):
                await _body(op, request, platform, problems)
            raise ApiError(400, "validation_error", "The request is invalid.", problems)
        if op.access is Access.GUILD_ADMIN:
            assert principal is not None
            await _check_admin(op, path, principal, platform)
        # The body is read only now, after authentication, the mutation limit and the admin check (SPEC §18): a
        # refused caller never makes the server buffer an upload.
        if op.body_gate is None:
            return await _with_body(op, request, platform, principal, key, path, query_model, decision)
        async with op.body_gate(Call(request, platform, path, query_model, None, principal)):
            return await _with_body(op, request, platform, principal, key, path, query_model, decision)

    endpoint.__name__ = op.operation_id
    endpoint.__doc__ = op.description
    return endpoint


async def _may_send_body(
    op: Operation, request: web.Request, path: BaseModel | None, principal: Principal | None, platform: ApiPlatform
) -> bool:
    """For a request already refused as invalid: whether its body may be read to report its problems too — only
    once the caller passed the admin check of the path's guild (403 otherwise), never for an unreadable guild id."""
    if op.access is not Access.GUILD_ADMIN:
        return True
    assert principal is not None
    if path is None:
        try:
            path = GuildPath.model_validate({"guild_id": request.match_info.get("guild_id")})
        except ValidationError:
            return False
    await _check_admin(op, path, principal, platform)
    return True


async def _with_body(
    op: Operation,
    request: web.Request,
    platform: ApiPlatform,
    principal: Principal | None,
    key: str | None,
    path: Any,
    query_model: Any,
    decision: Decision | None,
) -> web.StreamResponse:
    """Steps 7–9: read and validate the body, replay a stored idempotent response, run the handler."""
    problems: list[dict[str, str]] = []
    body, raw = await _body(op, request, platform, problems)
    if problems:
        raise ApiError(400, "validation_error", "The request is invalid.", problems)

    slot: idempotency.Slot | None = None
    if key is not None and principal is not None:
        request[IDEMPOTENCY_KEY] = key
        slot = idempotency.Slot(
            principal.id,
            f"{request.method} {request.path}",
            key,
            idempotency.fingerprint(request.method, request.path_qs, bytes(raw)),
        )
        stored = await idempotency.claim(platform.read, slot)
        if stored is not None:
            replay = web.Response(
                status=stored.status,
                body=None if stored.body is None else orjson.dumps(stored.body),
                content_type=None if stored.body is None else "application/json",
            )
            replay.headers["Idempotent-Replayed"] = "true"
            return replay
    if slot is None:
        return await _execute(op, request, platform, path, query_model, body, principal, key, decision)
    # Reserved: this request runs the handler. Whatever ends it without a replayable response (a 5xx, an
    # exception, a cancellation) gives the key up so that a retry really retries (§18).
    stored_ok = False
    try:
        response = await _execute(op, request, platform, path, query_model, body, principal, key, decision)
        if idempotency.storable(response.status):
            payload = response.body if isinstance(response, web.Response) else None
            stored_body = orjson.loads(payload) if isinstance(payload, bytes) and payload else None
            await idempotency.store(platform.read, slot, response.status, stored_body)
            stored_ok = True
        return response
    finally:
        if not stored_ok:
            await asyncio.shield(_release(platform, slot))
