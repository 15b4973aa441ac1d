"""Admin routes of the live logs: a guild's entries, the operators' view and the capture level (SPEC §20, §24.3)."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import Field

from synapse_async.api.admin.common import BASE, conflict
from synapse_async.api.contract import Access, Api, Call
from synapse_async.api.errors import ApiError
from synapse_async.api.schema import (
    GuildPath,
    NoParams,
    ResponseModel,
    Snowflake,
    StrictModel,
)
from synapse_async.obs.logging import current_ring
from synapse_async.obs.ring import level_name, parse_level
from synapse_async.services.audit import record_alone

api = Api()

# --- live logs --------------------------------------------------------------------------------------------------

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
_LOGS_TAG: Final = "logs"


class GuildLogsQuery(StrictModel):
    level: LogLevel | None = None
    after_seq: int = Field(0, ge=0, le=2**53)
    limit: int = Field(100, ge=1, le=1000)


class OperatorLogsQuery(GuildLogsQuery):
    logger: str | None = Field(None, min_length=1, max_length=100)
    guild_id: Snowflake | None = None


class LogEntryModel(ResponseModel):
    seq: int
    ts: str
    level: str
    logger: str
    event: str
    guild_id: str | None
    fields: dict[str, Any]


class LogsModel(ResponseModel):
    """Entries in ascending `seq`; poll with `after_seq` = the last seen. `first_seq` is the oldest still held."""

    items: list[LogEntryModel]
    capture_level: str
    first_seq: int
    last_seq: int


class LogLevelBody(StrictModel):
    level: LogLevel


class LogLevelModel(ResponseModel):
    capture_level: str


def _logs(query: GuildLogsQuery, *, guild_id: int | None, logger: str | None = None, operator: bool) -> LogsModel:
    """Entries of the process's ring (SPEC §24.3); a process that captures none (embedded in tests) has none.

    Operators read the operator ring (everything, tracebacks included, filtered by guild if asked); guild admins
    read their guild's own ring, which no other guild and no anonymous request can flush, without tracebacks."""
    ring = current_ring()
    if ring is None:
        return LogsModel(items=[], capture_level="info", first_seq=1, last_seq=0)
    if operator:
        entries = ring.entries(
            after_seq=query.after_seq,
            min_level=query.level,
            guild_id=None if guild_id is None else str(guild_id),
            logger=logger,
            limit=query.limit,
        )
        first_seq = ring.first_seq
    else:
        assert guild_id is not None
        entries = ring.guild_entries(guild_id, after_seq=query.after_seq, min_level=query.level, limit=query.limit)
        first_seq = ring.guild_first_seq(guild_id)
    return LogsModel(
        items=[LogEntryModel(**entry.as_dict()) for entry in entries],  # type: ignore[arg-type]
        capture_level=level_name(ring.capture_level),
        first_seq=first_seq,
        last_seq=ring.last_seq,
    )


def _require_operator(call: Call[Any, Any, Any]) -> None:
    """Operators are the users in `OPERATOR_USER_IDS` (§21.3); service tokens never are."""
    claims = call.require_principal().claims
    if claims.kind != "user" or claims.user_id not in call.platform.config.operator_user_ids:
        raise ApiError(403, "forbidden", "Only operators may use the process logs.")


@api.route(
    "GET", BASE + "/logs", summary="This process's log entries tagged with the guild", tag=_LOGS_TAG,
    access=Access.GUILD_ADMIN, path_model=GuildPath, query=GuildLogsQuery, response=LogsModel,
)  # fmt: skip
async def admin_guild_logs(call: Call[GuildPath, GuildLogsQuery, None]) -> LogsModel:
    """Only this guild's ring: other guilds', untagged and anonymous-request entries are never shown, nor
    tracebacks or exception text (an `error_id` instead, which the operator log resolves)."""
    return _logs(call.query, guild_id=call.path.guild_id, operator=False)


@api.route(
    "GET", "/api/admin/logs", summary="This process's log entries (operators)", tag=_LOGS_TAG,
    access=Access.AUTHENTICATED, query=OperatorLogsQuery, response=LogsModel,
)  # fmt: skip
async def admin_operator_logs(call: Call[NoParams, OperatorLogsQuery, None]) -> LogsModel:
    """Filter by level, logger (and its children) and guild."""
    _require_operator(call)
    return _logs(call.query, guild_id=call.query.guild_id, logger=call.query.logger, operator=True)


@api.route(
    "PUT", "/api/admin/logs/level", summary="Change the live-log capture level (operators)", tag=_LOGS_TAG,
    access=Access.AUTHENTICATED, body=LogLevelBody, response=LogLevelModel,
)  # fmt: skip
async def admin_set_log_level(call: Call[NoParams, NoParams, LogLevelBody]) -> LogLevelModel:
    """Applies to what is recorded from now on, in this process (§24.3); audited as `logs.level`."""
    _require_operator(call)
    ring = current_ring()
    if ring is None:
        raise conflict("no_live_logs", "This process captures no live logs.")
    before = level_name(ring.capture_level)
    async with call.platform.sessions() as sessions:
        await record_alone(
            sessions, call.actor(), guild_id=None, action="logs.level", target_type="logs",
            before={"level": before}, after={"level": call.body.level},
        )  # fmt: skip
    ring.capture_level = parse_level(call.body.level)
    return LogLevelModel(capture_level=level_name(ring.capture_level))
