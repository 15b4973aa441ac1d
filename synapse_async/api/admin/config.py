"""Admin routes of the guild's reward configuration and member import/export (SPEC §20, §20.1, §9.1).

Settings reset, the channel snapshot, the four §9.1 rule tables (channel-type defaults, channel overrides, role
multipliers, no-XP targets), `rewards/explain`, and member export/import. Handlers are thin: the route contract
validates path, query and body; persistence, audit and NOTIFY live in `services/reward_rules.py`,
`services/settings.py` and `imports/service.py`. A PUT answers 201 when it created the row and 200 when it
replaced one (§20: create → 201, update → 200); a delete of a row that does not exist is a 404.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, Literal

from pydantic import Field

from synapse_async.api.admin.lake import JobModel
from synapse_async.api.admin.level_role_guard import (
    MODE_KEY,
    PREVIEW,
    DryRunQuery,
    committed_config,
    not_previewable,
    preview,
    refuse_unsafe,
    with_mode,
    with_reward,
)
from synapse_async.api.authn import require_csrf
from synapse_async.api.contract import Access, Api, Call, Reply
from synapse_async.api.errors import ApiError
from synapse_async.api.platform import ApiPlatform
from synapse_async.api.schema import (
    GuildPath,
    Items,
    NoParams,
    ResponseModel,
    Snowflake,
    StrictModel,
    UtcTime,
)
from synapse_async.imports.formats import DocumentTooLarge, ImportFormatError
from synapse_async.imports.service import (
    ImportActive,
    ImportRejected,
    active_import,
    export_members,
    preview_import,
    submit_import,
)
from synapse_async.imports.slots import ImportBusy, ImportUploading
from synapse_async.jobs.store import JobActive
from synapse_async.rewards.multipliers import explain
from synapse_async.rewards.roles import dangerous_permissions
from synapse_async.services import reward_rules as rules
from synapse_async.services.level_roles import (
    LevelRoleLimit,
    RoleNotAssignable,
    delete_level_role,
    put_level_role,
    request_sync,
)
from synapse_async.services.reward_rules import RuleTable, UnknownTarget
from synapse_async.services.settings import SettingsRejected, reset_setting
from synapse_async.settings import REGISTRY

api = Api()
_TAG: Final = "admin-config"

# §6.1: channel types that carry multiplier defaults (not `category`), and reward kinds or `*`.
MultiplierChannelType = Literal["text", "announcement", "forum", "media", "voice", "stage"]
RuleEventType = Literal["message", "reaction_given", "reaction_received", "thread_create", "voice_tick", "*"]
RewardEventType = Literal["message", "reaction_given", "reaction_received", "thread_create", "voice_tick"]
NoXpTargetType = Literal["channel", "role"]

_MULT = Field(ge=0, le=10, description="0–10, stored with 3 decimals")


# --- models -----------------------------------------------------------------------------------------------------


class SettingPath(GuildPath):
    key: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z_]*(\.[a-z0-9_]+)+$", description="A §5.2 key")


class ChannelItem(ResponseModel):
    channel_id: Snowflake
    name: str
    type: str
    parent_id: Snowflake | None
    category_name: str | None
    deleted: bool


class MultiplierBody(StrictModel):
    xp_multiplier: float = _MULT
    star_multiplier: float = _MULT


class OverrideBody(MultiplierBody):
    reason: str | None = Field(None, max_length=200)


class NoXpBody(StrictModel):
    reason: str | None = Field(None, max_length=200)


class TypeDefaultPath(GuildPath):
    channel_type: MultiplierChannelType
    event_type: RuleEventType


class OverridePath(GuildPath):
    channel_id: Snowflake
    event_type: RuleEventType


class RolePath(GuildPath):
    role_id: Snowflake


class NoXpPath(GuildPath):
    target_type: NoXpTargetType
    target_id: Snowflake


class OverridesQuery(StrictModel):
    channel_id: Snowflake | None = None


class TypeDefaultItem(ResponseModel):
    channel_type: str
    event_type: str
    xp_multiplier: float
    star_multiplier: float
    updated_at: UtcTime


class OverrideItem(ResponseModel):
    channel_id: Snowflake
    event_type: str
    xp_multiplier: float
    star_multiplier: float
    reason: str | None
    channel_exists: bool
    updated_at: UtcTime


class RoleMultiplierItem(ResponseModel):
    role_id: Snowflake
    xp_multiplier: float
    star_multiplier: float
    role_exists: bool
    updated_at: UtcTime


class NoXpItem(ResponseModel):
    target_type: str
    target_id: Snowflake
    reason: str | None
    target_exists: bool
    created_at: UtcTime


class ExplainQuery(StrictModel):
    channel_id: Snowflake
    event_type: RewardEventType
    parent_id: Snowflake | None = Field(None, description="The parent channel when `channel_id` is a thread")
    user_id: Snowflake | None = None


class Explanation(ResponseModel):
    event_type: str
    channel_id: Snowflake | None
    parent_id: Snowflake | None
    is_thread: bool
    base_channel_id: Snowflake | None
    channel_type: str | None
    category_id: Snowflake | None
    user_id: Snowflake | None
    role_ids: list[Snowflake]
    steps: list[dict[str, Any]]
    channel_rule: str
    channel_rule_event_type: str | None
    channel_multiplier: dict[str, Any]
    role_factors: list[dict[str, Any]]
    role_multiplier: dict[str, float]
    no_xp: dict[str, Any]
    final_multiplier: dict[str, float]


class ImportQuery(StrictModel):
    mode: Literal["add", "replace"] = "add"
    dry_run: bool = False
    levels: Literal["keep", "recompute"] | None = None
    """`keep`: a row's level at the other bot is kept (XP set from it); `recompute`: the level follows from its XP.
    Unset: `keep` for other bots' exports, `recompute` for ours; the report's `levels` says which applied."""


class ImportResult(ResponseModel):
    """202: the queued `import` job (`job_id`, `kind`, `status`); 200 (dry run): `report`, the preview of §20.1
    (counts, XP and gold deltas, level and level-role changes, invalid rows by index), and no job."""

    job_id: uuid.UUID | None = None
    kind: str = "import"
    status: str
    report: dict[str, Any] | None = None


class ExportMember(ResponseModel):
    user_id: Snowflake
    xp: int
    gold: int
    lifetime_stars: int
    github_username: str | None
    achievements: list[str]
    left: bool


class ExportDocument(ResponseModel):
    format: str
    version: int
    guild_id: Snowflake
    exported_at: str
    members: list[ExportMember]


# --- helpers ----------------------------------------------------------------------------------------------------


def _unknown(exc: UnknownTarget) -> ApiError:
    return ApiError.not_found(f"Unknown {exc.kind} {exc.target_id} in this guild.")


def _rounded(body: MultiplierBody) -> dict[str, object]:
    """NUMERIC(6,3): the value the table will hold, so the response and the audit row show what was stored."""
    values: dict[str, object] = body.model_dump()
    values["xp_multiplier"] = round(body.xp_multiplier, 3)
    values["star_multiplier"] = round(body.star_multiplier, 3)
    return values


def _rule_key(call: Call[Any, Any, Any], spec: RuleTable) -> dict[str, object]:
    """The rule's key columns, read from the path: each rule route's path model names its fields after them."""
    return {column: getattr(call.path, column) for column in spec.keys}


async def _put(
    call: Call[Any, Any, Any],
    spec: RuleTable,
    values: dict[str, object],
    item: Callable[[dict[str, Any]], ResponseModel],
) -> Reply:
    """PUT of one rule (keyed by the path): 201 when new, 200 when replaced; 404 for an unknown channel or role."""
    try:
        async with call.platform.sessions() as sessions:
            result = await rules.put_rule(
                sessions, spec, call.path.guild_id, _rule_key(call, spec), values, call.actor()
            )
    except UnknownTarget as exc:
        raise _unknown(exc) from None
    return Reply(item(result.row), status=201 if result.created else 200)


async def _delete(call: Call[Any, Any, Any], spec: RuleTable) -> Reply:
    """DELETE of one rule (keyed by the path): 204, or 404 when there is no such rule."""
    async with call.platform.sessions() as sessions:
        deleted = await rules.delete_rule(sessions, spec, call.path.guild_id, _rule_key(call, spec), call.actor())
    if not deleted:
        raise ApiError.not_found("No such rule.")
    return Reply(status=204)


async def _list(call: Call[Any, Any, Any], spec: RuleTable, channel_id: int | None = None) -> list[dict[str, Any]]:
    async with call.platform.read() as conn:
        return await rules.list_rules(conn, spec, call.path.guild_id, channel_id=channel_id)


def _type_default(row: dict[str, Any]) -> TypeDefaultItem:
    return TypeDefaultItem(**row)


def _override(row: dict[str, Any]) -> OverrideItem:
    return OverrideItem(**{**row, "channel_exists": row.get("target_exists", True)})


def _role_multiplier(row: dict[str, Any]) -> RoleMultiplierItem:
    return RoleMultiplierItem(**{**row, "role_exists": row.get("target_exists", True)})


def _no_xp(row: dict[str, Any]) -> NoXpItem:
    return NoXpItem(**{**row, "target_exists": row.get("target_exists", True)})


_G: Final = "/api/admin/guilds/{guild_id}"


# --- settings reset and channels --------------------------------------------------------------------------------


@api.route(
    "DELETE", _G + "/settings/{key}", summary="Reset one setting to its default", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=SettingPath, query=DryRunQuery, status=204, alternatives=PREVIEW,
)  # fmt: skip
async def admin_reset_setting(call: Call[SettingPath, DryRunQuery, None]) -> Reply:
    """Deletes the guild's override (audited, NOTIFY, jobs per §5.1); an unknown key is a 404, a reset that would
    break a cross-field rule a 400 naming it. Resetting a key that already has its default is a no-op 204.
    `dry_run=true` previews a reset of `level_roles.mode` (§13); other keys cannot be previewed (400)."""
    if call.query.dry_run:
        if call.path.key != MODE_KEY:
            raise ApiError.validation([not_previewable()])
        config = await committed_config(call, call.path.guild_id)
        return await preview(call, call.path.guild_id, with_mode(config, REGISTRY[MODE_KEY].default))
    try:
        async with call.platform.sessions() as sessions:
            await reset_setting(sessions, call.path.guild_id, call.path.key, call.actor())
    except SettingsRejected as exc:
        if all(p.problem == "unknown_setting" for p in exc.problems):
            raise ApiError.not_found(f"Unknown setting {call.path.key[:100]!r}.") from None
        raise ApiError(400, "validation_error", "Reset rejected.", [p.as_detail() for p in exc.problems]) from None
    return Reply(status=204)


@api.route(
    "GET", _G + "/channels", summary="The guild's channels, removed ones flagged", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, response=Items[ChannelItem],
)  # fmt: skip
async def admin_channels(call: Call[GuildPath, NoParams, None]) -> Items[ChannelItem]:
    """The synced snapshot (§6.1) every process shares, with each channel's category name."""
    async with call.platform.read() as conn:
        rows = await rules.list_channels(conn, call.path.guild_id)
    return Items[ChannelItem](items=[ChannelItem(**r) for r in rows])


class RoleItem(ResponseModel):
    role_id: Snowflake
    name: str
    position: int
    managed: bool
    dangerous_permissions: list[str]


@api.route(
    "GET", _G + "/roles", summary="The guild's roles, highest first", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, response=Items[RoleItem],
)  # fmt: skip
async def admin_roles(call: Call[GuildPath, NoParams, None]) -> Items[RoleItem]:
    """The synced roles (no `@everyone`, none deleted) for the console's pickers, each with the dangerous
    permissions it grants (§13), so a picker can say why a role cannot become a level reward before it is tried."""
    async with call.platform.read() as conn:
        rows = await rules.list_roles(conn, call.path.guild_id)
    return Items[RoleItem](
        items=[
            RoleItem(
                role_id=r["role_id"],
                name=r["name"],
                position=r["position"],
                managed=r["managed"],
                dangerous_permissions=list(dangerous_permissions(r["permissions"])),
            )
            for r in rows
        ]
    )


# --- channel-type defaults --------------------------------------------------------------------------------------


@api.route(
    "GET", _G + "/channel-type-defaults", summary="Multiplier defaults per channel type", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, response=Items[TypeDefaultItem],
)  # fmt: skip
async def admin_type_defaults(call: Call[GuildPath, NoParams, None]) -> Items[TypeDefaultItem]:
    """Step 4 of §9.1."""
    rows = await _list(call, rules.TYPE_DEFAULTS)
    return Items[TypeDefaultItem](items=[TypeDefaultItem(**r) for r in rows])


@api.route(
    "PUT", _G + "/channel-type-defaults/{channel_type}/{event_type}", summary="Set a channel-type default",
    tag=_TAG, access=Access.GUILD_ADMIN, path_model=TypeDefaultPath, body=MultiplierBody,
    response=TypeDefaultItem, responses={201: "Created"},
)  # fmt: skip
async def admin_put_type_default(call: Call[TypeDefaultPath, NoParams, MultiplierBody]) -> Reply:
    """201 when new, 200 when replaced; audited, the cache reloads on commit."""
    return await _put(call, rules.TYPE_DEFAULTS, _rounded(call.body), _type_default)


@api.route(
    "DELETE", _G + "/channel-type-defaults/{channel_type}/{event_type}", summary="Remove a channel-type default",
    tag=_TAG, access=Access.GUILD_ADMIN, path_model=TypeDefaultPath, status=204,
)  # fmt: skip
async def admin_delete_type_default(call: Call[TypeDefaultPath, NoParams, None]) -> Reply:
    return await _delete(call, rules.TYPE_DEFAULTS)


# --- channel overrides ------------------------------------------------------------------------------------------


@api.route(
    "GET", _G + "/channel-overrides", summary="Channel and category overrides", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, query=OverridesQuery, response=Items[OverrideItem],
)  # fmt: skip
async def admin_overrides(call: Call[GuildPath, OverridesQuery, None]) -> Items[OverrideItem]:
    """Steps 1–3 of §9.1; overrides of removed channels stay listed with `channel_exists` false."""
    rows = await _list(call, rules.CHANNEL_OVERRIDES, call.query.channel_id)
    return Items[OverrideItem](items=[_override(r) for r in rows])


@api.route(
    "PUT", _G + "/channel-overrides/{channel_id}/{event_type}", summary="Set a channel or category override",
    tag=_TAG, access=Access.GUILD_ADMIN, path_model=OverridePath, body=OverrideBody, response=OverrideItem,
    responses={201: "Created"},
)  # fmt: skip
async def admin_put_override(call: Call[OverridePath, NoParams, OverrideBody]) -> Reply:
    """The channel must be a live channel or category of the guild (404 otherwise)."""
    return await _put(call, rules.CHANNEL_OVERRIDES, _rounded(call.body), _override)


@api.route(
    "DELETE", _G + "/channel-overrides/{channel_id}/{event_type}", summary="Remove a channel override",
    tag=_TAG, access=Access.GUILD_ADMIN, path_model=OverridePath, status=204,
)  # fmt: skip
async def admin_delete_override(call: Call[OverridePath, NoParams, None]) -> Reply:
    """Works for removed channels too, so their leftover overrides can be cleaned up."""
    return await _delete(call, rules.CHANNEL_OVERRIDES)


# --- role multipliers -------------------------------------------------------------------------------------------


@api.route(
    "GET", _G + "/role-multipliers", summary="Role multipliers", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, response=Items[RoleMultiplierItem],
)  # fmt: skip
async def admin_role_multipliers(call: Call[GuildPath, NoParams, None]) -> Items[RoleMultiplierItem]:
    """The highest XP and star factors among a member's roles apply, independently (§9.1)."""
    rows = await _list(call, rules.ROLE_MULTIPLIERS)
    return Items[RoleMultiplierItem](items=[_role_multiplier(r) for r in rows])


@api.route(
    "PUT", _G + "/role-multipliers/{role_id}", summary="Set a role multiplier", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=RolePath, body=MultiplierBody, response=RoleMultiplierItem,
    responses={201: "Created"},
)  # fmt: skip
async def admin_put_role_multiplier(call: Call[RolePath, NoParams, MultiplierBody]) -> Reply:
    """The role must exist in the guild (404 otherwise)."""
    return await _put(call, rules.ROLE_MULTIPLIERS, _rounded(call.body), _role_multiplier)


@api.route(
    "DELETE", _G + "/role-multipliers/{role_id}", summary="Remove a role multiplier", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=RolePath, status=204,
)  # fmt: skip
async def admin_delete_role_multiplier(call: Call[RolePath, NoParams, None]) -> Reply:
    return await _delete(call, rules.ROLE_MULTIPLIERS)


# --- no-XP targets ----------------------------------------------------------------------------------------------


@api.route(
    "GET", _G + "/no-xp", summary="No-XP channels and roles", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, response=Items[NoXpItem],
)  # fmt: skip
async def admin_no_xp(call: Call[GuildPath, NoParams, None]) -> Items[NoXpItem]:
    """Items in a no-XP channel (or its parent or category) or earned by a no-XP role pay nothing (§9.1)."""
    rows = await _list(call, rules.NO_XP_TARGETS)
    return Items[NoXpItem](items=[_no_xp(r) for r in rows])


@api.route(
    "PUT", _G + "/no-xp/{target_type}/{target_id}", summary="Mark a channel or role as no-XP", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=NoXpPath, body=NoXpBody, response=NoXpItem, responses={201: "Created"},
)  # fmt: skip
async def admin_put_no_xp(call: Call[NoXpPath, NoParams, NoXpBody]) -> Reply:
    """The channel (or category) or role must exist in the guild (404 otherwise)."""
    return await _put(call, rules.NO_XP_TARGETS, call.body.model_dump(), _no_xp)


@api.route(
    "DELETE", _G + "/no-xp/{target_type}/{target_id}", summary="Remove a no-XP target", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=NoXpPath, status=204,
)  # fmt: skip
async def admin_delete_no_xp(call: Call[NoXpPath, NoParams, None]) -> Reply:
    return await _delete(call, rules.NO_XP_TARGETS)


# --- rewards/explain --------------------------------------------------------------------------------------------


async def _roles_of(platform: ApiPlatform, guild_id: int, user_id: int) -> frozenset[int]:
    roles = await platform.require_admins().member_roles(guild_id, user_id)
    if roles is None:
        raise ApiError.not_found("This user is not a member of the guild.")
    return roles


@api.route(
    "GET", _G + "/rewards/explain", summary="Why a member gets this much here", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, query=ExplainQuery, response=Explanation,
)  # fmt: skip
async def admin_explain(call: Call[GuildPath, ExplainQuery, None]) -> Explanation:
    """The matched rule of each §9.1 step, role factors, no-XP hits and final multipliers, computed by the very
    functions the pipeline pays with, on the same cached configuration; with `user_id`, the member's live roles."""
    q = call.query
    guild = call.platform.components.require_cache().guild(call.path.guild_id)
    if q.parent_id is None and q.channel_id not in guild.channels:
        raise ApiError.not_found("Unknown channel (for a thread, give its parent_id).")
    roles = frozenset() if q.user_id is None else await _roles_of(call.platform, call.path.guild_id, q.user_id)
    body = explain(guild, q.channel_id, q.parent_id, q.event_type, sorted(roles))
    return Explanation.model_validate({**body, "user_id": q.user_id, "role_ids": sorted(roles)})


# --- members export / import ------------------------------------------------------------------------------------


@api.route(
    "GET", _G + "/members/export", summary="Export every member (§20.1 document)", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, response=ExportDocument,
)  # fmt: skip
async def admin_export_members(call: Call[GuildPath, NoParams, None]) -> ExportDocument:
    """XP, gold, stars, GitHub name and badges of each member row; audited as `members.export`. With the session
    cookie it also needs `X-CSRF-Token` (a GET with an effect: no prefetch or cross-site link may trigger it)."""
    require_csrf(call.request, call.require_principal())
    db = call.platform.components.require_db()
    async with call.platform.gate.slot():
        document = await export_members(db, call.path.guild_id, actor=call.actor())
    return ExportDocument.model_validate(document)


def _import_limit(platform: ApiPlatform) -> int:
    return platform.config.import_max_bytes


_RETRY_SECONDS: Final = 5


@asynccontextmanager
async def _import_gate(call: Call[GuildPath, ImportQuery, None]) -> AsyncIterator[None]:
    """Before the document is read (SPEC §20.1): one of the process's import slots (429 when none is free; 409 when
    this guild's import is already being uploaded here) and, for a real import, no active import job (409)."""
    guild_id, dry_run = call.path.guild_id, call.query.dry_run
    try:
        with call.platform.import_slots.hold(guild_id, dry_run=dry_run):
            if not dry_run:
                active = await active_import(call.platform.components.require_db(), guild_id)
                if active is not None:
                    raise ImportActive(active)
            yield
    except ImportBusy:
        raise ApiError(
            429,
            "rate_limited",
            "Too many import documents are being processed; try again shortly.",
            {"retry_after": _RETRY_SECONDS, "reason": "import_slots"},
            headers={"Retry-After": str(_RETRY_SECONDS)},
        ) from None
    except ImportUploading:
        raise ApiError.conflict("job_active", "An import of this guild is being uploaded.", job_id=None) from None
    except ImportActive as exc:
        raise ApiError.conflict(
            "job_active", "An import is already active for this guild.", job_id=str(exc.job_id)
        ) from None


@api.route(
    "POST", _G + "/members/import", summary="Import members (our document or another bot's export)", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, query=ImportQuery, response=ImportResult, status=202,
    responses={200: "Dry run: the preview, nothing written"}, raw_body=_import_limit, body_gate=_import_gate,
)  # fmt: skip
async def admin_import_members(call: Call[GuildPath, ImportQuery, bytearray]) -> Reply:
    """The body is the document itself (JSON or CSV, ≤ `IMPORT_MAX_BYTES`, else 413), read only once the admin
    check, the rate limit and an import slot passed (429 when two documents are already being processed, 409 while
    this guild has an import). `dry_run=true` → 200 with the preview, nothing written; else 202 with the queued
    `import` job."""
    platform, q, guild_id = call.platform, call.query, call.path.guild_id
    db = platform.components.require_db()
    limit = platform.config.import_max_bytes
    try:
        async with platform.gate.slot():
            if q.dry_run:
                cache = platform.components.require_cache()
                report = await preview_import(
                    db, cache, guild_id, call.body, mode=q.mode, max_bytes=limit, levels=q.levels
                )
                return Reply(ImportResult(status="dry_run", report=report), status=200)
            job_id = await submit_import(
                db, guild_id, call.body, mode=q.mode, actor=call.actor(), max_bytes=limit, levels=q.levels
            )
    except DocumentTooLarge as exc:
        raise ApiError(413, "payload_too_large", str(exc)) from None
    except ImportFormatError as exc:
        detail = {"field": exc.field, "problem": "invalid_value", "message": str(exc)[:300]}
        raise ApiError(400, "validation_error", "The document cannot be imported.", [detail]) from None
    except ImportRejected as exc:
        details = [
            {"field": f"body.{row['index']}", "problem": "invalid_value", "message": str(row["reason"])[:200]}
            for row in exc.invalid
        ]
        raise ApiError(400, "validation_error", f"{exc.count} invalid rows; nothing imported.", details) from None
    except ImportActive as exc:
        raise ApiError.conflict(
            "job_active", "An import is already active for this guild.", job_id=str(exc.job_id)
        ) from None
    return Reply(ImportResult(job_id=job_id, status="queued"))


# --- level roles ------------------------------------------------------------------------------------------------


class LevelRolePath(GuildPath):
    role_id: Snowflake


class LevelRoleBody(StrictModel):
    level: int = Field(ge=1, le=1000)


class LevelRoleItem(ResponseModel):
    role_id: Snowflake
    role_name: str | None
    level: int
    assignable: bool
    problem: str | None = Field(description="§13 pre-check: missing_manage_roles, role_above_bot, role_managed, …")


class LevelRoles(ResponseModel):
    mode: str
    restore_on_rejoin: bool
    items: list[LevelRoleItem]


def _level_role(row: dict[str, Any], problem: str | None) -> LevelRoleItem:
    if not row.get("target_exists", True):
        problem = "role_missing"
    return LevelRoleItem(
        role_id=row["role_id"], role_name=row.get("role_name"), level=row["level"], assignable=problem is None,
        problem=problem,
    )  # fmt: skip


@api.route(
    "GET", _G + "/level-roles", summary="Level role rewards, pre-checked", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, response=LevelRoles,
)  # fmt: skip
async def admin_level_roles(call: Call[GuildPath, NoParams, None]) -> LevelRoles:
    """Each reward role with the §13 pre-check as things stand now (`assignable`, and the `problem` a sync would
    skip it for), ordered by level; with the guild's `level_roles.*` settings."""
    guild_id = call.path.guild_id
    rows = sorted(await _list(call, rules.LEVEL_ROLES), key=lambda r: (r["level"], r["role_id"]))
    problems = await call.platform.require_level_roles().precheck(guild_id, [r["role_id"] for r in rows])
    settings = call.platform.components.require_cache().settings(guild_id)
    return LevelRoles(
        mode=settings.str("level_roles.mode"),
        restore_on_rejoin=settings.bool("level_roles.restore_on_rejoin"),
        items=[_level_role(r, problems.get(r["role_id"])) for r in rows],
    )


@api.route(
    "PUT", _G + "/level-roles/{role_id}", summary="Reward a role at a level", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=LevelRolePath, query=DryRunQuery, body=LevelRoleBody,
    response=LevelRoleItem, responses={201: "Created"}, alternatives=PREVIEW,
)  # fmt: skip
async def admin_put_level_role(call: Call[LevelRolePath, DryRunQuery, LevelRoleBody]) -> Reply:
    """Safe roles only (§13): a role granting a dangerous permission, an `access.admin_role_ids` role, or (user
    tokens, owner excepted) one not strictly below the caller's highest role is a 400 `dangerous_role`. Then
    pre-checked: an unknown role is a 404, a role nobody can assign (`@everyone`, integration-managed) a 409; one
    the bot cannot manage yet (hierarchy, Manage Roles) is stored with its `problem`, fixable on Discord. At most
    50 per guild (409). Queues a `level_role_sync` job in the same transaction; `dry_run=true` answers the preview
    after the same checks and writes nothing."""
    guild_id, role_id = call.path.guild_id, call.path.role_id
    config = await committed_config(call, guild_id)
    await refuse_unsafe(call, guild_id, role_id, config)
    problem = (await call.platform.require_level_roles().precheck(guild_id, [role_id])).get(role_id)
    dry_run = call.query.dry_run
    try:
        async with call.platform.sessions() as sessions:
            result = await put_level_role(sessions, guild_id, role_id, call.body.level, call.actor(), dry_run=dry_run)
    except UnknownTarget as exc:
        raise _unknown(exc) from None
    except LevelRoleLimit as exc:
        raise ApiError.conflict("limit_reached", str(exc)) from None
    except RoleNotAssignable as exc:
        raise ApiError.conflict("role_not_assignable", str(exc)) from None
    if result is None:
        return await preview(call, guild_id, with_reward(config, role_id, call.body.level))
    async with call.platform.read() as conn:
        rows = [r for r in await rules.list_rules(conn, rules.LEVEL_ROLES, guild_id) if r["role_id"] == role_id]
    row = rows[0] if rows else result.row
    return Reply(_level_role(row, problem), status=201 if result.created else 200)


@api.route(
    "DELETE", _G + "/level-roles/{role_id}", summary="Stop rewarding a role", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=LevelRolePath, query=DryRunQuery, status=204, alternatives=PREVIEW,
)  # fmt: skip
async def admin_delete_level_role(call: Call[LevelRolePath, DryRunQuery, None]) -> Reply:
    """Queues a `level_role_sync`, which takes the role back from members the bot gave it to (never from members
    who got it from a person). `dry_run=true`: 200 with the preview, nothing written."""
    guild_id, role_id, dry_run = call.path.guild_id, call.path.role_id, call.query.dry_run
    config = await committed_config(call, guild_id) if dry_run else None
    async with call.platform.sessions() as sessions:
        deleted = await delete_level_role(sessions, guild_id, role_id, call.actor(), dry_run=dry_run)
    if not deleted:
        raise ApiError.not_found("This role is not a level role.")
    if config is not None:
        return await preview(call, guild_id, with_reward(config, role_id, None))
    return Reply(status=204)


class SyncBody(StrictModel):
    """No parameters: every member of the guild is synced."""


@api.route(
    "POST", _G + "/level-roles/sync", summary="Sync every member's level roles now", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, query=DryRunQuery, body=SyncBody, response=JobModel,
    status=202, responses={409: "A sync is already active (`details.job_id`)"}, alternatives=PREVIEW,
)  # fmt: skip
async def admin_sync_level_roles(call: Call[GuildPath, DryRunQuery, SyncBody]) -> Reply:
    """202 with the queued `level_role_sync` job (≤ 2 member updates/s, §13); 409 while one is active.
    `dry_run=true`: 200 with what the sync would change now, nothing queued."""
    if call.query.dry_run:
        return await preview(call, call.path.guild_id, await committed_config(call, call.path.guild_id))
    try:
        async with call.platform.sessions() as sessions:
            job = await request_sync(sessions, call.path.guild_id, call.actor())
    except JobActive as exc:
        raise ApiError.conflict(
            "job_active", "A level_role_sync job is already active.", job_id=str(exc.job_id)
        ) from None
    return Reply(JobModel.model_validate(job.to_json()), status=202)
