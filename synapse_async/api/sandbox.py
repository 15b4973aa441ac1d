"""Sandbox control endpoints (SPEC §3.5): inject activity into the local Discord simulator over HTTP.

Served only in sandbox mode, only to loopback clients (`_simulator` says what that takes), without auth. Each
call changes the simulated world and dispatches the gateway events Discord would send; the bot then receives them
through the real hikari client, exactly like real activity. Bodies are strictly validated like every other
endpoint (snowflakes as strings).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from synapse_async.api.body import read_json
from synapse_async.api.clients import peer_address
from synapse_async.api.errors import ApiError, FieldProblem, parse_snowflake
from synapse_async.api.keys import COMPONENTS

routes = web.RouteTableDef()


_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
_FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def _is_loopback_host(host: str) -> bool:
    """`localhost`, `127.0.0.0/8` or `::1` (with or without a port), as in a `Host` header or an origin."""
    if host.startswith("["):
        name = host[1:].partition("]")[0]
    else:
        name = host.rpartition(":")[0] if host.count(":") == 1 else host
    if name.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _refused(why: str) -> ApiError:
    return ApiError(403, "forbidden", f"Sandbox endpoints answer only local clients: {why}.")


def _simulator(request: web.Request) -> Any:
    """The simulator, if this request really comes from this machine and was meant for it.

    Three independent checks, because each closes a different hole: the socket peer must be a loopback address
    (a missing peer is not "local"); no forwarding header may be present (a reverse proxy on this host makes
    remote clients look local); and the `Host` (plus `Origin`, when a browser sends one) must name loopback, so a
    web page whose domain is re-bound to 127.0.0.1 (DNS rebinding) cannot read `/sandbox/state`. POST bodies
    must also be `application/json` (`read_json`), which a page cannot send cross-origin without a preflight.
    """
    sim = request.app[COMPONENTS].simulator
    if sim is None:
        raise ApiError.not_found()
    peer = peer_address(request)
    if peer is None or not peer.is_loopback:
        raise _refused("the connection is not from a loopback address")
    if any(h in request.headers for h in _FORWARDING_HEADERS):
        raise _refused("the request came through a proxy")
    if not _is_loopback_host(request.headers.get("Host", "")):
        raise _refused("the Host header must name localhost or a loopback address")
    origin = request.headers.get("Origin")
    if origin is not None and not _is_loopback_host(urlsplit(origin).netloc):
        raise _refused("the Origin is not local")
    return sim


async def _body(request: web.Request, fields: Mapping[str, tuple[type | tuple[type, ...], bool]]) -> dict[str, Any]:
    """Parse a JSON object with exactly the allowed fields; (type(s), required) per field."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError.validation([FieldProblem("body", "invalid_type", "must be a JSON object")])
    problems = [FieldProblem(k, "unknown_field") for k in body if k not in fields]
    for name, (types, required) in fields.items():
        if name not in body:
            if required:
                problems.append(FieldProblem(name, "missing"))
            continue
        value = body[name]
        allowed = types if isinstance(types, tuple) else (types,)
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            problems.append(FieldProblem(name, "invalid_type"))
    if problems:
        raise ApiError.validation(problems)
    return body


def _snowflake(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    return None if value is None else parse_snowflake(value, name)


def _accepted(seqs: Any, **extra: str) -> web.Response:
    """202 with the dispatched gateway sequence number(s)."""
    seq_list = [int(s) for s in (getattr(seqs, "seqs", seqs) or ())]
    return web.json_response({"seq": seq_list[-1] if seq_list else None, "seqs": seq_list, **extra}, status=202)


def _lookup(exc: LookupError) -> ApiError:
    return ApiError.validation([FieldProblem("body", "not_found", str(exc)[:200])])


@routes.post("/sandbox/messages")
async def inject_message(request: web.Request) -> web.Response:
    sim = _simulator(request)
    body = await _body(
        request,
        {
            "user_id": ((str, int), True),
            "channel_id": ((str, int), True),
            "content": (str, False),
            "attachments": (int, False),
            "reply_to": ((str, int, type(None)), False),
        },
    )
    if not 0 <= body.get("attachments", 0) <= 10:
        raise ApiError.validation([FieldProblem("attachments", "out_of_range", "0 to 10")])
    try:
        message_id = await sim.message(
            _snowflake(body, "user_id"),
            _snowflake(body, "channel_id"),
            body.get("content", ""),
            attachments=body.get("attachments", 0),
            reply_to=_snowflake(body, "reply_to"),
        )
    except LookupError as exc:
        raise _lookup(exc) from None
    return _accepted(message_id, message_id=str(int(message_id)))


@routes.post("/sandbox/reactions")
async def inject_reaction(request: web.Request) -> web.Response:
    sim = _simulator(request)
    body = await _body(
        request,
        {
            "user_id": ((str, int), True),
            "message_id": ((str, int), True),
            "emoji": (str, True),
            "remove": (bool, False),
        },
    )
    try:
        seqs = await sim.react(
            _snowflake(body, "user_id"), _snowflake(body, "message_id"), body["emoji"], remove=body.get("remove", False)
        )
    except (LookupError, ValueError) as exc:
        raise _lookup(LookupError(str(exc))) from None
    return _accepted(seqs)


@routes.post("/sandbox/voice")
async def inject_voice(request: web.Request) -> web.Response:
    sim = _simulator(request)
    body = await _body(
        request,
        {
            "user_id": ((str, int), True),
            "channel_id": ((str, int, type(None)), True),
            "self_mute": (bool, False),
            "self_deaf": (bool, False),
        },
    )
    try:
        seqs = await sim.voice(
            _snowflake(body, "user_id"),
            _snowflake(body, "channel_id"),
            self_mute=body.get("self_mute", False),
            self_deaf=body.get("self_deaf", False),
        )
    except LookupError as exc:
        raise _lookup(exc) from None
    return _accepted(seqs)


@routes.post("/sandbox/members")
async def inject_member(request: web.Request) -> web.Response:
    sim = _simulator(request)
    body = await _body(request, {"user_id": ((str, int), True), "action": (str, True)})
    action = body["action"]
    if action not in ("join", "leave"):
        raise ApiError.validation([FieldProblem("action", "not_allowed", "join or leave")])
    user = _snowflake(body, "user_id")
    try:
        seqs = await (sim.join(user) if action == "join" else sim.leave(user))
    except LookupError as exc:
        raise _lookup(exc) from None
    return _accepted(seqs)


@routes.post("/sandbox/commands")
async def invoke_command(request: web.Request) -> web.Response:
    """Use a slash command as a member (e.g. `profile`, `season start`) and return what the bot answered.

    The interaction goes through the simulator's gateway to the real hikari + lightbulb client, exactly like one
    from Discord; the answer is the bot's final response (content, embeds, whether only the member sees it).
    """
    sim = _simulator(request)
    body = await _body(
        request,
        {
            "user_id": ((str, int), True),
            "command": (str, True),
            "options": (dict, False),
            "channel_id": ((str, int), False),
        },
    )
    user = _snowflake(body, "user_id")
    channel = _snowflake(body, "channel_id") or "general"
    options = body.get("options") or {}
    if sim.commands.records(None) or sim.commands.records(sim.default_guild_id):  # the bot has registered them
        problem = sim.commands.invocation_problem(body["command"], options, sim.default_guild_id)
        if problem is not None:
            field = "options" if "option" in problem.split(";", 1)[0] else "command"
            raise ApiError.validation([FieldProblem(field, "not_allowed", problem)])
    try:
        record = await sim.invoke(body["command"], user=user, options=options, channel=channel, timeout=10.0)
    except (LookupError, ValueError) as exc:
        raise _lookup(LookupError(str(exc))) from None
    except TimeoutError:
        raise ApiError(504, "timeout", "The bot did not answer the command within 10 s.") from None
    return web.json_response(
        {
            "content": record.content,
            "embeds": record.embeds,
            "ephemeral": record.ephemeral,
            "deferred": record.deferred,
        }
    )


@routes.get("/sandbox/state")
async def sandbox_state(request: web.Request) -> web.Response:
    return web.json_response(_simulator(request).state())
