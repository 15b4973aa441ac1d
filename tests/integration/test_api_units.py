"""Pure parts of the API platform: tokens, problem codes, PATCH merge, fingerprints, the OpenAPI parameters."""

from __future__ import annotations

import time

import jwt
import pytest
from pydantic import Field, ValidationError

from synapse_async.api.errors import ApiError
from synapse_async.api.idempotency import fingerprint, parse_key, storable
from synapse_async.api.schema import PatchModel, Snowflake, StrictModel, problem_code, problems_of
from synapse_async.auth.tokens import InvalidToken, TokenCodec

SECRET = "unit-test-secret-" + "x1y2z3" * 4


def _codec() -> TokenCodec:
    return TokenCodec(SECRET, issuer="iss-a", audience="aud-a", ttl_seconds=600)


def test_login_tokens_carry_every_claim_and_round_trip() -> None:
    codec = _codec()
    token, claims = codec.issue_login(42, "Ada", [7, 7, 8], now=int(time.time()))
    raw = jwt.decode(token, SECRET, algorithms=["HS256"], audience="aud-a")
    assert {"iss", "aud", "sub", "iat", "exp", "jti", "kind", "name", "csrf", "candidates"} <= set(raw)
    assert raw["candidates"] == ["7", "8"] and raw["exp"] - raw["iat"] == 600
    decoded = codec.decode(token)
    assert decoded == claims and decoded.user_id == 42 and decoded.csrf


def test_service_tokens_are_bounded_and_scoped() -> None:
    codec = _codec()
    token = codec.issue_service("ci", [5], ttl=60, now=int(time.time()))
    claims = codec.decode(token)
    assert claims.sub == "svc:ci" and claims.guilds == frozenset({5}) and claims.user_id is None
    with pytest.raises(ValueError, match="1–3600"):
        codec.issue_service("ci", [5], ttl=3601, now=int(time.time()))


def test_a_token_for_another_issuer_is_refused() -> None:
    other = TokenCodec(SECRET, issuer="iss-b", audience="aud-a", ttl_seconds=600)
    token = other.issue_service("ci", [5], ttl=60, now=int(time.time()))
    with pytest.raises(InvalidToken):
        _codec().decode(token)


def test_problem_codes_form_a_closed_vocabulary() -> None:
    assert problem_code("missing") == "missing"
    assert problem_code("extra_forbidden") == "unknown_field"
    assert problem_code("int_parsing") == "invalid_type"
    assert problem_code("greater_than_equal") == "out_of_range"
    assert problem_code("timezone_aware") == "missing_offset"
    assert problem_code("literal_error") == "not_allowed"
    assert problem_code("something_new") == "invalid_value"


class _Body(StrictModel):
    user_id: Snowflake
    xp: int = Field(ge=0, le=10)


def test_every_problem_is_reported_with_its_path() -> None:
    with pytest.raises(ValidationError) as caught:
        _Body.model_validate_json(b'{"user_id": "x", "xp": 11, "extra": 1}', strict=True)
    problems = {(p["field"], p["problem"]) for p in problems_of(caught.value.errors(), "body")}
    assert problems == {("user_id", "invalid_type"), ("xp", "out_of_range"), ("extra", "unknown_field")}
    ok = _Body.model_validate_json(b'{"user_id": 123, "xp": 1}', strict=True)
    assert ok.model_dump(mode="json") == {"user_id": "123", "xp": 1}


class _Patch(PatchModel):
    name: str | None = None
    reason: str | None = None


def test_patch_models_tell_absent_from_null() -> None:
    assert _Patch.model_validate_json(b'{"name": "x"}').changes() == {"name": "x"}
    assert _Patch.model_validate_json(b'{"reason": null}').changes() == {"reason": None}
    assert _Patch.model_validate_json(b"{}").changes() == {}


def test_idempotency_keys_and_fingerprints() -> None:
    assert parse_key(None) is None and parse_key("abcd-1234") == "abcd-1234"
    for bad in ("short", "x" * 65, "has space!", "ünïcode-key"):
        with pytest.raises(ApiError):
            parse_key(bad)
    assert fingerprint("PATCH", "/a", b"{}") != fingerprint("PATCH", "/a", b"{} ")
    assert fingerprint("PATCH", "/a", b"b") != fingerprint("PATCH", "/ab", b"")  # length-prefixed parts
    assert storable(200) and storable(409) and not storable(429) and not storable(503)


async def test_concurrent_misses_of_one_public_url_share_one_computation() -> None:
    """Real aiohttp app on loopback with one micro-cached route: 20 simultaneous misses run the handler once."""
    import asyncio

    import aiohttp
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from synapse_async.api.contract import PLATFORM, Access, Api, Call, Reply
    from synapse_async.api.dbgate import HttpDatabaseGate
    from synapse_async.api.errors import ApiError
    from synapse_async.api.middleware import errors
    from synapse_async.api.platform import ApiPlatform
    from synapse_async.api.schema import Items, NoParams
    from synapse_async.components import Components, Lifecycle
    from synapse_async.config import load_config

    calls: list[str] = []
    started, release = asyncio.Event(), asyncio.Event()
    blocked = [False]
    api = Api()

    def guard(_call: Call[NoParams, NoParams, None]) -> None:
        if blocked[0]:
            raise ApiError.not_found()

    @api.route("GET", "/api/things", summary="t", tag="t", access=Access.PUBLIC, response=Items[int], guard=guard)
    async def things(call: Call[NoParams, NoParams, None]) -> Reply:
        calls.append(call.request.path_qs)
        started.set()
        await release.wait()  # every request arrives while the first computation is still running
        return Reply(Items[int](items=[len(calls)]))

    app = web.Application(middlewares=[errors])
    config = load_config({"JWT_SECRET": SECRET})
    app[PLATFORM] = ApiPlatform(config, Components(Lifecycle()), HttpDatabaseGate(2, 1.0))
    api.install(app)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:

            async def get() -> tuple[int, object]:
                async with http.get(server.make_url("/api/things")) as resp:
                    return resp.status, await resp.json()

            pending = [asyncio.create_task(get()) for _ in range(20)]
            await started.wait()
            await asyncio.sleep(0.05)  # let the other 19 reach the shared computation
            release.set()
            answers = await asyncio.gather(*pending)
            blocked[0] = True
            async with http.get(server.make_url("/api/things")) as refused:
                assert refused.status == 404  # the guard runs before the (warm) cache
    finally:
        await server.close()
    assert calls == ["/api/things"]
    assert answers == [(200, {"items": [1]})] * 20
