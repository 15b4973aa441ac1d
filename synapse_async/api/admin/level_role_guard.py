"""What every level-role change in the admin API goes through (SPEC §13): "safe roles only" and the dry-run preview.

Used by the level-role routes (`config.py`) and the settings routes (`platform.py`: a `level_roles.mode` change).

- `refuse_unsafe`: a role may become a reward only if it grants none of the dangerous permissions, is not in
  `access.admin_role_ids` (as committed) and, for a user token, is strictly below the caller's highest role on
  live Discord data (the guild owner excepted; service tokens have no place in the hierarchy). Otherwise 400
  `validation_error` with the detail problem `dangerous_role`, naming the permissions.
- `preview`: `{adds, removes, members_affected, sample}` for a proposed reward configuration, planned by the
  syncer exactly as a `level_role_sync` would apply it now (same member roles, same grants, same pre-check).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final, cast

from pydantic import BaseModel, Field

from synapse_async.api.contract import Call, Reply
from synapse_async.api.errors import ApiError, FieldProblem
from synapse_async.api.schema import ResponseModel, Snowflake, StrictModel
from synapse_async.levelroles.grants import RewardConfig, read_config, read_members
from synapse_async.rewards.roles import RoleMode

MODE_KEY = "level_roles.mode"


def not_previewable() -> FieldProblem:
    """`dry_run` on a settings change that is not a level-role mode change: nothing to preview (400)."""
    return FieldProblem("dry_run", "not_previewable", f"dry_run previews level-role changes: only {MODE_KEY}")


class DryRunQuery(StrictModel):
    dry_run: bool = Field(False, description="true: 200 with the preview of what the change would do; nothing written")


class PreviewChange(ResponseModel):
    user_id: Snowflake
    display_name: str
    add: list[Snowflake]
    remove: list[Snowflake]


class LevelRolePreview(ResponseModel):
    """200 for `dry_run=true`: what the change would do on Discord now; nothing was written."""

    adds: int
    removes: int
    members_affected: int
    sample: list[PreviewChange]


PREVIEW: Final[dict[int, type[BaseModel]]] = {200: LevelRolePreview}
"""The routes' `alternatives`: with `dry_run=true` they answer 200 with the preview."""


async def committed_config(call: Call[Any, Any, Any], guild_id: int) -> RewardConfig:
    async with call.platform.read() as conn:
        return await read_config(conn, guild_id)


async def _caller_roles(call: Call[Any, Any, Any], guild_id: int) -> frozenset[int] | None:
    """The caller's live roles when the hierarchy applies (a user token, not the owner), else None."""
    claims = call.require_principal().claims
    if claims.kind != "user" or claims.user_id is None:
        return None
    info = call.platform.components.require_cache().guild(guild_id).info
    if info is not None and info.owner_id == claims.user_id:
        return None
    roles = await call.platform.require_admins().member_roles(guild_id, claims.user_id)
    return roles or frozenset()


async def refuse_unsafe(call: Call[Any, Any, Any], guild_id: int, role_id: int, config: RewardConfig) -> None:
    """400 `dangerous_role` unless `role_id` may become a level reward for this caller (SPEC §13)."""
    caller_roles = await _caller_roles(call, guild_id)
    refusal = await call.platform.require_level_roles().reward_refusal(
        guild_id, role_id, config.admin_roles, caller_roles
    )
    if refusal is not None:
        detail = {
            "field": "role_id",
            "problem": "dangerous_role",
            "message": refusal.message,
            "permissions": list(refusal.permissions),
        }
        raise ApiError(400, "validation_error", refusal.message, [detail])


def with_reward(config: RewardConfig, role_id: int, level: int | None) -> RewardConfig:
    """`config` with `role_id` rewarded at `level` (None: no longer a reward)."""
    rewards = tuple(r for r in config.rewards if r[1] != role_id)
    if level is not None:
        rewards = tuple(sorted((*rewards, (level, role_id))))
    return replace(config, rewards=rewards)


def with_mode(config: RewardConfig, mode: object) -> RewardConfig:
    """`config` under another (already validated) `level_roles.mode`."""
    return replace(config, mode=cast(RoleMode, str(mode)))


async def preview(call: Call[Any, Any, Any], guild_id: int, config: RewardConfig) -> Reply:
    """200 with what a sync under `config` would change now (SPEC §13 "Preview before change")."""
    checks = call.platform.require_level_roles()
    async with call.platform.read() as conn:
        members = await read_members(conn, guild_id)
    result = await checks.preview(guild_id, members, config)
    body = LevelRolePreview(
        adds=result.adds,
        removes=result.removes,
        members_affected=result.members_affected,
        sample=[
            PreviewChange(user_id=m.user_id, display_name=m.display_name, add=list(m.add), remove=list(m.remove))
            for m in result.sample
        ],
    )
    return Reply(body, status=200)
