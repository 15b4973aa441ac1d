"""What the admin route tables share: the guild path prefix, id bounds, the 409 and PATCH-null rules, the known-
member check of awards and grants (a row, or live guild membership), and the applied-amount response fields
(SPEC §20, §18)."""

from __future__ import annotations

from typing import Any, Final

from synapse_async.api.contract import Call
from synapse_async.api.errors import ApiError
from synapse_async.api.schema import not_null as not_null  # re-exported: the PATCH models import it from here
from synapse_async.services.economy import (
    AwardResult,
)
from synapse_async.services.members import is_known_member

ID_MAX: Final = 2**63 - 1
BASE: Final = "/api/admin/guilds/{guild_id}"

# A reason or name has at least one character that is not white space (the services refuse blank ones).
NOT_BLANK: Final = r"\S"


def conflict(reason: str, message: str, **details: Any) -> ApiError:
    """The 409 of SPEC §18: code `conflict`, `details.reason` naming the clash."""
    return ApiError.conflict(reason, message, **details)


async def require_member(call: Call[Any, Any, Any], user_id: int) -> None:
    """Awards and grants go to a member the bot knows in this guild, or one Discord says is in it (§20: "a known
    member or in the guild"); the economy then creates the row (§20.1 last bullet). Anyone else → 404."""
    async with call.platform.read() as conn:
        if await is_known_member(conn, call.path.guild_id, user_id):
            return
    if await call.platform.require_admins().member_roles(call.path.guild_id, user_id) is None:
        raise ApiError.not_found("Unknown member.")


def applied(result: AwardResult) -> dict[str, int]:
    """The response fields an award, a grant and a revoke share: journal row, APPLIED deltas, balances after."""
    return {
        "journal_id": result.journal_id,
        "xp_applied": result.xp_applied,
        "gold_applied": result.gold_applied,
        "xp": result.xp,
        "gold": result.gold,
        "level": result.level,
    }
