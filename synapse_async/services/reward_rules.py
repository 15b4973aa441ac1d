"""Admin writes of the §9.1 reward-rule tables: channel-type defaults, channel overrides, role multipliers, no-XP.

The four tables have the same life cycle (put one row by its key, delete it, list the guild's rows), so one
`RuleTable` description drives the SQL of all four instead of four copies of it. Every write is one transaction
holding the change, its audit row (before/after) and the NOTIFY of the table (db/notify.py): the config cache of
every process reloads exactly when the change commits, and never for a rolled-back one. Targets that must exist
(a channel or category for an override, a role for a multiplier, a channel or role for no-XP) are checked in the
same transaction against the synced `guild_channels` / `guild_roles` tables, so any process can validate them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from synapse_async.db.notify import notify_config
from synapse_async.services.audit import Actor, record

__all__ = [
    "CHANNEL_OVERRIDES",
    "LEVEL_ROLES",
    "NO_XP_TARGETS",
    "ROLE_MULTIPLIERS",
    "TYPE_DEFAULTS",
    "PutResult",
    "RuleTable",
    "UnknownTarget",
    "WriteHook",
    "delete_rule",
    "list_channels",
    "list_rules",
    "put_rule",
]


class UnknownTarget(Exception):
    """The channel or role a rule names is not (or no longer) part of the guild (404)."""

    def __init__(self, kind: str, target_id: int) -> None:
        super().__init__(f"unknown {kind} {target_id}")
        self.kind = kind
        self.target_id = target_id


@dataclass(frozen=True, slots=True)
class RuleTable:
    """One rule table: its key columns (after `guild_id`), value columns and timestamp; identifiers are fixed."""

    table: str
    noun: str  # audit target type
    keys: tuple[str, ...]
    values: tuple[str, ...]
    stamp: str
    action: str = ""  # audit action prefix (SPEC §22), when it differs from `noun`

    @property
    def action_prefix(self) -> str:
        return self.action or self.noun

    def target_id(self, key: Mapping[str, object]) -> str:
        return "/".join(str(key[k]) for k in self.keys)


TYPE_DEFAULTS: Final = RuleTable(
    "channel_type_defaults",
    "channel_type_default",
    ("channel_type", "event_type"),
    ("xp_multiplier", "star_multiplier"),
    "updated_at",
    "channel_default",
)
CHANNEL_OVERRIDES: Final = RuleTable(
    "channel_overrides",
    "channel_override",
    ("channel_id", "event_type"),
    ("xp_multiplier", "star_multiplier", "reason"),
    "updated_at",
    "override",
)
ROLE_MULTIPLIERS: Final = RuleTable(
    "role_multipliers", "role_multiplier", ("role_id",), ("xp_multiplier", "star_multiplier"), "updated_at"
)
NO_XP_TARGETS: Final = RuleTable(
    "no_xp_targets", "no_xp_target", ("target_type", "target_id"), ("reason",), "created_at", "no_xp"
)
LEVEL_ROLES: Final = RuleTable("level_role_rewards", "level_role", ("role_id",), ("level",), "created_at")

WriteHook = Callable[[AsyncSession, bool], Awaitable[None]]
"""Extra work inside a rule write's transaction, told whether the row is new (put) or was there (delete)."""


@dataclass(frozen=True, slots=True)
class PutResult:
    """The stored row (with its timestamp) and whether the put created it (201) or replaced one (200)."""

    row: dict[str, Any]
    created: bool


def _plain(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row as plain values (multipliers are NUMERIC: floats)."""
    return {str(name): float(value) if isinstance(value, Decimal) else value for name, value in row.items()}


def _audit_view(spec: RuleTable, row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: str(row[k]) if k.endswith("_id") else row[k] for k in (*spec.keys, *spec.values)}


def _where(spec: RuleTable) -> str:
    return " AND ".join(["guild_id = :guild_id", *(f"{k} = :{k}" for k in spec.keys)])


_CHANNEL = text("SELECT 1 FROM guild_channels WHERE guild_id = :g AND channel_id = :id AND deleted_at IS NULL")
_ROLE = text("SELECT 1 FROM guild_roles WHERE guild_id = :g AND role_id = :id AND deleted_at IS NULL")


async def _require(session: AsyncSession, guild_id: int, kind: str, target_id: int) -> None:
    """The target must be a live channel/category or role of the guild (the snapshot tables, §6.1)."""
    if kind == "role":
        found = (await session.execute(_ROLE, {"g": guild_id, "id": target_id})).first()
    else:
        found = (await session.execute(_CHANNEL, {"g": guild_id, "id": target_id})).first()
    if found is None:
        raise UnknownTarget(kind, target_id)


def _required_target(spec: RuleTable, key: Mapping[str, object]) -> tuple[str, int] | None:
    if spec is CHANNEL_OVERRIDES:
        return "channel", int(str(key["channel_id"]))
    if spec is ROLE_MULTIPLIERS or spec is LEVEL_ROLES:
        return "role", int(str(key["role_id"]))
    if spec is NO_XP_TARGETS:
        return str(key["target_type"]), int(str(key["target_id"]))
    return None


async def put_rule(
    sessions: async_sessionmaker[AsyncSession],
    spec: RuleTable,
    guild_id: int,
    key: Mapping[str, object],
    values: Mapping[str, object],
    actor: Actor,
    hook: WriteHook | None = None,
) -> PutResult:
    """Insert or replace one rule row, audited with before/after, NOTIFY in the same transaction; `hook` runs in
    it before the write (a limit check, a job to queue) and may raise to abort the whole write."""
    columns = (*spec.keys, *spec.values)
    params = {"guild_id": guild_id, **key, **values}
    # `created_at` of a no-XP target stays when only its reason changes; `updated_at` moves with every write.
    stamp = f", {spec.stamp} = now()" if spec.stamp == "updated_at" else ""
    upsert = text(
        f"""
        INSERT INTO {spec.table} (guild_id, {", ".join(columns)})
        VALUES (:guild_id, {", ".join(":" + c for c in columns)})
        ON CONFLICT (guild_id, {", ".join(spec.keys)})
        DO UPDATE SET {", ".join(f"{c} = EXCLUDED.{c}" for c in spec.values)}{stamp}
        RETURNING {", ".join(columns)}, {spec.stamp}
        """
    )
    current = text(f"SELECT {', '.join(columns)} FROM {spec.table} WHERE {_where(spec)} FOR UPDATE")
    async with sessions.begin() as session:
        target = _required_target(spec, key)
        if target is not None:
            await _require(session, guild_id, *target)
        before_row = (await session.execute(current, params)).mappings().first()
        if hook is not None:
            await hook(session, before_row is None)
        row = _plain((await session.execute(upsert, params)).mappings().one())
        before = None if before_row is None else _audit_view(spec, _plain(before_row))
        await record(
            session,
            actor,
            guild_id=guild_id,
            action=f"{spec.action_prefix}.upsert",
            target_type=spec.noun,
            target_id=spec.target_id(key),
            before=before,
            after=_audit_view(spec, row),
        )
        await notify_config(session, spec.table, guild_id)
    return PutResult(row, before_row is None)


async def delete_rule(
    sessions: async_sessionmaker[AsyncSession],
    spec: RuleTable,
    guild_id: int,
    key: Mapping[str, object],
    actor: Actor,
    hook: WriteHook | None = None,
) -> bool:
    """Delete one rule row (audited, notified, then `hook`); False when there was none (404), nothing written."""
    columns = (*spec.keys, *spec.values)
    delete = text(f"DELETE FROM {spec.table} WHERE {_where(spec)} RETURNING {', '.join(columns)}")
    async with sessions.begin() as session:
        row = (await session.execute(delete, {"guild_id": guild_id, **key})).mappings().first()
        if row is None:
            return False
        await record(
            session,
            actor,
            guild_id=guild_id,
            action=f"{spec.action_prefix}.delete",
            target_type=spec.noun,
            target_id=spec.target_id(key),
            before=_audit_view(spec, _plain(row)),
        )
        if hook is not None:
            await hook(session, False)
        await notify_config(session, spec.table, guild_id)
    return True


_EXISTS: Final = {
    "channel_overrides": "EXISTS (SELECT 1 FROM guild_channels c WHERE c.guild_id = r.guild_id"
    " AND c.channel_id = r.channel_id AND c.deleted_at IS NULL) AS target_exists",
    "role_multipliers": "EXISTS (SELECT 1 FROM guild_roles o WHERE o.guild_id = r.guild_id"
    " AND o.role_id = r.role_id AND o.deleted_at IS NULL) AS target_exists",
    "no_xp_targets": "(CASE WHEN r.target_type = 'role' THEN EXISTS (SELECT 1 FROM guild_roles o"
    " WHERE o.guild_id = r.guild_id AND o.role_id = r.target_id AND o.deleted_at IS NULL)"
    " ELSE EXISTS (SELECT 1 FROM guild_channels c WHERE c.guild_id = r.guild_id AND c.channel_id = r.target_id"
    " AND c.deleted_at IS NULL) END) AS target_exists",
    "channel_type_defaults": "true AS target_exists",
    "level_role_rewards": "EXISTS (SELECT 1 FROM guild_roles o WHERE o.guild_id = r.guild_id"
    " AND o.role_id = r.role_id AND o.deleted_at IS NULL) AS target_exists,"
    " (SELECT o.name FROM guild_roles o WHERE o.guild_id = r.guild_id AND o.role_id = r.role_id) AS role_name",
}


async def list_rules(
    conn: AsyncConnection, spec: RuleTable, guild_id: int, *, channel_id: int | None = None
) -> list[dict[str, Any]]:
    """The guild's rows in key order, each with `target_exists` (rules on removed channels/roles stay visible)."""
    columns = ", ".join(f"r.{c}" for c in (*spec.keys, *spec.values, spec.stamp))
    where = "r.guild_id = :g" + (" AND r.channel_id = :c" if channel_id is not None else "")
    sql = text(
        f"SELECT {columns}, {_EXISTS[spec.table]} FROM {spec.table} r WHERE {where}"
        f" ORDER BY {', '.join('r.' + k for k in spec.keys)}"
    )
    rows = (await conn.execute(sql, {"g": guild_id, "c": channel_id})).mappings().all()
    return [_plain(r) for r in rows]


_CHANNELS = text(
    """
    SELECT c.channel_id, c.name, c.type, c.parent_id, p.name AS category_name, c.deleted_at IS NOT NULL AS deleted
      FROM guild_channels c
      LEFT JOIN guild_channels p ON p.guild_id = c.guild_id AND p.channel_id = c.parent_id
     WHERE c.guild_id = :g
     ORDER BY c.deleted_at IS NOT NULL, c.position, c.channel_id
    """
)


_ROLES = text(
    """
    SELECT role_id, name, position, permissions, managed
      FROM guild_roles
     WHERE guild_id = :g AND deleted_at IS NULL AND role_id <> guild_id
     ORDER BY position DESC, role_id
    """
)


async def list_roles(conn: AsyncConnection, guild_id: int) -> list[dict[str, Any]]:
    """The guild's roles as synced (§6.1), highest first, without `@everyone` (its id is the guild's) and without
    deleted ones: what an admin may pick for multipliers, no-XP and level rewards."""
    return [dict(r) for r in (await conn.execute(_ROLES, {"g": guild_id})).mappings().all()]


async def list_channels(conn: AsyncConnection, guild_id: int) -> list[dict[str, Any]]:
    """The guild's channel snapshot (§6.1), removed ones included and flagged (their overrides still show)."""
    return [dict(r) for r in (await conn.execute(_CHANNELS, {"g": guild_id})).mappings().all()]
