"""Member export and import over HTTP (SPEC §20, §20.1): real app, PostgreSQL, simulator.

The job runner polls rarely here, so a submitted import stays queued while the tests look at it (202, then 409
for a second one); the test then runs the queue itself (`JobRunner.poll`) and checks what the job wrote.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from yarl import URL

from synapse_async.runtime import Runtime
from tests.api_support import base, call, login
from tests.pipeline_support import GUILD, MEMBERS_30, PLAIN, member, pipeline_runtime, query, wait_key
from tests.support import simulator_of, wait_for

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


# --- bodies are read only after the admin check, the rate limit and an import slot (SPEC §18, §20.1) ---------------


class Upload:
    """A raw HTTP upload whose body is sent in two parts: the test decides when (or whether) the rest follows."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rest: bytes) -> None:
        self.reader, self.writer, self.rest = reader, writer, rest

    @classmethod
    async def start(cls, rt: Runtime, headers: dict[str, str], body: bytes, sent: int, **params: str) -> Upload:
        url = URL(base(rt) + G + "/members/import").with_query(params)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        head = f"POST {url.path_qs} HTTP/1.1\r\nHost: {url.host}\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {len(body)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode() + body[:sent])
        await writer.drain()
        return cls(reader, writer, body[sent:])

    async def finish(self) -> None:
        self.writer.write(self.rest)
        await self.writer.drain()

    async def status(self) -> tuple[int, Any]:
        """The answer (guarded against a hang: a server waiting for the rest of the body never answers)."""
        async with asyncio.timeout(20):
            line = await self.reader.readline()
            length = 0
            while (header := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = header.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            body = await self.reader.readexactly(length)
        self.writer.close()
        return int(line.split()[1]), json.loads(body) if body else None


def _doc(user: int, xp: int) -> bytes:
    return json.dumps([{"id": str(user), "xp": xp}]).encode()


async def test_a_non_admin_is_refused_before_the_body_is_read(runtime: Runtime) -> None:
    """The body never completes: only a server that decides before reading it can answer at all."""
    member_session = await login(runtime, U[3])
    for dry_run in ("true", "false"):
        upload = await Upload.start(runtime, member_session.bearer(), b"[" + b" " * 3000 + b"]", 100, dry_run=dry_run)
        status, body = await upload.status()
        assert status == 403 and body["error"]["code"] == "forbidden"


async def test_a_rate_limited_admin_is_refused_before_the_body_is_read(runtime: Runtime) -> None:
    assert runtime.api is not None and runtime.components.db is not None
    token = runtime.api.codec.issue_service("import-limited", [GUILD], ttl=600, now=runtime.api.now())
    async with runtime.components.db.engine.begin() as conn:  # this principal's window is full (§21.4)
        await conn.execute(
            text(
                "INSERT INTO admin_rate_events (principal, occurred_at)"
                " SELECT 'svc:import-limited', clock_timestamp() FROM generate_series(1, :n)"
            ),
            {"n": runtime.config.admin_rate_limit_per_minute},
        )
    partial = await Upload.start(runtime, {"Authorization": f"Bearer {token}"}, _doc(U[4], 10), 5, dry_run="true")
    status, body = await partial.status()
    assert status == 429 and body["error"]["code"] == "rate_limited"


async def test_two_documents_at_a_time_then_429_and_409_before_reading_while_an_import_is_active(
    runtime: Runtime,
) -> None:
    assert runtime.api is not None
    slots = runtime.api.import_slots
    held = [await Upload.start(runtime, admin(runtime), _doc(U[4], 10), 5, dry_run="true") for _ in range(2)]
    await wait_for(lambda: slots.in_use == 2)
    third = await Upload.start(runtime, admin(runtime), _doc(U[4], 10), 5, dry_run="true")
    status, body = await third.status()  # refused with its body still incomplete
    assert status == 429 and body["error"]["details"]["retry_after"] > 0
    busy = await Upload.start(runtime, admin(runtime), _doc(U[4], 10), 5)  # submissions share the two slots
    assert (await busy.status())[0] == 429
    for partial in held:
        await partial.finish()
        status, body = await partial.status()
        assert status == 200 and body["report"]["xp_delta"] == 10
    assert slots.in_use == 0

    queued = await upload(runtime, _doc(U[5], 10))
    assert queued.status == 202, queued.body
    waiting = await Upload.start(runtime, admin(runtime), _doc(U[5], 10), 5)
    status, body = await waiting.status()
    assert status == 409 and body["error"]["code"] == "conflict"
    assert body["error"]["details"] == {"reason": "job_active", "job_id": queued.body["job_id"]}
    assert runtime.jobs is not None
    await runtime.jobs.poll()


async def test_the_payload_is_deleted_when_a_queued_import_is_cancelled(runtime: Runtime) -> None:
    queued = await upload(runtime, _doc(U[6], 10))
    assert queued.status == 202, queued.body
    job_id = queued.body["job_id"]
    stored = "SELECT count(*) AS n FROM job_payloads WHERE job_id = CAST(:j AS uuid)"
    assert (await query(runtime, stored, j=job_id))[0]["n"] == 1
    cancel = await call("POST", base(runtime) + G + f"/jobs/{job_id}/cancel", headers=admin(runtime))
    assert cancel.status == 200, cancel.body
    assert (await query(runtime, stored, j=job_id))[0]["n"] == 0


# --- levels survive a migration; users Discord does not have in the guild are not present (issue 26) --------------

_LEVELS = [0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144]
_STRANGER = 999000000000000001  # not in the sandbox guild


def _mee6_player(user: int, level: int) -> dict[str, Any]:
    span = 5 * level * level + 50 * level + 100
    start = sum(5 * n * n + 50 * n + 100 for n in range(level))
    into = span * 2 // 5
    return {"id": str(user), "username": "x", "level": level, "xp": start + into, "detailed_xp": [into, span, 0],
            "message_count": 3}  # fmt: skip


async def test_a_mee6_file_keeps_every_level_and_strangers_are_stored_as_not_present(runtime: Runtime) -> None:
    users = U[8 : 8 + len(_LEVELS)]
    players = [_mee6_player(u, lv) for u, lv in zip(users, _LEVELS, strict=True)] + [_mee6_player(_STRANGER, 21)]
    body = json.dumps({"page": 0, "players": players})
    preview = await upload(runtime, body, dry_run="true", mode="replace")
    assert preview.status == 200, preview.body
    assert preview.body["report"]["levels"] == "keep"  # the default for another bot's export, stated
    changes = {i["user_id"]: i["to"] for i in preview.body["report"]["level_changes"]["items"]}
    assert changes == {str(u): lv for u, lv in zip(users, _LEVELS, strict=True) if lv > 1} | {str(_STRANGER): 21}

    queued = await upload(runtime, body, mode="replace")
    assert queued.status == 202, queued.body
    assert runtime.jobs is not None
    await runtime.jobs.poll()
    for user, level in zip(users, _LEVELS, strict=True):
        m = await member(runtime, user)
        assert m is not None and m["level"] == max(level, 1), (user, level)
        assert m["left_at"] is None and m["display_name"] != str(user)  # a guild member, named as on Discord
    stranger = await member(runtime, _STRANGER)
    assert stranger is not None and stranger["level"] == 21 and stranger["left_at"] is not None
    board = await call("GET", base(runtime) + f"/api/guilds/{GUILD}/leaderboard", params={"page_size": "100"})
    assert board.status == 200, board.body  # §19: members not present are left out
    assert str(_STRANGER) not in {i["user_id"] for i in board.body["items"]}
    assert str(users[-1]) in {i["user_id"] for i in board.body["items"]}
