"""Audit rows (SPEC §22), written by the service in the SAME transaction as the change they describe.

The table is append-only (a database trigger rejects UPDATE and DELETE), so the trail cannot be edited after the
fact. `Actor` travels from the adapter (HTTP handler, slash command, CLI) into the service unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

import asyncpg
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

ActorKind = Literal["user", "service", "system"]
Via = Literal["api", "command", "cli", "system"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change and through which surface."""

    actor_id: str
    kind: ActorKind
    via: Via
    request_id: str | None = None
    client_ip: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls("system", "system", "system")


_COLUMNS = (
    "guild_id, actor_id, actor_kind, via, action, target_type, target_id, before, after, reason, client_ip, request_id"
)
_INSERT = text(
    f"""
    INSERT INTO audit_log ({_COLUMNS})
    VALUES (:guild_id, :actor_id, :actor_kind, :via, :action, :target_type, :target_id,
            :before, :after, :reason, CAST(:client_ip AS inet), :request_id)
    """
).bindparams(bindparam("before", type_=JSONB), bindparam("after", type_=JSONB))
# The same row for code that holds a raw asyncpg transaction (the pipeline's services).
_INSERT_RAW = f"""
INSERT INTO audit_log ({_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10, $11::inet, $12)
"""


ACTIONS: Final = frozenset(
    {
        "settings.update",
        "settings.reset",
        *(f"{noun}.{verb}" for noun in ("channel_default", "override", "role_multiplier", "no_xp", "level_role")
          for verb in ("upsert", "delete")),
        *(f"{noun}.{verb}" for noun in ("achievement", "category", "rarity", "series")
          for verb in ("create", "update", "delete")),
        "award.create",
        "achievement.grant",
        "achievement.revoke",
        "season.start",
        "season.end",
        "season.update",
        "season.auto_end",
        "season.auto_start",
        "data_sources.update",
        "job.start",
        "job.cancel",
        "members.export",
        "members.import",
        "auth.login",
        "auth.logout",
        "token.mint",
        "logs.level",
    }
)  # fmt: skip
"""Every audit action, exactly as SPEC §22 names them: clients filter `GET …/audit?action=` by these."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit row's content (SPEC §22): what changed, on what, before and after (never secrets)."""

    guild_id: int | None
    action: str
    target_type: str
    target_id: str | None = None
    before: Any = None
    after: Any = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:  # a programming error: caught by any test that reaches the write
            raise ValueError(f"audit action {self.action!r} is not one of SPEC §22")

    def values(self, actor: Actor) -> dict[str, Any]:
        return {
            "guild_id": self.guild_id,
            "actor_id": actor.actor_id,
            "actor_kind": actor.kind,
            "via": actor.via,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
            "client_ip": actor.client_ip,
            "request_id": actor.request_id,
        }


async def record(session: AsyncSession, actor: Actor, **entry: Any) -> None:
    """Write the audit row in the caller's (SQLAlchemy) transaction; `entry` are the `AuditEntry` fields."""
    await session.execute(_INSERT, AuditEntry(**entry).values(actor))


async def record_alone(sessions: async_sessionmaker[AsyncSession], actor: Actor, **entry: Any) -> None:
    """An audit row in its own transaction, for a change that lives outside the database (the live-log level):
    the change is applied only once this has committed, so it is never made without its trail."""
    async with sessions.begin() as s:
        await record(s, actor, **entry)


async def record_raw(conn: asyncpg.Connection, actor: Actor, **entry: Any) -> None:
    """`record` for an asyncpg transaction: the audit row commits or rolls back with the change."""
    values = AuditEntry(**entry).values(actor)
    for key in ("before", "after"):
        values[key] = None if values[key] is None else json.dumps(values[key], default=str)
    await conn.execute(_INSERT_RAW, *values.values())
