"""The member import job, its dry run and the export document against a real PostgreSQL (SPEC §20.1, §10.2, §12.4).

The services run on a migrated database with their own `Database`, `ConfigCache` and `LevelEngine` (as in
test_economy.py); jobs are submitted with `submit_import` and their body run through the real handler with the job's
own id, so re-runs are exactly what the runner would do. Each test uses its own guild ids.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from itertools import count
from typing import Any

import pytest

from synapse_async.cache.config_cache import ConfigCache
from synapse_async.db.engine import Database
from synapse_async.imports.formats import DocumentTooLarge
from synapse_async.imports.service import (
    BATCH,
    ImportActive,
    ImportRejected,
    export_members,
    import_handler,
    preview_import,
    submit_import,
)
from synapse_async.jobs.runner import JobContext, JobFailed
from synapse_async.ledger.engine import LevelEngine
from synapse_async.services.audit import Actor

ADMIN = Actor("100000000000000777", "user", "api", request_id="req-import")
U = [300000000000000000 + i for i in range(2000)]
LIMIT = 1 << 24
_guilds = count(920000000000000001)


@dataclass
class Env:
    db: Database
    cache: ConfigCache
    engine: LevelEngine

    async def fetch(self, query: str, *args: Any) -> list[dict[str, Any]]:
        async with self.db.engine.connect() as sa_conn:
            raw = await sa_conn.get_raw_connection()
            return [dict(r) for r in await raw.driver_connection.fetch(query, *args)]

    async def val(self, query: str, *args: Any) -> Any:
        rows = await self.fetch(query, *args)
        return next(iter(rows[0].values())) if rows else None

    async def member(self, guild: int, user: int) -> dict[str, Any]:
        rows = await self.fetch("SELECT * FROM members WHERE guild_id = $1 AND user_id = $2", guild, user)
        assert len(rows) == 1
        return rows[0]

    async def execute(self, query: str, *args: Any) -> None:
        async with self.db.engine.begin() as sa_conn:
            raw = await sa_conn.get_raw_connection()
            await raw.driver_connection.execute(query, *args)


@pytest.fixture(scope="module")
async def env(migrated_database: str) -> AsyncIterator[Env]:
    db = Database(migrated_database, pool_size=4, max_overflow=4, pool_timeout=30, statement_timeout_ms=30000)
    cache = ConfigCache(db.engine)
    await cache.full_reload()
    yield Env(db, cache, LevelEngine())
    await db.dispose()


def as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def doc(value: object) -> bytes:
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


async def run_job(
    env: Env,
    guild: int,
    raw: bytes,
    mode: str = "add",
    *,
    stopping: Callable[[], bool] = lambda: False,
    levels: str | None = None,
) -> tuple[uuid.UUID, dict[str, Any], JobContext]:
    job_id = await submit_import(env.db, guild, raw, mode=mode, actor=ADMIN, max_bytes=LIMIT, levels=levels)
    ctx, result = await rerun(env, guild, job_id, stopping=stopping)
    return job_id, result, ctx


async def rerun(
    env: Env, guild: int, job_id: uuid.UUID, *, stopping: Callable[[], bool] = lambda: False
) -> tuple[JobContext, dict[str, Any]]:
    params = await env.val("SELECT params FROM jobs WHERE job_id = $1", job_id)
    ctx = JobContext(job_id, guild, as_json(params), stopping=stopping)
    result = await import_handler(env.db, env.engine, env.cache, max_bytes=LIMIT)(ctx)
    return ctx, result


async def finish(env: Env, job_id: uuid.UUID) -> None:
    """What the runner does when a job ends, so the guild's next import may be queued."""
    await env.execute("UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE job_id = $1", job_id)


async def counts(env: Env, guild: int) -> dict[str, int]:
    out = {}
    for table in ("members", "reward_journal", "gold_ledger", "member_achievements", "audit_log", "jobs"):
        out[table] = int(await env.val(f"SELECT count(*) FROM {table} WHERE guild_id = $1", guild))
    return out


XP = [10, 130, 1000]  # levels 1, 2 and 10 on the default curve


@pytest.mark.parametrize(
    "build",
    [
        lambda ids: {
            "format": "synapse-members",
            "version": 1,
            "members": [{"user_id": str(u), "xp": x} for u, x in ids],
        },
        lambda ids: [{"user_id": str(u), "xp": x} for u, x in ids],
        lambda ids: {"players": [{"id": str(u), "xp": x, "level": 77, "message_count": 5} for u, x in ids]},
        lambda ids: {"users": {str(u): {"xp": x, "level": 77} for u, x in ids}},
        lambda ids: {"users": [{"id": str(u), "xp": x} for u, x in ids]},
        lambda ids: {"levels": [{"userId": str(u), "xp": x, "messageCount": 5, "level": 77} for u, x in ids]},
        lambda ids: {"data": [{"id": str(u), "exp": x, "level": 77} for u, x in ids]},
        lambda ids: "Rank,User ID,Level,XP\n" + "".join(f"{i},{u},77,{x}\n" for i, (u, x) in enumerate(ids)),
    ],
    ids=["own", "array", "mee6", "polaris-map", "polaris-array", "lurkr", "amari", "csv"],
)
async def test_every_format_imports_xp_and_recomputes_the_level_without_gold(
    env: Env, build: Callable[[list[tuple[int, int]]], object]
) -> None:
    guild = next(_guilds)
    pairs = list(zip(U[:3], XP, strict=True))
    _, result, ctx = await run_job(env, guild, doc(build(pairs)), levels="recompute")  # the input's "level": 77 ignored
    assert result["members_created"] == 3 and result["xp_delta"] == sum(XP) and result["levels"] == "recompute"
    assert ctx.progress == {"done": 3, "total": 3}
    curve = env.cache.guild(guild).curve
    for user, xp in pairs:
        m = await env.member(guild, user)
        assert (m["xp"], m["level"], m["peak_level"], m["gold"]) == (xp, curve.level(xp), curve.level(xp), 0)
        kinds = [r["event_type"] for r in await env.fetch(
            "SELECT event_type FROM reward_journal WHERE guild_id = $1 AND user_id = $2 ORDER BY id", guild, user
        )]  # fmt: skip
        assert kinds == (["import", "level_change"] if curve.level(xp) > 1 else ["import"])
    assert await env.val("SELECT count(*) FROM gold_ledger WHERE guild_id = $1", guild) == 0  # no level-up gold
    assert await env.val("SELECT count(*) FROM season_stats WHERE guild_id = $1", guild) == 0


async def test_a_dry_run_previews_and_writes_nothing(env: Env) -> None:
    guild = next(_guilds)
    await env.execute("INSERT INTO level_role_rewards (guild_id, role_id, level) VALUES ($1, 555, 2)", guild)
    await env.cache.reload("level_role_rewards", guild)
    await env.execute("INSERT INTO members (guild_id, user_id, display_name, xp, gold) VALUES ($1, $2, 'a', 100, 5)",
                      guild, U[0])  # fmt: skip
    before = await counts(env, guild)
    raw = doc([{"id": str(U[0]), "xp": 50, "gold": 3}, {"id": str(U[1]), "xp": 1000}, {"id": "x", "xp": 1}])
    report = await preview_import(env.db, env.cache, guild, raw, mode="add", max_bytes=LIMIT)
    assert await counts(env, guild) == before
    assert report["members_created"] == 1 and report["members_changed"] == 2
    assert (report["xp_delta"], report["gold_delta"]) == (1050, 3)
    assert report["invalid"] == {"count": 1, "items": [{"index": 2, "reason": "id: must be a user id (digits)"}]}
    levels = report["level_changes"]
    assert isinstance(levels, dict) and levels["count"] == 2
    roles = report["level_role_changes"]
    assert roles == {
        "count": 2,
        "items": [
            {"user_id": str(U[0]), "add": ["555"], "remove": []},
            {"user_id": str(U[1]), "add": ["555"], "remove": []},
        ],
    }


async def test_add_adds_and_replace_sets_with_import_ledger_rows(env: Env) -> None:
    guild = next(_guilds)
    await env.execute("INSERT INTO members (guild_id, user_id, display_name, xp, gold) VALUES ($1, $2, 'a', 100, 10)",
                      guild, U[0])  # fmt: skip
    job, _, _ = await run_job(env, guild, doc([{"id": str(U[0]), "xp": 50, "gold": 5}]), "add")
    m = await env.member(guild, U[0])
    assert (m["xp"], m["gold"]) == (150, 15)
    await finish(env, job)
    await run_job(env, guild, doc([{"id": str(U[0]), "xp": 40, "gold": 2}]), "replace")
    m = await env.member(guild, U[0])
    assert (m["xp"], m["gold"]) == (40, 2)
    ledger = await env.fetch(
        "SELECT delta, balance_after, reason FROM gold_ledger WHERE guild_id = $1 ORDER BY id", guild
    )
    assert ledger == [
        {"delta": 5, "balance_after": 15, "reason": "import"},
        {"delta": -13, "balance_after": 2, "reason": "import"},
    ]
    journal = await env.fetch(
        "SELECT xp_delta FROM reward_journal WHERE guild_id = $1 AND event_type = 'import' ORDER BY id", guild
    )
    assert [r["xp_delta"] for r in journal] == [50, -110]


async def test_invalid_or_duplicate_rows_refuse_the_whole_import(env: Env) -> None:
    guild = next(_guilds)
    raw = doc([{"id": str(U[0]), "xp": 5}, {"id": str(U[1]), "xp": -1}, {"id": str(U[0]), "xp": 7}])
    with pytest.raises(ImportRejected) as refused:
        await submit_import(env.db, guild, raw, mode="add", actor=ADMIN, max_bytes=LIMIT)
    assert [r["index"] for r in refused.value.invalid] == [1, 2]
    assert "duplicate of row 0" in str(refused.value.invalid[1]["reason"])
    assert (await counts(env, guild))["jobs"] == 0
    # A payload that holds invalid rows anyway (stored by other means) is refused by the job too, writing nothing.
    job = uuid.uuid4()
    await env.execute(
        "INSERT INTO jobs (job_id, guild_id, kind, params, requested_by)"
        " VALUES ($1, $2, 'import', '{\"mode\": \"add\", \"digest\": \"d\"}', 'svc:test')",
        job, guild,
    )  # fmt: skip
    await env.execute("INSERT INTO job_payloads (job_id, body) VALUES ($1, to_jsonb($2::text))", job, raw.decode())
    with pytest.raises(ImportRejected):
        await rerun(env, guild, job)
    after = await counts(env, guild)
    assert after["members"] == after["reward_journal"] == 0
    audit = await env.fetch("SELECT after FROM audit_log WHERE guild_id = $1", guild)  # the failure is audited
    assert len(audit) == 1 and as_json(audit[0]["after"])["members_changed"] == 0
    assert await env.val("SELECT count(*) FROM job_payloads WHERE job_id = $1", job) == 0
    with pytest.raises(DocumentTooLarge):
        await submit_import(env.db, guild, b"[" + b" " * 100 + b"]", mode="add", actor=ADMIN, max_bytes=50)


async def test_one_import_per_guild_at_a_time(env: Env) -> None:
    guild = next(_guilds)
    first = await submit_import(env.db, guild, doc([]), mode="add", actor=ADMIN, max_bytes=LIMIT)
    with pytest.raises(ImportActive) as active:
        await submit_import(env.db, guild, doc([]), mode="add", actor=ADMIN, max_bytes=LIMIT)
    assert active.value.job_id == first


class _Crash(BaseException):
    """A process dying between batches: no handler code runs after it (unlike a cancellation or shutdown)."""


async def test_a_job_resumed_after_a_crash_never_applies_a_member_twice(env: Env) -> None:
    """SPEC §20.1: journal keys are `import:<job_id>:<user_id>`, so the same job run again skips what it applied."""
    guild = next(_guilds)
    n = BATCH + 100
    raw = doc([{"id": str(u), "xp": 200, "gold": 1} for u in U[:n]])
    batches = 0

    def crash_after_first_batch() -> bool:
        nonlocal batches
        batches += 1
        if batches > 1:
            raise _Crash
        return False

    job_id = await submit_import(env.db, guild, raw, mode="add", actor=ADMIN, max_bytes=LIMIT)
    with pytest.raises(_Crash):
        await rerun(env, guild, job_id, stopping=crash_after_first_batch)
    assert await env.val("SELECT sum(xp) FROM members WHERE guild_id = $1", guild) == 200 * BATCH
    _, result = await rerun(env, guild, job_id)  # the runner's resume: the same job id, its payload still there
    assert result["already_imported"] == BATCH and result["members_changed"] == 100 and result["complete"]
    totals = (await env.fetch("SELECT sum(xp) AS xp, sum(gold) AS gold, count(*) AS n FROM members WHERE guild_id = $1",
                              guild))[0]  # fmt: skip
    assert (totals["xp"], totals["gold"], totals["n"]) == (200 * n, n, n)
    keys = await env.fetch(
        "SELECT idempotency_key FROM reward_journal WHERE guild_id = $1 AND event_type = 'import'", guild
    )
    assert sorted(r["idempotency_key"] for r in keys) == sorted(f"import:{job_id}:{u}" for u in U[:n])


async def test_every_job_is_its_own_import_add_twice_adds_twice_and_replace_sets_again(env: Env) -> None:
    """Re-importing the same file is a new import (SPEC §20.1), never a silent no-op reported as success."""
    guild = next(_guilds)
    user = str(U[0])
    first, once, _ = await run_job(env, guild, doc([{"id": user, "xp": 100, "gold": 2}]), "add")
    await finish(env, first)
    second, twice, _ = await run_job(env, guild, doc([{"id": user, "xp": 100, "gold": 2}]), "add")
    await finish(env, second)
    assert once["members_changed"] == twice["members_changed"] == 1 and twice["already_imported"] == 0
    m = await env.member(guild, U[0])
    assert (m["xp"], m["gold"]) == (200, 4)
    for xp in (100, 300, 100):
        job, _, _ = await run_job(env, guild, doc([{"id": user, "xp": xp}]), "replace")
        await finish(env, job)
        assert (await env.member(guild, U[0]))["xp"] == xp


async def test_a_cancelled_job_audits_what_it_applied_syncs_roles_and_drops_its_payload(env: Env) -> None:
    guild = next(_guilds)
    n = BATCH + 100
    raw = doc([{"id": str(u), "xp": 200} for u in U[:n]])
    batches = 0

    def cancelled_after_first_batch() -> bool:
        nonlocal batches
        batches += 1
        return batches > 1

    job, partial, ctx = await run_job(env, guild, raw, stopping=cancelled_after_first_batch)
    assert partial["members_changed"] == BATCH and partial["complete"] is False
    assert ctx.progress == {"done": BATCH, "total": n}
    audit = await env.fetch("SELECT after FROM audit_log WHERE guild_id = $1 AND action = 'members.import'", guild)
    assert len(audit) == 1
    after = as_json(audit[0]["after"])
    assert (after["members_changed"], after["xp_delta"], after["complete"]) == (BATCH, 200 * BATCH, False)
    kinds = await env.fetch("SELECT kind, status FROM jobs WHERE guild_id = $1", guild)
    assert {"kind": "level_role_sync", "status": "queued"} in kinds
    assert await env.val("SELECT count(*) FROM job_payloads WHERE job_id = $1", job) == 0


async def test_a_job_failing_part_way_reports_and_audits_what_it_applied(env: Env) -> None:
    """A batch that fails for good (here a real database error raised for one member of the second batch)."""
    guild = next(_guilds)
    n = BATCH + 100
    victim = U[BATCH + 50]
    await env.execute(
        f"""
        CREATE FUNCTION import_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.guild_id = {guild} AND NEW.user_id = {victim} THEN RAISE EXCEPTION 'refused for the test'; END IF;
            RETURN NEW;
        END $$
        """
    )
    await env.execute(
        "CREATE TRIGGER import_test_refuse BEFORE UPDATE ON members FOR EACH ROW EXECUTE FUNCTION import_test_refuse()"
    )
    try:
        job_id = await submit_import(env.db, guild, doc([{"id": str(u), "xp": 200} for u in U[:n]]), mode="add",
                                     actor=ADMIN, max_bytes=LIMIT)  # fmt: skip
        with pytest.raises(JobFailed) as failed:
            await rerun(env, guild, job_id)
    finally:
        await env.execute("DROP TRIGGER import_test_refuse ON members")
        await env.execute("DROP FUNCTION import_test_refuse()")
    result = failed.value.result
    assert (result["members_changed"], result["xp_delta"], result["complete"]) == (BATCH, 200 * BATCH, False)
    assert "refused for the test" in result["error"]
    assert await env.val("SELECT sum(xp) FROM members WHERE guild_id = $1", guild) == 200 * BATCH  # batch 2 undone
    audit = await env.fetch("SELECT after FROM audit_log WHERE guild_id = $1 AND action = 'members.import'", guild)
    assert len(audit) == 1 and as_json(audit[0]["after"])["members_changed"] == BATCH
    kinds = await env.fetch("SELECT kind, status FROM jobs WHERE guild_id = $1", guild)
    assert {"kind": "level_role_sync", "status": "queued"} in kinds
    assert await env.val("SELECT count(*) FROM job_payloads WHERE job_id = $1", job_id) == 0


async def test_an_invalid_github_name_refuses_the_document_before_anything_is_written(env: Env) -> None:
    guild = next(_guilds)
    members = [{"user_id": str(u), "xp": 10, "github_username": "fine-name"} for u in U[: BATCH + 10]]
    members[BATCH + 5]["github_username"] = "not--valid"  # in the second batch: the first must not be applied
    raw = doc({"format": "synapse-members", "version": 1, "members": members})
    with pytest.raises(ImportRejected) as refused:
        await submit_import(env.db, guild, raw, mode="add", actor=ADMIN, max_bytes=LIMIT)
    assert [r["index"] for r in refused.value.invalid] == [BATCH + 5]
    assert "github_username" in str(refused.value.invalid[0]["reason"])
    assert await counts(env, guild) == dict.fromkeys(
        ("members", "reward_journal", "gold_ledger", "member_achievements", "audit_log", "jobs"), 0
    )


async def test_the_job_audits_once_queues_a_role_sync_and_drops_its_payload(env: Env) -> None:
    guild = next(_guilds)
    job, _, _ = await run_job(env, guild, doc([{"id": str(U[0]), "xp": 1000}]))
    audit = await env.fetch("SELECT action, target_id, actor_id, after FROM audit_log WHERE guild_id = $1", guild)
    assert len(audit) == 1 and audit[0]["action"] == "members.import" and audit[0]["target_id"] == str(job)
    assert audit[0]["actor_id"] == ADMIN.actor_id
    assert as_json(audit[0]["after"])["members_changed"] == 1
    kinds = await env.fetch("SELECT kind, status FROM jobs WHERE guild_id = $1 ORDER BY created_at", guild)
    assert {"kind": "level_role_sync", "status": "queued"} in kinds
    assert await env.val("SELECT count(*) FROM job_payloads WHERE job_id = $1", job) == 0


async def _template(env: Env, guild: int, name: str, **columns: Any) -> int:
    cols = {"trigger_type": "manual", "trigger_config": "{}", **columns}
    names = ", ".join(cols)
    params = ", ".join(f"${i + 3}" + ("::jsonb" if k == "trigger_config" else "") for i, k in enumerate(cols))
    rows = await env.fetch(
        f"INSERT INTO achievement_templates (guild_id, name, {names}) VALUES ($1, $2, {params}) RETURNING id",
        guild,
        name,
        *cols.values(),
    )
    await env.cache.reload("achievement_templates", guild)
    return int(rows[0]["id"])


async def test_named_and_automatic_achievements_are_earned_without_rewards(env: Env) -> None:
    guild = next(_guilds)
    named = await _template(env, guild, "Veteran", xp_reward=500, gold_reward=50)
    auto = await _template(env, guild, "Level 5", trigger_type="level_reached",
                           trigger_config=json.dumps({"value": 5}), xp_reward=100, gold_reward=10)  # fmt: skip
    raw = doc({
        "format": "synapse-members", "version": 1,
        "members": [{"user_id": str(U[0]), "xp": 1000, "achievements": ["Veteran", "Nobody Has This"]}],
    })  # fmt: skip
    _, result, _ = await run_job(env, guild, raw)
    assert result["achievements_granted"] == 1
    assert result["unknown_achievements"] == [{"index": 0, "user_id": str(U[0]), "name": "Nobody Has This"}]
    badges = await env.fetch(
        "SELECT template_id, source FROM member_achievements WHERE guild_id = $1 ORDER BY template_id", guild
    )
    assert badges == [{"template_id": named, "source": "import"}, {"template_id": auto, "source": "auto"}]
    m = await env.member(guild, U[0])
    assert (m["xp"], m["gold"]) == (1000, 0)  # neither badge paid
    counts_ = await env.fetch("SELECT earned_count FROM achievement_templates WHERE guild_id = $1 ORDER BY id", guild)
    assert [r["earned_count"] for r in counts_] == [1, 1]


async def test_export_then_import_into_a_fresh_guild_reproduces_the_members(env: Env) -> None:
    source, target = next(_guilds), next(_guilds)
    for guild in (source, target):
        await _template(env, guild, "Founder")
    src_template = await env.val("SELECT id FROM achievement_templates WHERE guild_id = $1", source)
    for i, user in enumerate(U[:3]):
        await env.execute(
            "INSERT INTO members (guild_id, user_id, display_name, xp, gold, lifetime_stars, github_username, left_at)"
            " VALUES ($1, $2, 'm', $3, $4, $5, $6, CASE WHEN $7 THEN now() END)",
            source, user, 100 * (i + 1), 7 * i, 3 * i, f"gh{i}" if i else None, i == 2,
        )  # fmt: skip
    await env.execute(
        "INSERT INTO member_achievements (guild_id, user_id, template_id, source) VALUES ($1, $2, $3, 'auto')",
        source, U[1], src_template,
    )  # fmt: skip
    exported = await export_members(env.db, source, actor=ADMIN)
    assert exported["format"] == "synapse-members" and exported["guild_id"] == str(source)
    assert [m["user_id"] for m in exported["members"]] == [str(u) for u in U[:3]]
    await run_job(env, target, doc(exported), "replace")
    again = await export_members(env.db, target, actor=ADMIN)
    assert again["members"] == exported["members"]
    actions = await env.fetch("SELECT action FROM audit_log WHERE guild_id = $1", source)
    assert actions == [{"action": "members.export"}]
