"""Event-lake and jobs admin routes (SPEC §20, §15, §23.2) over real HTTP: real app, PostgreSQL, simulator."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from synapse_async.domain.vocabulary import LAKE_EVENT_TYPES
from synapse_async.runtime import Runtime
from synapse_async.sandbox.world import SANDBOX_FIRST_MEMBER_ID, SANDBOX_GUILD_ID
from tests.api_support import base, call, login
from tests.support import running, simulator_of, wait_for

GUILD = SANDBOX_GUILD_ID
LAKE = f"/api/admin/guilds/{GUILD}/event-lake"
JOBS = f"/api/admin/guilds/{GUILD}/jobs"
ALICE = SANDBOX_FIRST_MEMBER_ID
SECRET = "lake-routes-" + "s" * 40


@pytest.fixture(scope="module")
async def runtime(fresh_database: str) -> AsyncIterator[Runtime]:
    # The job runner polls rarely here, so requested jobs stay queued while the tests look at them.
    async with running(
        fresh_database, JWT_SECRET=SECRET, JOB_POLL_SECONDS="3600", PUBLIC_RATE_LIMIT_PER_MINUTE="0"
    ) as rt:
        yield rt


def admin(rt: Runtime) -> dict[str, str]:
    assert rt.api is not None
    token = rt.api.codec.issue_service("lake-tests", [GUILD], ttl=600, now=rt.api.now())
    return {"Authorization": f"Bearer {token}"}


async def get(rt: Runtime, path: str, **params: Any) -> Any:
    reply = await call("GET", base(rt) + path, headers=admin(rt), params=params)
    assert reply.status == 200, reply.body
    return reply.body


async def test_members_are_refused_and_unknown_guilds_are_404(runtime: Runtime) -> None:
    member = await login(runtime, ALICE)
    refused = await call("GET", base(runtime) + LAKE + "/events", headers=member.bearer())
    assert refused.status == 403
    missing = await call("GET", base(runtime) + "/api/admin/guilds/123/event-lake/events", headers=admin(runtime))
    assert missing.status == 404  # the bot does not serve that guild: unknown, whoever asks


async def test_events_newest_first_with_filters_and_field_errors(runtime: Runtime) -> None:
    sim = simulator_of(runtime)
    for text_ in ("first words", "second words", "third words"):
        await sim.message(ALICE, "general", text_)

    async def three() -> bool:
        body = await get(runtime, LAKE + "/events", event_type="message_create", user_id=str(ALICE))
        return bool(body["total"] == 3)

    await wait_for(three)
    page = await get(runtime, LAKE + "/events", event_type="message_create", page_size="2")
    assert page["total"] == 3 and page["total_capped"] is False and len(page["items"]) == 2
    first, second = page["items"]
    assert first["occurred_at"] >= second["occurred_at"] and first["id"] > second["id"]
    assert first["user_id"] == str(ALICE) and "words" not in str(page)  # never the message text

    bad = await call(
        "GET", base(runtime) + LAKE + "/events", headers=admin(runtime),
        params={"event_type": "message_sent", "since": "2026-01-01T00:00:00", "page": "0"},
    )  # fmt: skip
    assert bad.status == 400 and bad.body["error"]["code"] == "validation_error"
    assert {d["field"] for d in bad.body["error"]["details"]} == {"event_type", "since", "page"}


async def test_events_pages_go_up_to_200_and_query_integers_are_literals(runtime: Runtime) -> None:
    """SPEC §18: `page_size` 1–100, lake events up to 200; `page=1.0` and `page=1e2` are not integers (400)."""
    page = await get(runtime, LAKE + "/events", page_size="200")
    assert page["page_size"] == 200
    url = base(runtime) + LAKE + "/events"
    over = await call("GET", url, headers=admin(runtime), params={"page_size": "201"})
    assert over.status == 400 and over.body["error"]["details"][0]["field"] == "page_size"
    for value in ("1.0", "1e2", "+1", "1_0"):
        bad = await call("GET", url, headers=admin(runtime), params={"page": value})
        assert bad.status == 400, (value, bad.body)
        problems = [(d["field"], d["problem"]) for d in bad.body["error"]["details"]]
        assert problems == [("page", "invalid_type")], value


async def test_data_sources_put_is_atomic_audited_and_reaches_the_cache(runtime: Runtime) -> None:
    listed = await get(runtime, LAKE + "/data-sources")
    assert [s["event_type"] for s in listed["items"]] == list(LAKE_EVENT_TYPES)
    assert all(s["enabled"] and s["label"] and s["description"] for s in listed["items"])

    bad = await call(
        "PUT", base(runtime) + LAKE + "/data-sources", headers=admin(runtime),
        json={"sources": {"reaction_add": False, "bogus": True}},
    )  # fmt: skip
    assert bad.status == 400
    assert (await get(runtime, LAKE + "/data-sources"))["items"][2]["enabled"] is True  # nothing written

    done = await call(
        "PUT", base(runtime) + LAKE + "/data-sources", headers=admin(runtime), json={"sources": {"reaction_add": False}}
    )
    assert done.status == 200, done.body
    assert {s["event_type"]: s["enabled"] for s in done.body["items"]}["reaction_add"] is False
    cache = runtime.components.cache
    await wait_for(lambda: cache.settings(GUILD).bool("lake.source.reaction_add") is False)
    # SPEC §22: one audit row per changed key, action `data_sources.update`, with the value before and after;
    # the refused request wrote none, and writing the value a key already has is no change (no row either).
    same = await call(
        "PUT", base(runtime) + LAKE + "/data-sources", headers=admin(runtime), json={"sources": {"reaction_add": False}}
    )
    assert same.status == 200, same.body
    async with runtime.components.db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT actor_id, via, action, target_id, before->'value' AS was, after->'value' AS now"
                    " FROM audit_log WHERE guild_id = :g AND target_id LIKE 'lake.source.%' ORDER BY id"
                ),
                {"g": GUILD},
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("svc:lake-tests", "api", "data_sources.update", "lake.source.reaction_add", True, False)
    ]


async def test_health_storage_and_counters(runtime: Runtime) -> None:
    health = await get(runtime, LAKE + "/health", days="3")
    assert health["total_events"] >= 3 and len(health["daily"]) == 3
    assert health["by_type"]["message_create"] >= 3 and health["last_retention"] is None
    storage = await get(runtime, LAKE + "/storage")
    assert storage["rows"] == health["total_events"] and storage["avg_row_bytes"] > 0
    counters = await get(runtime, LAKE + "/counters", event_type="message_create", period="lifetime")
    counts = [c["count"] for c in counters["items"]]
    assert counts == sorted(counts, reverse=True) and counts[0] >= 3
    bad = await call("GET", base(runtime) + LAKE + "/counters", headers=admin(runtime), params={"period": "week:1"})
    assert bad.status == 400 and bad.body["error"]["details"][0]["field"] == "period"
    too_many = await call("GET", base(runtime) + LAKE + "/health", headers=admin(runtime), params={"days": "91"})
    assert too_many.status == 400


async def test_lake_jobs_are_202_then_409_while_active_and_cancellable(runtime: Runtime) -> None:
    url = base(runtime) + LAKE
    queued = await call("POST", url + "/retention", headers=admin(runtime), json={"days": 30})
    assert queued.status == 202, queued.body
    job = queued.body
    assert (job["kind"], job["status"], job["params"]) == ("retention", "queued", {"days": 30})

    # SPEC §18: every 409 is `conflict` with `details.reason`; §22: a job request is audited as `job.start`.
    again = await call("POST", url + "/retention", headers=admin(runtime), json={})
    assert again.status == 409 and again.body["error"]["code"] == "conflict"
    assert again.body["error"]["details"] == {"reason": "job_active", "job_id": job["job_id"]}
    async with runtime.components.db.engine.connect() as conn:
        started = (
            (await conn.execute(text("SELECT action FROM audit_log WHERE target_id = :t"), {"t": job["job_id"]}))
            .scalars()
            .all()
        )
    assert started == ["job.start"]
    for path, body in (("/backfill", {}), ("/reconciliation", {"days": 3}), ("/retention", {"days": 0})):
        rejected = await call("POST", url + path, headers=admin(runtime), json=body)
        assert rejected.status == 400, (path, rejected.body)

    backfill = await call("POST", url + "/backfill", headers=admin(runtime), json={"dry_run": True})
    assert backfill.status == 202 and backfill.body["params"] == {"dry_run": True}

    listed = await get(runtime, JOBS, kind="retention")
    assert [j["job_id"] for j in listed["items"]] == [job["job_id"]] and listed["total"] == 1
    assert (await get(runtime, f"{JOBS}/{job['job_id']}"))["status"] == "queued"
    cancelled = await call("POST", base(runtime) + f"{JOBS}/{job['job_id']}/cancel", headers=admin(runtime))
    assert cancelled.status == 200 and cancelled.body["status"] == "cancelled"
    assert (await get(runtime, JOBS, status="cancelled"))["total"] == 1

    unknown = await call("GET", base(runtime) + f"{JOBS}/{uuid.uuid4()}", headers=admin(runtime))
    assert unknown.status == 404
    malformed = await call("GET", base(runtime) + f"{JOBS}/not-a-uuid", headers=admin(runtime))
    assert malformed.status == 400

    after = await call("POST", url + "/retention", headers=admin(runtime), json={})
    assert after.status == 202  # the cancelled job no longer blocks its kind
