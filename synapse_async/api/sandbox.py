"""Sandbox control endpoints (SPEC §3.5): inject activity into the local Discord simulator over HTTP.

Served only in sandbox mode, only to loopback clients, without auth. Each call changes the simulated world and
dispatches the gateway events Discord would send; the bot then receives them through the real hikari client,
exactly like real activity. Bodies are strictly validated like every other endpoint (snowflakes as strings).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from synapse_async.api.errors import ApiError, FieldProblem
from synapse_async.api.keys import COMPONENTS
from synapse_async.api.middleware import CLIENT_IP

routes = web.RouteTableDef()


def _simulator(request: web.Request) -> Any:
    # The client, not the peer: behind a trusted proxy on loopback, the peer is local but the client may not be.
    remote = request.get(CLIENT_IP) or request.remote or ""
    try:
        loopback = ipaddress.ip_address(remote).is_loopback
    except ValueError:
        loopback = remote == "" or remote.startswith("/")  # a Unix socket is local too
    sim = request.app[COMPONENTS].simulator
    if sim is None or not loopback:
        raise ApiError.not_found()
    return sim


async def _body(request: web.Request, fields: Mapping[str, tuple[type | tuple[type, ...], bool]]) -> dict[str, Any]:
    """Parse a JSON object with exactly the allowed fields; (type(s), required) per field."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
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
    if value is None:
        return None
    text = str(value)
    if isinstance(value, bool) or not text.isdigit() or not 0 < int(text) < 2**63:
        raise ApiError.validation([FieldProblem(name, "invalid_type", "must be a Discord id")])
    return int(text)


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


@routes.get("/sandbox/state")
async def sandbox_state(request: web.Request) -> web.Response:
    return web.json_response(_simulator(request).state())
