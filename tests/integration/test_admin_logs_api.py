"""Live-log routes (SPEC §20, §24.3) over real HTTP: the process's real ring fed by the real logging pipeline."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from synapse_async.obs.logging import configure_logging, get_logger, reset_logging
from synapse_async.obs.ring import LogRing
from synapse_async.runtime import Runtime
from synapse_async.sandbox.world import SANDBOX_FIRST_MEMBER_ID, SANDBOX_GUILD_ID, SANDBOX_OWNER_ID
from tests.api_support import Session, base, call, login
from tests.support import running

GUILD = SANDBOX_GUILD_ID
OTHER_GUILD = 4242
SECRET = "log-routes-" + "s" * 40
RING_SIZE = 200
log = get_logger("synapse_async.tests.live_logs")


@pytest.fixture(scope="module")
async def runtime(fresh_database: str) -> AsyncIterator[Runtime]:
    ring = LogRing(RING_SIZE, capture_level="INFO")
    configure_logging(level="WARNING", fmt="json", ring=ring, stream=io.StringIO())
    try:
        async with running(
            fresh_database, JWT_SECRET=SECRET, OPERATOR_USER_IDS=str(SANDBOX_OWNER_ID), PUBLIC_RATE_LIMIT_PER_MINUTE="0"
        ) as rt:
            yield rt
    finally:
        reset_logging()


@pytest.fixture(scope="module")
async def operator(runtime: Runtime) -> Session:
    return await login(runtime, SANDBOX_OWNER_ID)


@pytest.fixture(scope="module")
async def member(runtime: Runtime) -> Session:
    return await login(runtime, SANDBOX_FIRST_MEMBER_ID)


async def get(rt: Runtime, session: Session, path: str, **params: str) -> Any:
    reply = await call("GET", base(rt) + path, headers=session.bearer(), params=params)
    assert reply.status == 200, reply.body
    return reply.body


async def test_guild_logs_show_only_entries_of_that_guild(runtime: Runtime, operator: Session, member: Session) -> None:
    log.info("probe_mine", guild_id=GUILD)
    log.warning("probe_mine_warning", guild_id=GUILD)
    log.info("probe_other", guild_id=OTHER_GUILD)
    log.info("probe_untagged")
    path = f"/api/admin/guilds/{GUILD}/logs"
    body = await get(runtime, operator, path, limit="1000")
    events = [e["event"] for e in body["items"]]
    assert "probe_mine" in events and "probe_mine_warning" in events
    assert "probe_other" not in events and "probe_untagged" not in events
    assert all(e["guild_id"] == str(GUILD) for e in body["items"])
    seqs = [e["seq"] for e in body["items"]]
    assert seqs == sorted(seqs) and body["capture_level"] == "info" and body["last_seq"] >= seqs[-1]

    warnings = await get(runtime, operator, path, level="warning")
    assert [e["event"] for e in warnings["items"]] == ["probe_mine_warning"]
    mine = next(e for e in body["items"] if e["event"] == "probe_mine")
    after = await get(runtime, operator, path, after_seq=str(mine["seq"]), limit="1")
    assert [e["event"] for e in after["items"]] == ["probe_mine_warning"]

    refused = await call("GET", base(runtime) + path, headers=member.bearer())
    assert refused.status == 403
    bad = await call("GET", base(runtime) + path, headers=operator.bearer(), params={"level": "trace", "limit": "1001"})
    assert bad.status == 400 and {d["field"] for d in bad.body["error"]["details"]} == {"level", "limit"}


async def test_operator_logs_filter_and_the_level_changes_at_run_time(
    runtime: Runtime, operator: Session, member: Session
) -> None:
    log.info("probe_for_operator", guild_id=OTHER_GUILD)
    other = await get(runtime, operator, "/api/admin/logs", guild_id=str(OTHER_GUILD), limit="1000")
    assert "probe_for_operator" in [e["event"] for e in other["items"]]
    assert all(e["guild_id"] == str(OTHER_GUILD) for e in other["items"])
    by_logger = await get(runtime, operator, "/api/admin/logs", logger="synapse_async.tests", limit="1000")
    assert by_logger["items"] and all(e["logger"] == "synapse_async.tests.live_logs" for e in by_logger["items"])

    for method, path, body in (("GET", "/api/admin/logs", None), ("PUT", "/api/admin/logs/level", {"level": "debug"})):
        refused = await call(method, base(runtime) + path, headers=member.bearer(), json=body)
        assert refused.status == 403, refused.body  # an admin of nothing here, and no operator
    bad = await call("PUT", base(runtime) + "/api/admin/logs/level", headers=operator.bearer(), json={"level": "trace"})
    assert bad.status == 400 and bad.body["error"]["details"][0]["field"] == "level"

    log.debug("probe_debug_before", guild_id=GUILD)
    changed = await call(
        "PUT", base(runtime) + "/api/admin/logs/level", headers=operator.bearer(), json={"level": "debug"}
    )
    assert changed.status == 200 and changed.body == {"capture_level": "debug"}
    log.debug("probe_debug_after", guild_id=GUILD)
    events = [e["event"] for e in (await get(runtime, operator, "/api/admin/logs", level="debug"))["items"]]
    assert "probe_debug_after" in events and "probe_debug_before" not in events
    assert runtime.components.db is not None
    async with runtime.components.db.engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT actor_id, before, after FROM audit_log WHERE action = 'logs.level'"))
        ).one()
    assert row.before == {"level": "info"} and row.after == {"level": "debug"}
    assert row.actor_id.endswith(str(SANDBOX_OWNER_ID))
    restored = await call(
        "PUT", base(runtime) + "/api/admin/logs/level", headers=operator.bearer(), json={"level": "info"}
    )
    assert restored.status == 200


async def test_anonymous_requests_cannot_flush_a_guilds_entries(runtime: Runtime, operator: Session) -> None:
    """Issue 21 item 6: more anonymous garbage requests than the ring holds leave the guild's entries in place."""
    log.info("probe_before_flood", guild_id=GUILD)
    async with aiohttp.ClientSession() as http:
        for i in range(RING_SIZE + 20):
            async with http.get(base(runtime) + f"/api/nonsense/{i}") as resp:
                assert resp.status == 404
    operator_view = await get(runtime, operator, "/api/admin/logs", limit="1000")
    assert "probe_before_flood" not in [e["event"] for e in operator_view["items"]]  # the operator ring did wrap
    mine = await get(runtime, operator, f"/api/admin/guilds/{GUILD}/logs", limit="1000")
    assert "probe_before_flood" in [e["event"] for e in mine["items"]]


async def test_guild_logs_show_an_error_id_never_the_traceback(runtime: Runtime, operator: Session) -> None:
    try:
        raise RuntimeError("SELECT secret_column FROM other_guild_table")
    except RuntimeError:
        log.exception("probe_failure", guild_id=GUILD, error="RuntimeError: SELECT secret_column")
    mine = await get(runtime, operator, f"/api/admin/guilds/{GUILD}/logs", limit="1000")
    (shown,) = [e for e in mine["items"] if e["event"] == "probe_failure"]
    assert "secret_column" not in str(shown) and "Traceback" not in str(shown)
    assert set(shown["fields"]) >= {"error_id"} and not {"exception", "error"} & set(shown["fields"])
    full = await get(runtime, operator, "/api/admin/logs", guild_id=str(GUILD), limit="1000")
    (resolved,) = [e for e in full["items"] if e["fields"].get("error_id") == shown["fields"]["error_id"]]
    assert resolved["event"] == "probe_failure" and "secret_column" in resolved["fields"]["exception"]
