"""The database side of level roles (SPEC §13): the roles the bot granted, and the state a sync acts on.

- `level_role_grants` rows are the bot's own additions. The syncer reads a member's rows before planning (only
  those roles may be removed) and writes them after Discord accepted the update: a row for each role added, none
  left for a role removed or one the member no longer holds (a person took it away, so a later manual re-grant is
  the person's, not the bot's). Writing after the update errs on the safe side: if the write is lost, the role is
  merely never taken back, it is never taken from someone who got it from a person.
- `live_state` is what a `level_role_sync` job needs when it REACHES a member: the member's level, the reward
  table, the mode and `access.admin_role_ids` as committed at that moment, in one round trip. A job that read
  levels up front would undo level changes committed while it runs (and the ConfigCache may trail a commit by a
  NOTIFY round trip).
- `members` and `config` feed the admin API's `dry_run` previews: every present member with level and grants,
  and the committed reward configuration the preview starts from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from synapse_async.db.engine import Database
from synapse_async.db.faults import BACKGROUND, log_retries, retry_transient
from synapse_async.rewards.roles import RoleMode
from synapse_async.settings import REGISTRY
from synapse_async.settings.validation import normalize_stored

_GRANTED = text("SELECT role_id FROM level_role_grants WHERE guild_id = :g AND user_id = :u")
_CONFIG_COLUMNS = """
    ARRAY(SELECT r.level FROM level_role_rewards r WHERE r.guild_id = :g ORDER BY r.level, r.role_id) AS levels,
    ARRAY(SELECT r.role_id FROM level_role_rewards r WHERE r.guild_id = :g ORDER BY r.level, r.role_id) AS roles,
    (SELECT s.value FROM settings s WHERE s.guild_id = :g AND s.key = 'level_roles.mode') AS mode,
    (SELECT s.value FROM settings s WHERE s.guild_id = :g AND s.key = 'access.admin_role_ids') AS admin_roles
"""
_CONFIG = text(f"SELECT {_CONFIG_COLUMNS}").columns(mode=JSONB, admin_roles=JSONB)
_LIVE = text(
    f"""
    SELECT (SELECT m.level FROM members m WHERE m.guild_id = :g AND m.user_id = :u AND m.left_at IS NULL) AS level,
           ARRAY(SELECT gr.role_id FROM level_role_grants gr WHERE gr.guild_id = :g AND gr.user_id = :u) AS granted,
           {_CONFIG_COLUMNS}
    """
).columns(mode=JSONB, admin_roles=JSONB)
_MEMBERS = text(
    """
    SELECT m.user_id, m.display_name, m.level,
           ARRAY(SELECT gr.role_id FROM level_role_grants gr
                  WHERE gr.guild_id = m.guild_id AND gr.user_id = m.user_id) AS granted
      FROM members m WHERE m.guild_id = :g AND m.left_at IS NULL ORDER BY m.user_id
    """
)
_INSERT = text(
    "INSERT INTO level_role_grants (guild_id, user_id, role_id) SELECT :g, :u, unnest(CAST(:roles AS bigint[]))"
    " ON CONFLICT DO NOTHING"
)
_DELETE = text("DELETE FROM level_role_grants WHERE guild_id = :g AND user_id = :u AND role_id IN :roles").bindparams(
    bindparam("roles", expanding=True)
)


@dataclass(frozen=True, slots=True)
class RewardConfig:
    """The reward table `(level, role_id)`, the mode and the admin roles, as committed."""

    rewards: tuple[tuple[int, int], ...]
    mode: RoleMode
    admin_roles: frozenset[int]


@dataclass(frozen=True, slots=True)
class LiveState:
    """One member as a sync reaching it sees it: `level` None when the member is unknown or left."""

    level: int | None
    granted: frozenset[int]
    config: RewardConfig


@dataclass(frozen=True, slots=True)
class MemberRow:
    user_id: int
    display_name: str
    level: int
    granted: frozenset[int]


def _setting(key: str, raw: object) -> object:
    if raw is None:
        return REGISTRY[key].default
    try:
        return normalize_stored(key, raw)
    except (KeyError, ValueError):  # an unusable stored value counts as the default, as in the config cache
        return REGISTRY[key].default


def _config(row: Any) -> RewardConfig:
    rewards = tuple((int(level), int(role_id)) for level, role_id in zip(row.levels, row.roles, strict=True))
    admin_roles = cast(Iterable[int], _setting("access.admin_role_ids", row.admin_roles))
    mode = cast(RoleMode, _setting("level_roles.mode", row.mode))
    return RewardConfig(rewards, mode, frozenset(int(r) for r in admin_roles))


class GrantStore:
    """Reads and writes of `level_role_grants` and the committed reward state, on the bot's pool."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def granted(self, guild_id: int, user_id: int) -> frozenset[int]:
        async def read() -> frozenset[int]:
            async with self._db.engine.connect() as conn:
                rows = (await conn.execute(_GRANTED, {"g": guild_id, "u": user_id})).all()
            return frozenset(int(r.role_id) for r in rows)

        return await retry_transient(read, policy=BACKGROUND, on_retry=log_retries("level_role_grants"))

    async def live_state(self, guild_id: int, user_id: int) -> LiveState:
        async def read() -> LiveState:
            async with self._db.engine.connect() as conn:
                row = (await conn.execute(_LIVE, {"g": guild_id, "u": user_id})).one()
            level = None if row.level is None else int(row.level)
            return LiveState(level, frozenset(int(r) for r in row.granted), _config(row))

        return await retry_transient(read, policy=BACKGROUND, on_retry=log_retries("level_role_live_state"))

    async def record(self, guild_id: int, user_id: int, added: frozenset[int], forget: frozenset[int]) -> None:
        """After Discord accepted an update: remember `added`, forget `forget` (removed, or no longer held)."""
        if not added and not forget:
            return

        async def write() -> None:
            async with self._db.engine.begin() as conn:
                if forget:
                    await conn.execute(_DELETE, {"g": guild_id, "u": user_id, "roles": sorted(forget)})
                if added:
                    await conn.execute(_INSERT, {"g": guild_id, "u": user_id, "roles": sorted(added)})

        await retry_transient(write, policy=BACKGROUND, on_retry=log_retries("level_role_grants_write"))


async def read_config(conn: AsyncConnection, guild_id: int) -> RewardConfig:
    """The committed reward table, mode and admin roles of a guild (the baseline of a preview)."""
    return _config((await conn.execute(_CONFIG, {"g": guild_id})).one())


async def read_members(conn: AsyncConnection, guild_id: int) -> list[MemberRow]:
    """Every present member with level and the roles the bot granted, in user-id order (what a sync visits)."""
    rows = (await conn.execute(_MEMBERS, {"g": guild_id})).all()
    return [
        MemberRow(int(r.user_id), str(r.display_name), int(r.level), frozenset(int(x) for x in r.granted)) for r in rows
    ]
