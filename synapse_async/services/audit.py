"""Audit rows (SPEC §22), written by the service in the SAME transaction as the change they describe.

The table is append-only (a database trigger rejects UPDATE and DELETE), so the trail cannot be edited after the
fact. `Actor` travels from the adapter (HTTP handler, slash command, CLI) into the service unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

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


_INSERT = text(
    """
    INSERT INTO audit_log (guild_id, actor_id, actor_kind, via, action, target_type, target_id,
                           before, after, reason, client_ip, request_id)
    VALUES (:guild_id, :actor_id, :actor_kind, :via, :action, :target_type, :target_id,
            :before, :after, :reason, CAST(:client_ip AS inet), :request_id)
    """
).bindparams(bindparam("before", type_=JSONB), bindparam("after", type_=JSONB))


async def record(
    session: AsyncSession,
    actor: Actor,
    *,
    guild_id: int | None,
    action: str,
    target_type: str,
    target_id: str | None = None,
    before: Any = None,
    after: Any = None,
    reason: str | None = None,
) -> None:
    await session.execute(
        _INSERT,
        {
            "guild_id": guild_id,
            "actor_id": actor.actor_id,
            "actor_kind": actor.kind,
            "via": actor.via,
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "before": before,
            "after": after,
            "reason": reason,
            "client_ip": actor.client_ip,
            "request_id": actor.request_id,
        },
    )
