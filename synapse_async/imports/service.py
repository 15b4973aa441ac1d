"""Member import as an `import` job, its dry run, and the export document (SPEC §20.1, §10.2, §12.4, §13, §23.2).

Submitting validates the whole document (in a worker thread: a 20 MiB document must not hold the loop), then
stores the upload in `job_payloads` (as one JSON string, so JSON and CSV travel alike) and queues the job; only one
import per guild can be queued or running (`ImportActive` carries the active job's id for the 409). The API only
gets here holding one of the process's import slots (`imports/slots.py`), taken before the body was read.

The job reads the payload back, parses it in a worker thread, then applies it in batches of `BATCH` members, each
batch one transaction locking its member rows in user-id order (the pipeline's lock order per member). Per changed
member, all in the batch's transaction: the `import` journal row keyed `import:<job_id>:<user_id>`, the new
balances, an `import` ledger row if gold moved, the named achievements with `source = 'import'` and no rewards,
then the ledger engine's level change with `pay_gold=False` (peak raised, no gold, no announcement) and automatic
achievements evaluated without rewards — the relevel job's path. Season stats are never touched (§11).

Every job is its own import: the same document submitted twice in `add` mode adds twice, as asked, while the same
job run again (after a crash) skips every member its keys show as applied (`already_imported`). However the job
ends — all batches done, cancelled or stopped between batches, or a batch failing for good — one transaction
writes the summarizing `members.import` audit row with the counts applied (`complete` and `error` say how it
ended), queues a `level_role_sync` if any member changed, and deletes the payload; a failure is then re-raised as
`JobFailed` carrying that result, so the job row reports what was applied (migration 0007 also deletes the
payload of a job that ends without its handler: cancelled while queued, or found stale).

A document with invalid rows is refused as a whole before anything is written, at submission (`ImportRejected`,
nothing queued) and again by the job should its payload hold one; a dry run reports them. The dry run reads the
same member state and runs the same `plan_member`, writing nothing at all.
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
from sqlalchemy import text

from synapse_async.cache.config_cache import ConfigCache
from synapse_async.db.engine import Database
from synapse_async.db.faults import BACKGROUND, log_retries, retry_transient
from synapse_async.imports.formats import (
    ImportEntry,
    ImportFormatError,
    ParsedImport,
    SourceFormat,
    decode_text,
    entry_chunks,
    parse_text,
    render_document,
)
from synapse_async.imports.plan import (
    CHANGE_SAMPLE_MAX,
    IMPORT_MODES,
    LEVELS_MODES,
    SAMPLE_MAX,
    ImportMode,
    LevelsMode,
    MemberPlan,
    MemberState,
    PlanTotals,
    plan_member,
)
from synapse_async.jobs.runner import JobContext, JobFailed, JobHandler
from synapse_async.jobs.store import enqueue
from synapse_async.ledger import sql
from synapse_async.ledger.engine import LevelEngine
from synapse_async.ledger.state import Cause, Tx
from synapse_async.rewards.config import GuildConfig, TemplateInfo
from synapse_async.rewards.roles import RoleMode
from synapse_async.services.audit import Actor, record

__all__ = [
    "BATCH",
    "ImportActive",
    "ImportRejected",
    "Presence",
    "active_import",
    "export_members",
    "import_handler",
    "preview_import",
    "submit_import",
]

BATCH = 500
"""Members per import transaction: big enough to amortize round trips, small enough to hold row locks briefly."""
_EXPORT_BATCH = 5000


class ImportActive(Exception):
    """An import of this guild is already queued or running (409 with its id, SPEC §23.2)."""

    def __init__(self, job_id: uuid.UUID) -> None:
        super().__init__(f"an import is already active: {job_id}")
        self.job_id = job_id


class ImportRejected(Exception):
    """The document has invalid rows; nothing was written. `invalid` lists them by index (400)."""

    def __init__(self, invalid: Sequence[Mapping[str, object]], count: int) -> None:
        first = ", ".join(f"#{r['index']} {r['reason']}" for r in invalid[:5])
        super().__init__(f"{count} invalid rows, nothing imported: {first}"[:480])
        self.invalid = list(invalid)
        self.count = count


# --- SQL ---------------------------------------------------------------------------------------------------------

_INSERT_JOB = text(
    """
    INSERT INTO jobs (job_id, guild_id, kind, params, requested_by)
    VALUES (:id, :g, 'import', CAST(:params AS jsonb), :by)
    ON CONFLICT (guild_id, kind) WHERE status IN ('queued', 'running') DO NOTHING
    RETURNING job_id
    """
)
_ACTIVE_JOB = text(
    "SELECT job_id FROM jobs WHERE guild_id = :g AND kind = 'import' AND status IN ('queued', 'running')"
)
_INSERT_PAYLOAD = text("INSERT INTO job_payloads (job_id, body) VALUES (:id, to_jsonb(CAST(:body AS text)))")
_READ_PAYLOAD = text("SELECT body #>> '{}' FROM job_payloads WHERE job_id = :id")
_DELETE_PAYLOAD = text("DELETE FROM job_payloads WHERE job_id = :id")

_STATE_COLUMNS = "m.user_id, m.xp, m.gold, m.lifetime_stars, m.level, m.github_username"
_EARNED_NAMES = """
SELECT ma.user_id, t.name
  FROM member_achievements ma JOIN achievement_templates t ON t.guild_id = ma.guild_id AND t.id = ma.template_id
 WHERE ma.guild_id = $1 AND ma.user_id = ANY($2::bigint[])
"""
_STATES = f"SELECT {_STATE_COLUMNS} FROM members m WHERE m.guild_id = $1 AND m.user_id = ANY($2::bigint[])"
_LOCK_STATES = _STATES + " ORDER BY m.user_id FOR UPDATE"
_DONE_KEYS = "SELECT idempotency_key FROM reward_journal WHERE guild_id = $1 AND idempotency_key = ANY($2::text[])"
_CREATE_MEMBERS = """
INSERT INTO members (guild_id, user_id, display_name, left_at)
SELECT $1, u, coalesce(n, u::text), CASE WHEN l THEN now() END
  FROM unnest($2::bigint[], $3::boolean[], $4::text[]) AS t(u, l, n)
ON CONFLICT (guild_id, user_id) DO NOTHING
RETURNING user_id
"""
_JOURNAL = """
INSERT INTO reward_journal (guild_id, user_id, event_type, idempotency_key, xp_delta, star_delta, details,
                            occurred_at, actor_id)
VALUES ($1, $2, 'import', $3, $4, $5, $6::jsonb, $7, $8)
ON CONFLICT (guild_id, idempotency_key) DO NOTHING
RETURNING id
"""
_SET_MEMBER = f"""
UPDATE members SET xp = $3, gold = $4, lifetime_stars = $5, github_username = $6, updated_at = now()
 WHERE guild_id = $1 AND user_id = $2
RETURNING {sql.MEMBER_COLUMNS}
"""
_EXPORT_ROWS = """
SELECT m.user_id, m.xp, m.gold, m.lifetime_stars, m.github_username, m.left_at IS NOT NULL AS left,
       ARRAY(SELECT t.name FROM member_achievements ma
               JOIN achievement_templates t ON t.guild_id = ma.guild_id AND t.id = ma.template_id
              WHERE ma.guild_id = m.guild_id AND ma.user_id = m.user_id ORDER BY t.name) AS achievements
  FROM members m
 WHERE m.guild_id = $1 AND m.user_id > $2
 ORDER BY m.user_id LIMIT $3
"""


# --- submission --------------------------------------------------------------------------------------------------


def _actor_json(actor: Actor) -> dict[str, str | None]:
    return {
        "actor_id": actor.actor_id,
        "kind": actor.kind,
        "via": actor.via,
        "request_id": actor.request_id,
        "client_ip": actor.client_ip,
    }


def _actor_from(params: Mapping[str, Any]) -> Actor:
    a = params.get("actor") or {}
    return Actor(
        str(a.get("actor_id") or "system"),
        a.get("kind") or "system",
        a.get("via") or "system",
        a.get("request_id"),
        a.get("client_ip"),
    )


def _check_mode(mode: str) -> ImportMode:
    if mode not in IMPORT_MODES:
        raise ImportFormatError("must be 'add' or 'replace'", "mode")
    return mode


def _check_levels(levels: str | None) -> LevelsMode | None:
    if levels is not None and levels not in LEVELS_MODES:
        raise ImportFormatError("must be 'keep' or 'recompute'", "levels")
    return levels


def _levels_for(levels: LevelsMode | None, fmt: SourceFormat) -> LevelsMode:
    """Unless asked: other bots' exports keep their levels (their XP means another curve), ours recomputes."""
    if levels is not None:
        return levels
    return "recompute" if fmt == "synapse-members" else "keep"


@dataclass(frozen=True, slots=True)
class _Checked:
    """What submission keeps of a parsed document: its shape and counts (the entries are dropped at once)."""

    format: SourceFormat
    entries: int
    invalid: tuple[dict[str, object], ...]
    invalid_count: int


def _check(body: str) -> _Checked:
    parsed = parse_text(body, keep=False)
    invalid = tuple(r.as_json() for r in parsed.invalid[:SAMPLE_MAX])
    return _Checked(parsed.format, parsed.count, invalid, len(parsed.invalid))


async def _decode(raw: bytes | bytearray, max_bytes: int) -> str:
    """The upload as text (in a worker thread). An upload buffer (`bytearray`, as the API reads it) is emptied
    right after: from here on only the text is held, not the bytes as well."""
    body = await asyncio.to_thread(decode_text, raw, max_bytes=max_bytes)
    if isinstance(raw, bytearray):
        raw.clear()
    return body


async def active_import(db: Database, guild_id: int) -> uuid.UUID | None:
    """The guild's queued or running import, if any: the API refuses a new upload (409) before reading it."""
    async with db.sessions() as s:
        found = (await s.execute(_ACTIVE_JOB, {"g": guild_id})).scalar()
    return None if found is None else uuid.UUID(str(found))


async def submit_import(
    db: Database,
    guild_id: int,
    raw: bytes | bytearray,
    *,
    mode: str,
    actor: Actor,
    max_bytes: int,
    levels: str | None = None,
) -> uuid.UUID:
    """Queue an `import` job for `raw` (JSON or CSV bytes); the caller answers 202 with the job.

    The whole document is validated before anything is stored, so a document the job would refuse is refused
    here: `DocumentTooLarge` (413), `ImportFormatError` (400: bad mode, not UTF-8, unknown shape, too many
    entries), `ImportRejected` (400 listing the invalid and duplicate rows by index), or `ImportActive` (409).
    """
    checked_mode = _check_mode(mode)
    asked_levels = _check_levels(levels)
    body = await _decode(raw, max_bytes)
    checked = await asyncio.to_thread(_check, body)
    if checked.invalid_count:
        raise ImportRejected(checked.invalid, checked.invalid_count)
    params = {
        "mode": checked_mode,
        "levels": _levels_for(asked_levels, checked.format),
        "format": checked.format,
        "entries": checked.entries,
        "actor": _actor_json(actor),
    }
    job_id = uuid.uuid4()
    async with db.sessions.begin() as s:
        created = (
            await s.execute(
                _INSERT_JOB, {"id": job_id, "g": guild_id, "params": json.dumps(params), "by": actor.actor_id}
            )
        ).scalar()
        if created is None:
            active = (await s.execute(_ACTIVE_JOB, {"g": guild_id})).scalar()
            raise ImportActive(active if active is not None else job_id)
        await s.execute(_INSERT_PAYLOAD, {"id": job_id, "body": body})
    return job_id


# --- planning shared by dry run and job --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Guild:
    """What planning needs from the cached config: the curve, active templates by name, level-role table."""

    config: GuildConfig
    templates: Mapping[str, TemplateInfo]
    role_mode: RoleMode

    @classmethod
    def of(cls, config: GuildConfig) -> _Guild:
        return cls(
            config,
            {t.name: t for t in config.templates},
            cast(RoleMode, config.settings.str("level_roles.mode")),
        )


async def _states(
    conn: asyncpg.Connection, guild_id: int, user_ids: list[int], *, lock: bool
) -> dict[int, MemberState]:
    rows = await conn.fetch(_LOCK_STATES if lock else _STATES, guild_id, user_ids)
    earned: dict[int, set[str]] = {}
    for r in await conn.fetch(_EARNED_NAMES, guild_id, user_ids):
        earned.setdefault(int(r["user_id"]), set()).add(r["name"])
    return {
        int(r["user_id"]): MemberState(
            int(r["xp"]),
            int(r["gold"]),
            int(r["lifetime_stars"]),
            int(r["level"]),
            r["github_username"],
            frozenset(earned.get(int(r["user_id"]), ())),
        )
        for r in rows
    }


def _key(job_id: uuid.UUID, user_id: int) -> str:
    """SPEC §20.1: one key per job and member, so a job never applies a member twice and every job is new."""
    return f"import:{job_id}:{user_id}"


async def _done(conn: asyncpg.Connection, guild_id: int, job_id: uuid.UUID, user_ids: list[int]) -> set[int]:
    """Members this very job has already been applied to (by an earlier run of it that stopped or crashed)."""
    keys = [_key(job_id, u) for u in user_ids]
    return {int(r["idempotency_key"].rsplit(":", 1)[1]) for r in await conn.fetch(_DONE_KEYS, guild_id, keys)}


def _totals(parsed: ParsedImport, mode: ImportMode, levels: LevelsMode) -> PlanTotals:
    totals = PlanTotals(parsed.format, mode, levels, entries=parsed.count + len(parsed.invalid))
    totals.invalid_count = len(parsed.invalid)
    totals.invalid = [r.as_json() for r in parsed.invalid[:SAMPLE_MAX]]
    return totals


def _batches(entries: Sequence[ImportEntry]) -> list[list[ImportEntry]]:
    ordered = sorted(entries, key=lambda e: e.user_id)  # lock order
    return [ordered[i : i + BATCH] for i in range(0, len(ordered), BATCH)]


async def preview_import(
    db: Database,
    cache: ConfigCache,
    guild_id: int,
    raw: bytes | bytearray,
    *,
    mode: str,
    max_bytes: int,
    levels: str | None = None,
) -> dict[str, object]:
    """The dry run (200 report): what the import would do, from the same plan the job applies; writes nothing.

    Raises `DocumentTooLarge` / `ImportFormatError` like `submit_import`; invalid rows are in the report. The
    document is validated once, then planned `BATCH` entries at a time (parsed again chunk by chunk), so a dry run
    never holds every entry at once.
    """
    checked = _check_mode(mode)
    asked_levels = _check_levels(levels)
    body = await _decode(raw, max_bytes)
    parsed = await asyncio.to_thread(parse_text, body, keep=False)
    totals = _totals(parsed, checked, _levels_for(asked_levels, parsed.format))
    guild = _Guild.of(cache.guild(guild_id))
    chunks = entry_chunks(body, BATCH, {r.index for r in parsed.invalid})
    while (batch := await asyncio.to_thread(next, chunks, None)) is not None:
        ids = [e.user_id for e in batch]
        async with db.raw_transaction() as conn:
            states = await _states(conn, guild_id, ids, lock=False)
        for entry in batch:
            _count(totals, guild, entry, states.get(entry.user_id), False, checked)
    return totals.as_json()


def _count(
    totals: PlanTotals, guild: _Guild, entry: ImportEntry, state: MemberState | None, done: bool, mode: ImportMode
) -> MemberPlan | None:
    """Plan one entry and count it; the plan if the member is to be written, else None."""
    if done:
        totals.already_imported += 1
        return None
    plan = plan_member(entry, state, mode, guild.config.curve, guild.templates.keys(), totals.levels)
    if not plan.changed:
        totals.members_unchanged += 1
        return None
    totals.add(plan, entry.index, guild.config.level_roles, guild.role_mode)
    return plan


# --- the job -----------------------------------------------------------------------------------------------------


Presence = Callable[[int, int], str | None]
"""(guild, user) → the member's display name if Discord (the gateway cache) has them in the guild, else None."""


def import_handler(
    db: Database, engine: LevelEngine, cache: ConfigCache, *, max_bytes: int, people: Presence | None = None
) -> JobHandler:
    """The `import` job body (SPEC §20.1). Its result is the applied summary (`PlanTotals.as_json`).

    With `people`, a member row the import creates carries the member's Discord name, and a user Discord does not
    have in the guild is stored as not present (`left_at`, excluded by §19) until they join; a row's own `left`
    (our document) decides first. Without it (no gateway), only `left` does."""

    async def run(ctx: JobContext) -> dict[str, Any]:
        mode = _check_mode(str(ctx.params.get("mode", "")))
        async with db.sessions() as s:
            body = (await s.execute(_READ_PAYLOAD, {"id": ctx.job_id})).scalar()
        if body is None:
            raise LookupError("the import document is gone (the job already ended once)")
        parsed = await asyncio.to_thread(parse_text, body)
        del body
        totals = _totals(parsed, mode, cast(LevelsMode, ctx.params.get("levels") or "recompute"))
        if parsed.invalid:  # checked at submission; still never half-apply a payload stored some other way
            await _close(db, ctx, totals, {**totals.as_json(), "complete": False, "error": "invalid rows"}, None)
            raise ImportRejected(totals.invalid, totals.invalid_count)
        ctx.progress["total"] = len(parsed.entries)
        complete, failure = True, None
        try:
            for batch in _batches(parsed.entries):
                if ctx.should_stop():
                    complete = False
                    break
                await retry_transient(
                    functools.partial(_apply_batch, db, engine, cache, ctx, batch, mode, totals, people),
                    policy=BACKGROUND,
                    on_retry=log_retries("import", guild_id=ctx.guild_id),
                )
                ctx.progress["done"] += len(batch)
        except Exception as exc:  # a batch failed for good: what the earlier batches applied is still reported
            complete, failure = False, exc
        result: dict[str, Any] = {**totals.as_json(), "complete": complete}
        if failure is not None:
            result["error"] = f"{type(failure).__name__}: {failure}"[:500]
        await retry_transient(
            functools.partial(_close, db, ctx, totals, result, totals.members_changed),
            policy=BACKGROUND,
            on_retry=log_retries("import_close", guild_id=ctx.guild_id),
        )
        if failure is not None:
            raise JobFailed(result["error"], result) from failure
        return result

    return run


async def _close(
    db: Database, ctx: JobContext, totals: PlanTotals, result: Mapping[str, Any], changed: int | None
) -> None:
    """However the job ends: the audit row with the counts applied, the level-role sync when members changed, and
    the payload deleted (one transaction, so a retry after a fault writes them once)."""
    actor = _actor_from(ctx.params)
    async with db.sessions.begin() as s:
        await record(
            s,
            actor,
            guild_id=ctx.guild_id,
            action="members.import",
            target_type="job",
            target_id=str(ctx.job_id),
            after={k: v for k, v in result.items() if k not in ("level_changes", "level_role_changes")}
            | {"level_changes": totals.level_changes, "level_role_changes": totals.level_role_changes},
        )
        if changed:
            await enqueue(s, ctx.guild_id, "level_role_sync", actor.actor_id)
        await s.execute(_DELETE_PAYLOAD, {"id": ctx.job_id})


async def _apply_batch(
    db: Database,
    engine: LevelEngine,
    cache: ConfigCache,
    ctx: JobContext,
    batch: list[ImportEntry],
    mode: ImportMode,
    totals: PlanTotals,
    people: Presence | None,
) -> None:
    """One transaction: create missing rows, lock them, re-plan under the lock and apply each changed member.

    The counts go into `totals` only once the transaction committed (a retried batch must not count twice)."""
    guild = _Guild.of(cache.guild(ctx.guild_id))
    ids = [e.user_id for e in batch]
    scratch = PlanTotals(totals.format, mode, totals.levels)
    by = _actor_from(ctx.params).actor_id
    async with db.raw_transaction() as conn:
        existing = await _states(conn, ctx.guild_id, ids, lock=False)
        done = await _done(conn, ctx.guild_id, ctx.job_id, ids)
        new = [e for e in batch if e.user_id not in existing and e.user_id not in done]
        names = [None if people is None else people(ctx.guild_id, e.user_id) for e in new]
        absent = [
            e.left if e.left is not None else (people is not None and name is None)
            for e, name in zip(new, names, strict=True)
        ]
        rows = await conn.fetch(_CREATE_MEMBERS, ctx.guild_id, [e.user_id for e in new], absent, names)
        created = {int(r["user_id"]) for r in rows}
        states = await _states(conn, ctx.guild_id, ids, lock=True)
        tx = Tx(conn, singles=True)
        now = datetime.now(UTC)
        for entry in batch:
            # A member created just above plans as "created" (from zero), exactly as the dry run saw it; one that
            # appeared meanwhile (a concurrent first message) plans from its locked row.
            state = None if entry.user_id in created else states.get(entry.user_id)
            plan = _count(scratch, guild, entry, state, entry.user_id in done, mode)
            if plan is None:
                continue
            key = _key(ctx.job_id, entry.user_id)
            details = {"job_id": str(ctx.job_id), "mode": mode, "gold": plan.gold_delta, "format": totals.format}
            journal_id = await conn.fetchval(
                _JOURNAL,
                ctx.guild_id,
                entry.user_id,
                key,
                plan.xp_delta,
                plan.star_delta,
                json.dumps(details),
                now,
                by,
            )
            if journal_id is None:  # a concurrent run of this import got here first
                continue
            row = await conn.fetchrow(
                _SET_MEMBER, ctx.guild_id, entry.user_id, plan.xp, plan.gold, plan.lifetime_stars, plan.github_username
            )
            assert row is not None  # created and locked above
            if plan.gold_delta:
                await sql.gold_entry(
                    conn,
                    guild_id=ctx.guild_id,
                    user_id=entry.user_id,
                    delta=plan.gold_delta,
                    balance_after=plan.gold,
                    reason="import",
                    key=key,
                    journal_id=journal_id,
                    actor_id=by,
                )
            cause = Cause(ctx.guild_id, now, key, None, None)
            for name in plan.achievements:
                template = guild.templates[name]
                if not await sql.claim_template(conn, guild_id=ctx.guild_id, template_id=template.template_id):
                    continue  # full or deactivated since the cache load: not granted
                await engine.earn(
                    tx,
                    guild.config,
                    entry.user_id,
                    template,
                    cause,
                    key=f"{key}#ach:{template.template_id}",
                    pay_rewards=False,
                    source="import",
                )
            await engine.after_xp_change(tx, guild.config, entry.user_id, row, cause, pay_gold=False)
    # Role syncs are left to the `level_role_sync` job queued at the end; templates found full are worth knowing.
    engine.committed(tx.effects)
    _merge(totals, scratch)


def _merge(totals: PlanTotals, batch: PlanTotals) -> None:
    for name in (
        "members_created",
        "members_changed",
        "members_unchanged",
        "already_imported",
        "xp_delta",
        "gold_delta",
        "stars_delta",
        "achievements_granted",
        "level_changes",
        "level_role_changes",
    ):
        setattr(totals, name, getattr(totals, name) + getattr(batch, name))
    for name in ("level_change_items", "level_role_items", "unknown_achievements"):
        items: list[dict[str, object]] = getattr(totals, name)
        items.extend(getattr(batch, name)[: max(0, SAMPLE_MAX - len(items))])
    totals.sample.extend(batch.sample[: max(0, CHANGE_SAMPLE_MAX - len(totals.sample))])


# --- export ------------------------------------------------------------------------------------------------------


async def export_members(db: Database, guild_id: int, *, actor: Actor) -> dict[str, Any]:
    """Our own document (SPEC §20.1) of every member row of the guild, audited as `members.export`.

    Read in keyset batches so 200,000 members never mean one giant result set; the audit row records how many.
    """
    members: list[dict[str, Any]] = []
    after = 0
    while True:
        async with db.raw_transaction() as conn:
            rows = await conn.fetch(_EXPORT_ROWS, guild_id, after, _EXPORT_BATCH)
        members.extend(
            {
                "user_id": int(r["user_id"]),
                "xp": int(r["xp"]),
                "gold": int(r["gold"]),
                "lifetime_stars": int(r["lifetime_stars"]),
                "github_username": r["github_username"],
                "achievements": list(r["achievements"]),
                "left": bool(r["left"]),
            }
            for r in rows
        )
        if len(rows) < _EXPORT_BATCH:
            break
        after = int(rows[-1]["user_id"])
    exported_at = datetime.now(UTC).isoformat()
    async with db.sessions.begin() as s:
        await record(
            s,
            actor,
            guild_id=guild_id,
            action="members.export",
            target_type="guild",
            target_id=str(guild_id),
            after={"members": len(members), "exported_at": exported_at},
        )
    return render_document(guild_id, exported_at, members)
