"""What members set about themselves: the GitHub link, the announcement preferences and whether their profile
is public (SPEC §17.2).

Both create the member row when it is missing (a member may set preferences before earning anything), in the same
transaction as the change. Preferences are read by the reward transaction from the table itself, so a change
applies to the very next event without any cache notification.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import TextClause, text

from synapse_async.db.engine import Database
from synapse_async.db.faults import INTERACTIVE, log_retries, retry_transient
from synapse_async.domain.github import github_problem

__all__ = ["PREFERENCE_LABELS", "MemberSettings", "Preference", "github_problem"]

Preference = Literal["level_up", "achievements", "awards", "public_profile"]
PREFERENCE_LABELS: dict[Preference, str] = {
    "level_up": "Level-up announcements",
    "achievements": "Achievement announcements",
    "awards": "Award announcements",
    "public_profile": "Public profile",
}
_PREFERENCE_COLUMNS: dict[Preference, str] = {
    "level_up": "announce_level_up",
    "achievements": "announce_achievements",
    "awards": "announce_awards",
    "public_profile": "public_profile",
}

_ENSURE_MEMBER = text(
    """
    INSERT INTO members (guild_id, user_id, display_name) VALUES (:g, :u, :name)
    ON CONFLICT (guild_id, user_id) DO NOTHING
    """
)
_SET_GITHUB = text("UPDATE members SET github_username = :gh, updated_at = now() WHERE guild_id = :g AND user_id = :u")


def _preference_sql(column: str) -> TextClause:
    return text(
        f"""
        INSERT INTO member_preferences (guild_id, user_id, {column}) VALUES (:g, :u, :on)
        ON CONFLICT (guild_id, user_id) DO UPDATE SET {column} = EXCLUDED.{column}, updated_at = now()
        """
    )


class MemberSettings:
    """Member-owned settings writes; built once by the runtime."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def link_github(self, *, guild_id: int, user_id: int, display_name: str, username: str | None) -> None:
        """Store the username (validated by the caller with `github_problem`), or remove it when None."""
        if username is not None and (problem := github_problem(username)) is not None:
            raise ValueError(f"username {problem}")
        params = {"g": guild_id, "u": user_id, "name": display_name[:100], "gh": username}
        await self._write("link_github", _SET_GITHUB, params)

    async def set_preference(
        self, *, guild_id: int, user_id: int, display_name: str, preference: Preference, on: bool
    ) -> None:
        params = {"g": guild_id, "u": user_id, "name": display_name[:100], "on": on}
        await self._write("set_preference", _preference_sql(_PREFERENCE_COLUMNS[preference]), params)

    async def _write(self, what: str, statement: TextClause, params: dict[str, object]) -> None:
        """Create the member row if needed and apply `statement`, in one transaction (retried when transient)."""

        async def attempt() -> None:
            async with self._db.sessions.begin() as s:
                await s.execute(_ENSURE_MEMBER, params)
                await s.execute(statement, params)

        await retry_transient(attempt, policy=INTERACTIVE, on_retry=log_retries(what))
