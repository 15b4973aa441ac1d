"""Issue 22's API contract rules over real HTTP (SPEC §18, §12.2, §20, RFC 9110) and in the OpenAPI document.

Every 409 is `conflict` with `details.reason`; an operation whose body has only optional fields accepts a request
without one; an `event_count` achievement whose lake source is off carries a toggle warning; a 405 names the
allowed methods; and the document states the limits the server enforces (snowflake range, path ids, the settings
keys, optional bodies, the lake's page size), so a client generated from it sends nothing the server refuses.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from synapse_async.api.routes import openapi_document
from synapse_async.runtime import Runtime
from synapse_async.sandbox import SANDBOX_FIRST_MEMBER_ID, SANDBOX_GUILD_ID
from synapse_async.settings import REGISTRY
from tests.api_support import Reply, base, call
from tests.support import running, wait_for

GUILD = SANDBOX_GUILD_ID
ADMIN = f"/api/admin/guilds/{GUILD}"
ALICE = SANDBOX_FIRST_MEMBER_ID


@pytest.fixture(scope="module")
async def runtime(fresh_database: str) -> AsyncIterator[Runtime]:
    async with running(
        fresh_database, JOB_POLL_SECONDS="3600", PUBLIC_RATE_LIMIT_PER_MINUTE="0", ADMIN_RATE_LIMIT_PER_MINUTE="1000"
    ) as rt:
        yield rt


def _headers(rt: Runtime, name: str = "contract") -> dict[str, str]:
    assert rt.api is not None
    token = rt.api.codec.issue_service(name, [GUILD], ttl=600, now=rt.api.now())
    return {"Authorization": f"Bearer {token}"}


async def _do(rt: Runtime, method: str, path: str, **kw: Any) -> Reply:
    return await call(method, base(rt) + ADMIN + path, headers={**_headers(rt), **kw.pop("headers", {})}, **kw)


def _conflict(reply: Reply, reason: str) -> None:
    assert reply.status == 409, reply.body
    error = reply.body["error"]
    assert error["code"] == "conflict" and error["details"]["reason"] == reason, error


# ------------------------------------------------------------------------------------------------------ §18 409


async def test_every_409_is_conflict_with_the_clash_in_details_reason(runtime: Runtime) -> None:
    created = await _do(runtime, "POST", "/achievement-categories", json={"name": "Unique"})
    assert created.status == 201, created.body
    _conflict(await _do(runtime, "POST", "/achievement-categories", json={"name": "Unique"}), "name_taken")

    started = await _do(runtime, "POST", "/seasons", json={"name": "Spring", "days": 30})
    assert started.status == 201, started.body
    _conflict(await _do(runtime, "POST", "/seasons", json={"name": "Summer", "days": 30}), "active_exists")

    sim, pipeline = runtime.simulator, runtime.pipeline
    assert sim is not None and pipeline is not None
    await sim.message(ALICE, sim.channel_id("general"), "hello, so that the member row exists")
    await pipeline.wait_idle()
    badge = await _do(runtime, "POST", "/achievements", json={"name": "Welcome", "trigger_type": "manual"})
    assert badge.status == 201, badge.body
    grant = f"/achievements/{badge.body['id']}/grant"
    assert (await _do(runtime, "POST", grant, json={"user_id": str(ALICE)})).status == 200
    _conflict(await _do(runtime, "POST", grant, json={"user_id": str(ALICE)}), "already_earned")
    _conflict(await _do(runtime, "DELETE", f"/achievements/{badge.body['id']}"), "earned")

    key = {"Idempotency-Key": "contract-key-1"}
    first = await _do(runtime, "POST", "/achievement-categories", json={"name": "Keyed"}, headers=key)
    assert first.status == 201, first.body
    other = await _do(runtime, "POST", "/achievement-categories", json={"name": "Other"}, headers=key)
    _conflict(other, "idempotency_key_reused")


# --------------------------------------------------------------------------------------------- §18 empty bodies


async def test_a_body_of_optional_fields_may_be_left_out(runtime: Runtime) -> None:
    """`POST …/level-roles/sync` and `…/event-lake/reconciliation` need no body: a bare POST is the same as `{}`;
    a second sync while the first is queued is the 409 of an active job, and required bodies stay required."""
    sync = await call("POST", base(runtime) + ADMIN + "/level-roles/sync", headers=_headers(runtime))
    assert sync.status == 202, sync.body
    assert sync.body["kind"] == "level_role_sync"
    _conflict(await call("POST", base(runtime) + ADMIN + "/level-roles/sync", headers=_headers(runtime)), "job_active")

    reconcile = await call("POST", base(runtime) + ADMIN + "/event-lake/reconciliation", headers=_headers(runtime))
    assert reconcile.status == 202, reconcile.body

    award = await call("POST", base(runtime) + ADMIN + "/awards", headers=_headers(runtime))
    assert award.status == 400 and award.body["error"]["code"] == "invalid_json", award.body


async def test_a_json_integer_may_be_written_1_0_but_a_fraction_is_refused(runtime: Runtime) -> None:
    """JSON Schema's `integer` admits `3.0` (the same number as 3), so the server does too; `3.5` stays a 400."""
    whole = await _do(runtime, "POST", "/achievement-categories", json={"name": "Whole", "sort_order": 3.0})
    assert whole.status == 201 and whole.body["sort_order"] == 3, whole.body
    half = await _do(runtime, "POST", "/achievement-categories", json={"name": "Half", "sort_order": 3.5})
    assert half.status == 400 and half.body["error"]["details"][0]["field"] == "sort_order", half.body


# ------------------------------------------------------------------------------------------ §12.2 toggle warnings


async def test_an_event_count_badge_whose_lake_source_is_off_says_so(runtime: Runtime) -> None:
    off = await _do(runtime, "PUT", "/event-lake/data-sources", json={"sources": {"voice_join": False}})
    assert off.status == 200, off.body
    cache = runtime.components.require_cache()
    await wait_for(lambda: cache.settings(GUILD).bool("lake.source.voice_join") is False)

    body = {
        "name": "Regular",
        "trigger_type": "event_count",
        "trigger_config": {"event_type": "voice_join", "value": 3},
    }
    created = await _do(runtime, "POST", "/achievements", json=body)
    assert created.status == 201, created.body
    warning = "lake source off: lake.source.voice_join is off, so voice_join events are not counted"
    assert warning in created.body["warnings"]
    listed = await _do(runtime, "GET", "/achievements")
    assert [t["warnings"] for t in listed.body["items"] if t["name"] == "Regular"] == [[warning]]

    counted = {
        "name": "Chatty",
        "trigger_type": "event_count",
        "trigger_config": {"event_type": "message_create", "value": 3},
    }
    other = await _do(runtime, "POST", "/achievements", json=counted)
    assert other.status == 201 and other.body["warnings"] == [], other.body  # its source is on


# ---------------------------------------------------------------------------------------------- RFC 9110 405


async def test_405_lists_the_allowed_methods(runtime: Runtime) -> None:
    trace = await call("TRACE", base(runtime) + "/api/openapi.json")
    assert trace.status == 405 and trace.body["error"]["code"] == "method_not_allowed"
    assert "GET" in trace.headers["Allow"].split(", ")
    # A fixed path under a parameter route (`…/achievements/{achievement_id}`) is that fixed resource's 405.
    patch = await _do(runtime, "PATCH", "/achievements/trigger-types", json={"name": "x"})
    assert patch.status == 405 and patch.headers["Allow"] == "GET", (patch.status, patch.body)
    put = await _do(runtime, "PUT", "/level-roles/sync", json={"level": 2})
    assert put.status == 405 and put.headers["Allow"] == "POST", (put.status, put.body)


# ------------------------------------------------------------------------------------------- the document


def _operation(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = doc["paths"][path][method]
    return operation


def _param(operation: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [p["schema"] for p in operation["parameters"] if p["name"] == name]
    return found


def test_the_document_states_what_the_server_enforces() -> None:
    doc = openapi_document()
    guild = "/api/admin/guilds/{guild_id}"

    # Snowflakes: 1 … 2^63 − 1 as text (at most 20 digits) or as an integer.
    snowflake = _param(_operation(doc, "get", guild + "/members/{user_id}"), "user_id")
    pattern = re.compile(snowflake["pattern"])
    assert all(pattern.fullmatch(v) for v in ("1", "0001", str(2**63 - 1), "100000000000000001"))
    assert not any(pattern.fullmatch(v) for v in ("0", "000", str(2**63), "1" * 21, "1.0", "-1", "１"))

    # Database ids in paths: the same digit strings (a URL has no integers), `1.0` and `0` excluded.
    path_id = _param(_operation(doc, "get", guild + "/achievements/{achievement_id}"), "achievement_id")
    assert path_id["pattern"] == snowflake["pattern"]

    # Settings: only known keys, each with its type and bounds.
    patch = _operation(doc, "patch", guild + "/settings")["requestBody"]["content"]["application/json"]["schema"]
    values = doc["components"]["schemas"][patch["$ref"].rsplit("/", 1)[1]]["properties"]["values"]
    assert values["additionalProperties"] is False and set(values["properties"]) == set(REGISTRY)
    cost = values["properties"]["economy.coffee_cost"]
    assert cost["type"] == "integer" and cost["minimum"] == REGISTRY["economy.coffee_cost"].min

    # A body of optional fields is optional; a required one is required.
    assert _operation(doc, "post", guild + "/level-roles/sync")["requestBody"]["required"] is False
    assert _operation(doc, "post", guild + "/awards")["requestBody"]["required"] is True

    # Lake events page up to 200, other lists up to 100; `next` is a local path.
    assert _param(_operation(doc, "get", guild + "/event-lake/events"), "page_size")["maximum"] == 200
    assert _param(_operation(doc, "get", guild + "/members"), "page_size")["maximum"] == 100
    next_path = re.compile(_param(_operation(doc, "get", "/api/auth/login"), "next")["pattern"])
    assert next_path.fullmatch("/admin?x=1") and not any(next_path.fullmatch(v) for v in ("//evil", "x", "/\\x"))
