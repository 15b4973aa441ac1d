"""Who is a guild admin (SPEC §17.1, §21.3): pure, so commands and the API share one rule.

Admin = owns the guild, or holds the Administrator permission, or holds a role listed in
`access.admin_role_ids`. The inputs are live data supplied by the caller (gateway member/role cache, or a REST
lookup for guilds owned by another process); this function never reads anything itself.
"""

from __future__ import annotations

from collections.abc import Collection


def is_guild_admin(
    *,
    user_id: int,
    owner_id: int | None,
    role_ids: Collection[int],
    has_administrator: bool,
    admin_role_ids: Collection[int],
) -> bool:
    if owner_id is not None and user_id == owner_id:
        return True
    if has_administrator:
        return True
    return any(role in admin_role_ids for role in role_ids)
