"""Member export and import over HTTP (SPEC §20, §20.1): real app, PostgreSQL, simulator.

The job runner polls rarely here, so a submitted import stays queued while the tests look at it (202, then 409
for a second one); the test then runs the queue itself (`JobRunner.poll`) and checks what the job wrote.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from synapse_async.runtime import Runtime
from tests.api_support import base, call, login
from tests.pipeline_support import GUILD, MEMBERS_30, PLAIN, member, pipeline_runtime, query, wait_key
from tests.support import simulator_of

G = f"/api/admin/guilds/{GUILD}"
U = MEMBERS_30
LIMIT = 4096


@pytest.fixture(scope="module")
async def runtime(fresh_database: str) -> AsyncIterator[Runtime]:
    async with pipeline_runtime(
        fresh_database, 30, JOB_POLL_SECONDS="3600", IMPORT_MAX_BYTES=str(LIMIT), ADMIN_RATE_LIMIT_PER_MINUTE="10000"
    ) as rt:
        sim = simulator_of(rt)
        for user in U[:3]:
            message_id = int(await sim.message(user, "general", PLAIN))
            await wait_key(rt, f"msg:{message_id}")
        yield rt


def admin(rt: Runtime) -> dict[str, str]:
    assert rt.api is not None
    token = rt.api.codec.issue_service("import-tests", [GUILD], ttl=600, now=rt.api.now())
    return {"Authorization": f"Bearer {token}"}


async def upload(rt: Runtime, body: bytes | str, content_type: str = "application/json", **params: str) -> Any:
    headers = {**admin(rt), "Content-Type": content_type}
    raw = body.encode() if isinstance(body, str) else body
    return await call("POST", base(rt) + G + "/members/import", headers=headers, data=raw, params=params)


async def test_members_are_refused_and_unknown_guilds_are_404(runtime: Runtime) -> None:
    member_session = await login(runtime, U[0])
    for method, path, body in (("GET", "/members/export", None), ("POST", "/members/import", b"[]")):
        refused = await call(method, base(runtime) + G + path, headers=member_session.bearer(), data=body)
        assert refused.status == 403, path
    owner = await login(runtime, 100000000000000010)
    missing = await call("GET", base(runtime) + "/api/admin/guilds/123/members/export", headers=owner.bearer())
    assert missing.status == 404


async def test_export_is_our_document_and_is_audited(runtime: Runtime) -> None:
    reply = await call("GET", base(runtime) + G + "/members/export", headers=admin(runtime))
    assert reply.status == 200, reply.body
    doc = reply.body
    assert (doc["format"], doc["version"], doc["guild_id"]) == ("synapse-members", 1, str(GUILD))
    by_id = {m["user_id"]: m for m in doc["members"]}
    alice = await member(runtime, U[0])
    assert alice is not None and by_id[str(U[0])]["xp"] == alice["xp"] == 15
    audited = await query(runtime, "SELECT after FROM audit_log WHERE guild_id = :g AND action = 'members.export'")
    assert audited and audited[-1]["after"]["members"] == len(doc["members"])


async def test_a_cookie_session_exports_only_with_the_csrf_header(runtime: Runtime) -> None:
    """Issue 21 item 6: the export is a GET with an effect (an audit row), so a prefetch or a cross-site link,
    which cannot add headers, must not trigger it; a Bearer client (no ambient credential) needs no header."""
    sql = "SELECT count(*) AS n FROM audit_log WHERE guild_id = :g AND action = 'members.export'"
    owner = await login(runtime, 100000000000000010)
    url = base(runtime) + G + "/members/export"
    before = (await query(runtime, sql))[0]["n"]
    prefetch = await call("GET", url, headers=owner.cookie_headers(csrf=False))
    assert prefetch.status == 403 and prefetch.body["error"]["code"] == "csrf_failed"
    assert (await query(runtime, sql))[0]["n"] == before  # refused before anything was audited
    with_header = await call("GET", url, headers=owner.cookie_headers())
    bearer = await call("GET", url, headers=owner.bearer())
    assert with_header.status == 200 and bearer.status == 200
    assert (await query(runtime, sql))[0]["n"] == before + 2


async def test_dry_run_previews_and_writes_nothing(runtime: Runtime) -> None:
    before = await member(runtime, U[1])
    assert before is not None
    body = json.dumps([{"id": str(U[1]), "xp": 500, "gold": 7}, {"user_id": str(U[20]), "xp": 40}])
    reply = await upload(runtime, body, dry_run="true", mode="add")
    assert reply.status == 200, reply.body
    assert reply.body["status"] == "dry_run" and reply.body["job_id"] is None
    report = reply.body["report"]
    assert (report["mode"], report["invalid"]["count"], report["xp_delta"], report["gold_delta"]) == ("add", 0, 540, 7)
    assert (report["members_created"], report["members_changed"]) == (1, 2)  # changed counts created ones
    after = await member(runtime, U[1])
    assert after is not None and (after["xp"], after["gold"]) == (before["xp"], before["gold"])
    assert await query(runtime, "SELECT 1 FROM jobs WHERE guild_id = :g AND kind = 'import'") == []


async def test_bad_documents_are_400_with_rows_or_fields_and_oversized_is_413(runtime: Runtime) -> None:
    rows = json.dumps([{"id": str(U[1]), "xp": 5}, {"id": "not-an-id", "xp": 5}, {"id": str(U[1]), "xp": 1}])
    rejected = await upload(runtime, rows)
    assert rejected.status == 400, rejected.body
    assert {d["field"] for d in rejected.body["error"]["details"]} >= {"body.1"}
    shape = await upload(runtime, json.dumps({"what": "ever"}))
    assert shape.status == 400 and shape.body["error"]["details"][0]["field"]
    mode = await upload(runtime, "[]", mode="merge")
    assert mode.status == 400 and {d["field"] for d in mode.body["error"]["details"]} == {"mode"}
    big = await upload(runtime, json.dumps([{"id": str(U[1]), "xp": 1}] * 200))
    assert big.status == 413
    assert await query(runtime, "SELECT 1 FROM jobs WHERE guild_id = :g AND kind = 'import'") == []


async def test_csv_import_is_a_job_409_while_active_then_applied_and_audited(runtime: Runtime) -> None:
    before = await member(runtime, U[2])
    assert before is not None
    csv_body = f"user_id,xp,gold\n{U[2]},1000,25\n{U[25]},300,0\n"
    queued = await upload(runtime, csv_body, "text/csv", mode="add")
    assert queued.status == 202, queued.body
    job_id = queued.body["job_id"]
    assert (queued.body["kind"], queued.body["status"]) == ("import", "queued")
    again = await upload(runtime, csv_body, "text/csv", mode="add")
    assert again.status == 409 and again.body["error"]["details"]["job_id"] == job_id

    assert runtime.jobs is not None
    await runtime.jobs.poll()
    (job,) = await query(runtime, "SELECT status FROM jobs WHERE job_id = CAST(:j AS uuid)", j=job_id)
    assert job["status"] == "succeeded"
    after = await member(runtime, U[2])
    created = await member(runtime, U[25])
    assert after is not None and created is not None
    assert (after["xp"], after["gold"]) == (before["xp"] + 1000, before["gold"] + 25)
    assert created["xp"] == 300
    audited = await query(
        runtime, "SELECT actor_id, via FROM audit_log WHERE guild_id = :g AND action = 'members.import'"
    )
    assert audited and audited[-1]["actor_id"] == "svc:import-tests" and audited[-1]["via"] == "api"
