"""Admin route of manual awards: give or take XP and gold with a reason (SPEC §20, §10.3)."""

from __future__ import annotations

from typing import Final

from pydantic import Field

from synapse_async.api.admin.common import BASE, NOT_BLANK, applied, require_member
from synapse_async.api.contract import Access, Api, Call
from synapse_async.api.errors import ApiError, FieldProblem
from synapse_async.api.schema import (
    GuildPath,
    NoParams,
    ResponseModel,
    Snowflake,
    StrictModel,
)
from synapse_async.services.economy import (
    AMOUNT_LIMIT,
    REASON_MAX,
)

api = Api()
_ECONOMY_TAG: Final = "economy"


class AwardBody(StrictModel):
    user_id: Snowflake
    xp: int = Field(0, ge=-AMOUNT_LIMIT, le=AMOUNT_LIMIT)
    gold: int = Field(0, ge=-AMOUNT_LIMIT, le=AMOUNT_LIMIT)
    reason: str = Field(min_length=1, max_length=REASON_MAX, pattern=NOT_BLANK)


class AwardResultModel(ResponseModel):
    journal_id: int
    xp_applied: int
    gold_applied: int
    xp: int
    gold: int
    level: int


# --- awards -----------------------------------------------------------------------------------------------------


@api.route(
    "POST", BASE + "/awards", summary="Give or take XP and gold", tag=_ECONOMY_TAG, access=Access.GUILD_ADMIN,
    path_model=GuildPath, body=AwardBody, response=AwardResultModel,
)  # fmt: skip
async def admin_award(call: Call[GuildPath, NoParams, AwardBody]) -> AwardResultModel:
    """§10.3: negative amounts are clamped at 0 and the APPLIED amounts are returned; at least one is non-zero.
    The journal key is `award:<Idempotency-Key>` when the header is given (§7.5), so one operation pays once."""
    body = call.body
    if body.xp == 0 and body.gold == 0:
        raise ApiError.validation(
            [FieldProblem(f"{f}", "invalid_value", "xp and gold must not both be 0") for f in ("xp", "gold")]
        )
    await require_member(call, body.user_id)
    result = await call.platform.components.require_economy().award(
        guild_id=call.path.guild_id,
        user_id=body.user_id,
        xp=body.xp,
        gold=body.gold,
        reason=body.reason,
        actor=call.actor(),
        request_id=call.operation_id(),
    )
    return AwardResultModel(**applied(result))
