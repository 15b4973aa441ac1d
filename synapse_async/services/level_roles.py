"""Admin writes of the level-role reward table (SPEC §13, §20): put, delete, and the on-demand sync job.

A change to the table changes which roles members should hold, so every put and delete queues a
`level_role_sync` job in the same transaction as the row, its audit entry and the NOTIFY (`enqueue` never fails
the write: an active sync is asked to run once more). At most `MAX_LEVEL_ROLES` rows per guild (§6.1); the count is
checked under a per-guild advisory lock so two concurrent creations cannot both pass it.

`dry_run=True` runs the very same checks in the same transaction and then rolls it back (SPEC §13 "Preview
before change"): the caller learns that the change would be accepted (or the same 404/409 it would get), and
nothing is written, audited, notified or queued. Which roles may be mapped at all ("safe roles only") needs live
Discord data and is checked by the caller before this is reached.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from synapse_async.jobs.store import enqueue, request_job
from synapse_async.lake.jobs import JobView, get_job
from synapse_async.services.audit import Actor, record
from synapse_async.services.reward_rules import LEVEL_ROLES, PutResult, delete_rule, put_rule

__all__ = [
    "MAX_LEVEL_ROLES",
    "LevelRoleLimit",
    "RoleNotAssignable",
    "delete_level_role",
    "put_level_role",
    "request_sync",
]

MAX_LEVEL_ROLES: Final = 50
SYNC_JOB: Final = "level_role_sync"

_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")
_COUNT = text("SELECT count(*) FROM level_role_rewards WHERE guild_id = :g")


class LevelRoleLimit(Exception):
    """The guild already has `MAX_LEVEL_ROLES` reward roles (409)."""


class _DryRun(Exception):
    """Raised inside the write once every check passed, so a dry run rolls back."""


class RoleNotAssignable(Exception):
    """`@everyone` or an integration-managed role: nobody can assign it, whatever the bot's permissions (409)."""


_MANAGED = text("SELECT managed FROM guild_roles WHERE guild_id = :g AND role_id = :r")


async def put_level_role(
    sessions: async_sessionmaker[AsyncSession],
    guild_id: int,
    role_id: int,
    level: int,
    actor: Actor,
    *,
    dry_run: bool = False,
) -> PutResult | None:
    """Set the level of a reward role: it must exist in the guild (`UnknownTarget`) and be assignable at all
    (`RoleNotAssignable`); whether the bot can manage it now is the pre-check's business, shown, not enforced.
    None for a dry run that passed every check (nothing written)."""

    async def limit_and_sync(session: AsyncSession, created: bool) -> None:
        if role_id == guild_id or (await session.execute(_MANAGED, {"g": guild_id, "r": role_id})).scalar():
            raise RoleNotAssignable("@everyone and integration-managed roles cannot be assigned")
        if created:
            await session.execute(_LOCK, {"k": f"level_roles:{guild_id}"})
            if (await session.execute(_COUNT, {"g": guild_id})).scalar_one() >= MAX_LEVEL_ROLES:
                raise LevelRoleLimit(f"at most {MAX_LEVEL_ROLES} level roles per guild")
        if dry_run:
            raise _DryRun
        await enqueue(session, guild_id, SYNC_JOB, actor.actor_id)

    try:
        return await put_rule(
            sessions, LEVEL_ROLES, guild_id, {"role_id": role_id}, {"level": level}, actor, limit_and_sync
        )
    except _DryRun:
        return None


async def delete_level_role(
    sessions: async_sessionmaker[AsyncSession], guild_id: int, role_id: int, actor: Actor, *, dry_run: bool = False
) -> bool:
    """Remove a reward role; False when it was none (nothing written, no job). A dry run answers the same and
    rolls back."""

    async def sync(session: AsyncSession, _created: bool) -> None:
        if dry_run:
            raise _DryRun
        await enqueue(session, guild_id, SYNC_JOB, actor.actor_id)

    try:
        return await delete_rule(sessions, LEVEL_ROLES, guild_id, {"role_id": role_id}, actor, sync)
    except _DryRun:
        return True


async def request_sync(sessions: async_sessionmaker[AsyncSession], guild_id: int, actor: Actor) -> JobView:
    """Queue a sync of every member now (202), audited; `JobActive` (409) while one is queued or running."""
    async with sessions.begin() as s:
        job_id = await request_job(s, guild_id, SYNC_JOB, actor.actor_id)
        await record(
            s, actor, guild_id=guild_id, action="job.start", target_type="job", target_id=str(job_id),
            after={"kind": SYNC_JOB},
        )  # fmt: skip
        job = await get_job(s, guild_id, job_id)
    assert job is not None  # inserted in this very transaction
    return job
