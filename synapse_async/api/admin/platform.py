"""The platform's admin routes (SPEC §20): the caller's guilds, the settings registry, the audit log.

They are what the platform needs to be exercised end to end (live admin check, CSRF, idempotency, the shared
mutation limit and the audit write path through a real mutation); the rest of §20 builds on the same contract.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import Field
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB

from synapse_async.api.admin.level_role_guard import (
    MODE_KEY,
    PREVIEW,
    committed_config,
    not_previewable,
    preview,
    with_mode,
)
from synapse_async.api.contract import Access, Api, Call, Reply
from synapse_async.api.errors import ApiError
from synapse_async.api.public import Metrics, guild_metrics, icon_url
from synapse_async.api.schema import (
    SNOWFLAKE_PATTERN,
    GuildPath,
    Items,
    NoParams,
    Page,
    PageQuery,
    QueryTime,
    ResponseModel,
    Snowflake,
    StrictModel,
    UtcTime,
)
from synapse_async.domain.snowflakes import SNOWFLAKE_MAX
from synapse_async.services.settings import SettingsRejected, check_settings, update_settings
from synapse_async.settings import REGISTRY, SettingDef
from synapse_async.settings.validation import describe, normalize_stored, to_json

api = Api()
_TAG: Final = "admin"


class AdminGuild(ResponseModel):
    guild_id: Snowflake
    name: str
    icon_url: str | None


class Setting(ResponseModel):
    key: str
    type: str
    value: Any
    default: Any
    is_default: bool
    min: float | None
    max: float | None
    allowed: list[str] | None
    category: str
    description: str
    public: bool


_ID: Final[dict[str, Any]] = {
    "oneOf": [
        {"type": "string", "pattern": SNOWFLAKE_PATTERN},
        {"type": "integer", "minimum": 1, "maximum": SNOWFLAKE_MAX},
    ]
}
_TEXT_CHAR: Final = "[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]"  # what a string setting may hold (§5.2)


def _setting_schema(d: SettingDef) -> dict[str, Any]:
    """One registry entry as JSON Schema: the type and bounds `settings.validation` enforces."""
    bounds = {"minimum": d.min, "maximum": d.max} if d.type in ("int", "float") else {}
    match d.type:
        case "int":
            schema: dict[str, Any] = {"type": "integer", **bounds}
        case "float":
            schema = {"type": "number", **bounds}
        case "bool":
            schema = {"type": "boolean"}
        case "enum":
            schema = {"type": "string", "enum": list(d.allowed or ())}
        case "string":  # counted after trimming white space, which the pattern leaves outside the count
            low, high = int(d.min or 0), int(d.max or 10_000)
            inner = f"(?:{_TEXT_CHAR}{{0,{max(high - 2, 0)}}}[^\\s\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029])?"
            first = "[^\\s\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]"
            schema = {"type": "string", "minLength": low, "maxLength": high, "pattern": f"^{first}{inner}$"}
        case "snowflake":
            schema = {"oneOf": [*_ID["oneOf"], {"type": "null"}]} if d.nullable else dict(_ID)
        case _:  # snowflake_list
            schema = {"type": "array", "items": _ID, "maxItems": int(d.max or 100)}
    return {key: value for key, value in schema.items() if value is not None} | {"description": d.description}


def _values_schema(schema: dict[str, Any]) -> None:
    """`values` names known keys only (`additionalProperties: false`), each with its own type and bounds."""
    schema.update(
        type="object",
        properties={key: _setting_schema(d) for key, d in REGISTRY.items()},
        additionalProperties=False,
        minProperties=1,
    )


class SettingsPatch(StrictModel):
    values: dict[str, Any] = Field(min_length=1, max_length=len(REGISTRY), json_schema_extra=_values_schema)


class AuditQuery(PageQuery):
    actor_id: str | None = Field(None, min_length=1, max_length=40)
    action: str | None = Field(None, min_length=1, max_length=48)
    target_type: str | None = Field(None, min_length=1, max_length=32)
    target_id: str | None = Field(None, min_length=1, max_length=100)
    since: QueryTime | None = None
    until: QueryTime | None = None


class AuditItem(ResponseModel):
    id: int
    guild_id: Snowflake | None
    actor_id: str
    actor_kind: str
    via: str
    action: str
    target_type: str
    target_id: str | None
    before: Any
    after: Any
    reason: str | None
    client_ip: str | None
    request_id: str | None
    created_at: UtcTime


@api.route(
    "GET", "/api/admin/guilds", summary="Guilds the caller administers", tag=_TAG, access=Access.AUTHENTICATED,
    response=Items[AdminGuild],
)  # fmt: skip
async def admin_guilds(call: Call[NoParams, NoParams, None]) -> Items[AdminGuild]:
    """A user token's `candidates` live-checked now (§21.1), or a service token's guilds."""
    platform = call.platform
    ids = await platform.admin_guilds(call.require_principal().claims)
    cache = platform.components.require_cache()
    cdn = platform.config.discord_cdn_url
    items = []
    for guild_id in ids:
        info = cache.guild(guild_id).info
        if info is not None:
            items.append(
                AdminGuild(guild_id=guild_id, name=info.name, icon_url=icon_url(cdn, guild_id, info.icon_hash))
            )
    return Items[AdminGuild](items=items)


@api.route(
    "GET", "/api/admin/guilds/{guild_id}/metrics", summary="Guild totals, public pages on or off", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, response=Metrics,
)  # fmt: skip
async def admin_metrics(call: Call[GuildPath, NoParams, None]) -> Metrics:
    """The public metrics (§19) for the guild's admins, also while its public pages are off (the console overview)."""
    guild = call.platform.components.require_cache().guild(call.path.guild_id)
    if guild.info is None:
        raise ApiError.not_found("Unknown guild.")
    async with call.platform.read() as conn:
        return await guild_metrics(conn, guild)


_STORED = text("SELECT key, value FROM settings WHERE guild_id = :g").columns(value=JSONB)


async def _settings(call: Call[GuildPath, Any, Any]) -> Items[Setting]:
    async with call.platform.read() as conn:
        rows = (await conn.execute(_STORED, {"g": call.path.guild_id})).all()
    stored: dict[str, object] = {}
    for row in rows:
        if row.key in REGISTRY:
            try:
                stored[row.key] = normalize_stored(row.key, row.value)
            except ValueError:
                continue  # an unusable stored value counts as the default (services/settings.py does the same)
    items = []
    for key, definition in REGISTRY.items():
        value = stored.get(key, definition.default)
        items.append(Setting(**describe(key), value=to_json(key, value), is_default=key not in stored))  # type: ignore[arg-type]
    return Items[Setting](items=items)


@api.route(
    "GET", "/api/admin/guilds/{guild_id}/settings", summary="All settings of the guild", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, response=Items[Setting],
)  # fmt: skip
async def admin_get_settings(call: Call[GuildPath, NoParams, None]) -> Items[Setting]:
    """Every registry key with its value, default and rules (§5.2)."""
    return await _settings(call)


class SettingsQuery(StrictModel):
    dry_run: bool = Field(False, description=f"true: preview a {MODE_KEY} change (§13); nothing written")


@api.route(
    "PATCH", "/api/admin/guilds/{guild_id}/settings", summary="Change settings (all or nothing)", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, query=SettingsQuery, body=SettingsPatch,
    response=Items[Setting], alternatives=PREVIEW,
)  # fmt: skip
async def admin_patch_settings(call: Call[GuildPath, SettingsQuery, SettingsPatch]) -> Items[Setting] | Reply:
    """All-or-nothing (§5.1): one bad key writes nothing and the 400 names it; one audit row per changed key.
    `dry_run=true` with a `level_roles.mode` change: validated the same way, 200 with the preview of the sync it
    would queue (§13), nothing written; other changes cannot be previewed (400)."""
    if call.query.dry_run:
        if MODE_KEY not in call.body.values:
            raise ApiError.validation([not_previewable()])
        try:
            async with call.platform.sessions() as sessions:
                normalized = await check_settings(sessions, call.path.guild_id, call.body.values)
        except SettingsRejected as exc:
            raise ApiError(
                400, "validation_error", "Settings rejected.", [p.as_detail() for p in exc.problems]
            ) from None
        config = await committed_config(call, call.path.guild_id)
        return await preview(call, call.path.guild_id, with_mode(config, normalized[MODE_KEY]))
    try:
        async with call.platform.sessions() as sessions:
            await update_settings(sessions, call.path.guild_id, call.body.values, call.actor())
    except SettingsRejected as exc:
        raise ApiError(400, "validation_error", "Settings rejected.", [p.as_detail() for p in exc.problems]) from None
    return await _settings(call)


_AUDIT_FILTERS: Final = (
    ("actor_id", "actor_id = :actor_id"),
    ("action", "action = :action"),
    ("target_type", "target_type = :target_type"),
    ("target_id", "target_id = :target_id"),
    ("since", "created_at >= :since"),
    ("until", "created_at < :until"),
)


@api.route(
    "GET", "/api/admin/guilds/{guild_id}/audit", summary="The guild's audit log, newest first", tag=_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, query=AuditQuery, response=Page[AuditItem],
)  # fmt: skip
async def admin_audit(call: Call[GuildPath, AuditQuery, None]) -> Page[AuditItem]:
    """Filters by actor, action, target and time (§22); paginated."""
    q = call.query
    params: dict[str, Any] = {"g": call.path.guild_id, "limit": q.page_size, "offset": q.offset}
    where = ["guild_id = :g"]
    for name, clause in _AUDIT_FILTERS:
        value = getattr(q, name)
        if value is not None:
            where.append(clause)
            params[name] = value
    condition = " AND ".join(where)  # only the fixed clauses above; values are bound
    page_sql = text(
        f"""
        SELECT id, guild_id, actor_id, actor_kind, via, action, target_type, target_id, before, after, reason,
               host(client_ip) AS client_ip, request_id, created_at, count(*) OVER () AS total
          FROM audit_log WHERE {condition}
         ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset
        """
    ).columns(before=JSONB, after=JSONB)
    count_sql = text(f"SELECT count(*) FROM audit_log WHERE {condition}")
    async with call.platform.read() as conn:
        rows = (await conn.execute(page_sql, params)).all()
        total = rows[0].total if rows else (await conn.execute(count_sql, params)).scalar_one()
    items = [AuditItem(**{k: v for k, v in row._mapping.items() if k != "total"}) for row in rows]
    return Page[AuditItem](items=items, page=q.page, page_size=q.page_size, total=int(total))
