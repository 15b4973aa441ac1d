"""SPEC §18 conventions, §21.4 limits and §22 audit through the running app over loopback HTTP.

Validation (every problem at once), the error body, `X-Request-ID`, `Idempotency-Key`, CORS, body limits, the
admin mutation limit under concurrency, the audit write path and `GET …/audit`, the OpenAPI document, the pruner
and `mint-token`. Real PostgreSQL, the simulator and hikari; requests over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from synapse_async.api.pruner import prune
from synapse_async.api.routes import openapi_document
from synapse_async.runtime import Runtime
from synapse_async.sandbox import SANDBOX_GUILD_ID
from tests.api_support import base, call
from tests.support import running

GUILD = SANDBOX_GUILD_ID
SETTINGS = f"/api/admin/guilds/{GUILD}/settings"
AUDIT = f"/api/admin/guilds/{GUILD}/audit"
ORIGIN = "https://app.example"
SECRET = "k" * 20 + "0123456789abcdefXYZ"


@pytest.fixture(scope="module")
async def runtime(fresh_database: str) -> AsyncIterator[Runtime]:
    async with running(
        fresh_database,
        JWT_SECRET=SECRET,
        PUBLIC_RATE_LIMIT_PER_MINUTE="0",
        HTTP_DB_WAIT_SECONDS="30",
        CORS_ORIGINS=ORIGIN,
        HTTP_MAX_BODY_BYTES="4096",
    ) as rt:
        yield rt


def _service(rt: Runtime, name: str, guilds: tuple[int, ...] = (GUILD,)) -> dict[str, str]:
    assert rt.api is not None
    token = rt.api.codec.issue_service(name, list(guilds), ttl=600, now=rt.api.now())
    return {"Authorization": f"Bearer {token}"}


def _cost(value: int) -> dict[str, Any]:
    return {"values": {"economy.coffee_cost": value}}


# --------------------------------------------------------------------------------------------------- validation


async def test_every_problem_of_path_query_and_body_is_reported_at_once(runtime: Runtime) -> None:
    auth = _service(runtime, "validation")
    reply = await call(
        "GET", base(runtime) + AUDIT, params={"page": "0", "page_size": "1000", "bogus": "1"}, headers=auth
    )
    assert reply.status == 400
    problems = {(d["field"], d["problem"]) for d in reply.body["error"]["details"]}
    assert problems == {("page", "out_of_range"), ("page_size", "out_of_range"), ("bogus", "unknown_field")}

    body = {"values": {"economy.coffee_cost": 5}, "extra": True}
    bad_body = await call("PATCH", base(runtime) + SETTINGS, json=body, headers=auth)
    assert bad_body.status == 400
    assert [(d["field"], d["problem"]) for d in bad_body.body["error"]["details"]] == [("extra", "unknown_field")]

    wrong_type = await call("PATCH", base(runtime) + SETTINGS, json={"values": "x"}, headers=auth)
    assert wrong_type.body["error"]["details"][0] == {
        "field": "values",
        "problem": "invalid_type",
        "message": wrong_type.body["error"]["details"][0]["message"],
    }


async def test_query_times_must_carry_an_offset(runtime: Runtime) -> None:
    auth = _service(runtime, "times")
    naive = await call("GET", base(runtime) + AUDIT, params={"since": "2026-01-01T00:00:00"}, headers=auth)
    aware = await call("GET", base(runtime) + AUDIT, params={"since": "2026-01-01T00:00:00+02:00"}, headers=auth)
    assert naive.status == 400 and naive.body["error"]["details"][0]["problem"] == "missing_offset"
    assert aware.status == 200


async def test_inputs_postgresql_cannot_store_or_pydantic_would_misread_are_400(runtime: Runtime) -> None:
    """Found by the fuzzer: a NUL in a body key was a 500 (JSONB refuses U+0000), `until=0.5` a Unix time."""
    auth = _service(runtime, "fuzz-finds")
    nul_body = b'{"values": {"a\\u0000b": 1}}'
    body = await call(
        "PATCH", base(runtime) + SETTINGS, data=nul_body, headers={**auth, "Content-Type": "application/json"}
    )
    query = await call("GET", base(runtime) + AUDIT + "?action=a%00b", headers=auth)
    number = await call("GET", base(runtime) + AUDIT, params={"until": "0.5"}, headers=auth)
    assert body.status == 400 and body.body["error"]["code"] == "invalid_json"
    assert query.status == 400 and query.body["error"]["details"][0]["field"] == "action"
    assert number.status == 400 and number.body["error"]["details"][0]["problem"] == "invalid_format"


async def test_settings_problems_name_the_key_and_write_nothing(runtime: Runtime) -> None:
    auth = _service(runtime, "settings")
    body = {"values": {"economy.coffee_cost": 77, "leaderboard.size": 5000}}
    reply = await call("PATCH", base(runtime) + SETTINGS, json=body, headers=auth)
    assert reply.status == 400
    assert [d["field"] for d in reply.body["error"]["details"]] == ["leaderboard.size"]
    now = await call("GET", base(runtime) + SETTINGS, headers=auth)
    assert {i["key"]: i["value"] for i in now.body["items"]}["economy.coffee_cost"] != 77


async def test_bodies_that_are_not_json_or_too_large(runtime: Runtime) -> None:
    auth = _service(runtime, "bodies")
    url = base(runtime) + SETTINGS
    broken = await call("PATCH", url, data=b"{", headers={**auth, "Content-Type": "application/json"})
    form = await call("PATCH", url, data=b"a=1", headers={**auth, "Content-Type": "text/plain"})
    huge = await call("PATCH", url, json={"values": {"x": "y" * 10_000}}, headers=auth)
    assert broken.status == 400 and broken.body["error"]["code"] == "invalid_json"
    assert form.status == 400 and form.body["error"]["code"] == "invalid_json"
    assert huge.status == 413 and huge.body["error"]["code"] == "payload_too_large"


async def test_request_ids_are_echoed_when_well_formed(runtime: Runtime) -> None:
    good = await call("GET", base(runtime) + "/api/openapi.json", headers={"X-Request-ID": "abc-DEF_123"})
    bad = await call("GET", base(runtime) + "/api/openapi.json", headers={"X-Request-ID": "no spaces allowed"})
    assert good.headers["X-Request-ID"] == "abc-DEF_123"
    assert bad.headers["X-Request-ID"] != "no spaces allowed" and len(bad.headers["X-Request-ID"]) == 32


# --------------------------------------------------------------------------------------------------- idempotency


async def test_idempotency_key_replays_the_first_response_and_refuses_another_body(runtime: Runtime) -> None:
    auth = _service(runtime, "idem")
    url = base(runtime) + SETTINGS
    first = await call("PATCH", url, json=_cost(81), headers={**auth, "Idempotency-Key": "key-00000001"})
    changed = await call("PATCH", url, json=_cost(82), headers=auth)
    again = await call("PATCH", url, json=_cost(81), headers={**auth, "Idempotency-Key": "key-00000001"})
    other = await call("PATCH", url, json=_cost(83), headers={**auth, "Idempotency-Key": "key-00000001"})
    malformed = await call("PATCH", url, json=_cost(84), headers={**auth, "Idempotency-Key": "short"})
    assert first.status == changed.status == again.status == 200
    assert again.body == first.body and again.headers["Idempotent-Replayed"] == "true"
    assert {i["key"]: i["value"] for i in again.body["items"]}["economy.coffee_cost"] == 81
    assert other.status == 409 and other.body["error"]["code"] == "conflict"
    assert malformed.status == 400 and malformed.body["error"]["details"][0]["field"] == "Idempotency-Key"
    # The replay did not write: the stored value is still the later change.
    current = await call("GET", url, headers=auth)
    assert {i["key"]: i["value"] for i in current.body["items"]}["economy.coffee_cost"] == 82
    # Keys belong to their principal: another principal's same key is a first attempt.
    theirs = await call(
        "PATCH", url, json=_cost(85), headers={**_service(runtime, "idem2"), "Idempotency-Key": "key-00000001"}
    )
    assert theirs.status == 200 and "Idempotent-Replayed" not in theirs.headers


async def test_stored_error_responses_are_replayed_too(runtime: Runtime) -> None:
    auth = {**_service(runtime, "idem-err"), "Idempotency-Key": "key-err-0001"}
    body = {"values": {"leaderboard.size": 5000}}
    first = await call("PATCH", base(runtime) + SETTINGS, json=body, headers=auth)
    again = await call("PATCH", base(runtime) + SETTINGS, json=body, headers=auth)
    assert first.status == again.status == 400 and first.body == again.body
    assert again.headers["Idempotent-Replayed"] == "true"


# --------------------------------------------------------------------------------------------------- rate limit


async def test_forty_concurrent_mutations_with_a_limit_of_thirty_admit_exactly_thirty(runtime: Runtime) -> None:
    assert runtime.config.admin_rate_limit_per_minute == 30
    auth = _service(runtime, "burst")
    url = base(runtime) + SETTINGS
    replies = await asyncio.gather(*(call("PATCH", url, json=_cost(100 + i), headers=auth) for i in range(40)))
    statuses = sorted(r.status for r in replies)
    assert statuses == [200] * 30 + [429] * 10
    for reply in replies:
        assert reply.headers["X-RateLimit-Limit"] == "30"
        if reply.status == 429:
            assert int(reply.headers["Retry-After"]) >= 1
            assert reply.body["error"]["details"]["retry_after"] == int(reply.headers["Retry-After"])
    db = runtime.components.require_db()
    async with db.engine.connect() as conn:
        recorded = (
            await conn.execute(text("SELECT count(*) FROM admin_rate_events WHERE principal = 'svc:burst'"))
        ).scalar_one()
    assert recorded == 30  # refused requests are not recorded
    reads = await call("GET", url, headers=auth)
    assert reads.status == 200  # reads are not limited by the mutation limit


# --------------------------------------------------------------------------------------------------- audit


async def test_mutations_are_audited_with_snapshots_ip_and_request_id(runtime: Runtime) -> None:
    auth = _service(runtime, "auditor")
    headers = {**auth, "X-Request-ID": "audit-req-42"}
    changed = await call(
        "PATCH", base(runtime) + SETTINGS, json={"values": {"economy.xp_name": "Points"}}, headers=headers
    )
    assert changed.status == 200
    found = await call(
        "GET", base(runtime) + AUDIT, params={"actor_id": "svc:auditor", "action": "settings.update"}, headers=auth
    )
    assert found.status == 200 and found.body["total"] == 1
    row = found.body["items"][0]
    assert row["target_type"] == "setting" and row["target_id"] == "economy.xp_name"
    assert row["before"]["value"] == "XP" and row["after"]["value"] == "Points"
    assert row["request_id"] == "audit-req-42" and row["client_ip"] == "127.0.0.1"
    assert row["actor_kind"] == "service" and row["via"] == "api" and row["guild_id"] == str(GUILD)
    later = await call("GET", base(runtime) + AUDIT, params={"since": "2999-01-01T00:00:00Z"}, headers=auth)
    assert later.body == {"items": [], "page": 1, "page_size": 25, "total": 0}
    by_target = await call(
        "GET", base(runtime) + AUDIT, params={"target_type": "setting", "target_id": "economy.xp_name"}, headers=auth
    )
    assert [r["actor_id"] for r in by_target.body["items"]] == ["svc:auditor"]


# --------------------------------------------------------------------------------------------------- CORS


async def test_cors_only_for_the_listed_origin(runtime: Runtime) -> None:
    url = base(runtime) + f"/api/guilds/{GUILD}/metrics"
    preflight = {"Access-Control-Request-Method": "PATCH"}
    allowed = await call("OPTIONS", url, headers={"Origin": ORIGIN, **preflight})
    refused = await call("OPTIONS", url, headers={"Origin": "https://evil.example", **preflight})
    simple = await call("GET", url, headers={"Origin": ORIGIN})
    other = await call("GET", url, headers={"Origin": "https://evil.example"})
    assert allowed.status == 204 and allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-CSRF-Token" in allowed.headers["Access-Control-Allow-Headers"]
    assert refused.status == 403 and "Access-Control-Allow-Origin" not in refused.headers
    assert simple.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert simple.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Access-Control-Allow-Origin" not in other.headers


# --------------------------------------------------------------------------------------------------- OpenAPI


async def test_openapi_document_covers_every_api_route_and_matches_the_cli(runtime: Runtime) -> None:
    served = await call("GET", base(runtime) + "/api/openapi.json")
    assert served.status == 200 and served.body["openapi"] == "3.1.0"
    assert served.body == json.loads(json.dumps(openapi_document()))
    assert runtime._runner is not None
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in runtime._runner.app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/") and r.method != "HEAD"
    }
    documented = {(m, p) for p, ops in served.body["paths"].items() for m in ops}
    assert routes == documented
    schemes = served.body["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer" and schemes["cookie"]["in"] == "cookie"
    assert "ErrorBody" in served.body["components"]["schemas"]
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "synapse_async", "export-openapi"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(cli.stdout) == served.body


# --------------------------------------------------------------------------------------------------- pruner and CLI


async def test_pruner_removes_only_what_has_expired(runtime: Runtime) -> None:
    db = runtime.components.require_db()
    seed = (
        "INSERT INTO oauth_states (state, created_at, expires_at) VALUES"
        " ('old-state', now() - interval '1 hour', now() - interval '50 minutes'),"
        " ('new-state', now(), now() + interval '10 minutes')",
        "INSERT INTO revoked_tokens (jti, subject, expires_at) VALUES"
        " (gen_random_uuid(), 'old', now() - interval '1 minute'),"
        " (gen_random_uuid(), 'new', now() + interval '1 hour')",
        "INSERT INTO admin_rate_events (principal, occurred_at) VALUES"
        " ('svc:prune', now() - interval '11 minutes'), ('svc:prune', now())",
    )
    async with db.engine.begin() as conn:
        for sql in seed:
            await conn.execute(text(sql))
    removed = await prune(db.engine)
    assert removed["oauth_states"] >= 1 and removed["revoked_tokens"] >= 1 and removed["admin_rate_events"] >= 1
    async with db.engine.connect() as conn:
        states = set((await conn.execute(text("SELECT state FROM oauth_states"))).scalars())
        subjects = set((await conn.execute(text("SELECT subject FROM revoked_tokens"))).scalars())
        rate = await conn.execute(text("SELECT count(*) FROM admin_rate_events WHERE principal = 'svc:prune'"))
    assert "old-state" not in states and "new-state" in states
    assert "old" not in subjects and "new" in subjects
    assert rate.scalar_one() == 1


async def test_mint_token_prints_a_working_token_and_audits_it(runtime: Runtime, fresh_database: str) -> None:
    env = {**os.environ, "JWT_SECRET": SECRET, "DATABASE_URL": fresh_database, "DISCORD_TOKEN": "x"}
    minted = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "synapse_async", "mint-token", "--guild", str(GUILD), "--name", "ci", "--ttl", "600"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    token = minted.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token
    auth = {"Authorization": f"Bearer {token}"}
    listed = await call("GET", base(runtime) + "/api/admin/guilds", headers=auth)
    assert [g["guild_id"] for g in listed.body["items"]] == [str(GUILD)]
    audit = await call("GET", base(runtime) + AUDIT, params={"action": "token.mint"}, headers=auth)
    assert audit.body["total"] == 1 and audit.body["items"][0]["after"]["sub"] == "svc:ci"
    too_long = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "synapse_async", "mint-token", "--guild", str(GUILD), "--ttl", "7200"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert too_long.returncode != 0 and too_long.stdout == ""
