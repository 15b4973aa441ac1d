"""The cross-process handover on `synapse_events` (SPEC §3.4, §16.3).

Announcements and role syncs need the gateway cache and the per-channel throttles, which only the process owning
the guild's shard has. When another process serves the API request that caused them, it must not act itself: it
sends one `synapse_events` notification per effect, carrying ids only —
`{"v":1,"type":"announce","guild_id":"…","kind":"level_up|achievement|manual_award","journal_id":"…"}` and
`{"v":1,"type":"role_sync","guild_id":"…","user_id":"…"}` — and the owning process, which LISTENs on the channel,
re-reads what it needs from the database (the journal row; the member's current level) and announces or syncs as
if the change had been its own. Every process receives every notification; only the owner acts.

The notifications are sent in a short transaction of their own right after the write committed (the effects are
known only then, in the adapter, which alone knows the guild is not local). That is as best-effort as the spec
makes the handover anyway: a lost notification costs one announcement or one role update (the member's next level
change, or a `level_role_sync` job, catches the roles up), never a balance.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sqlalchemy import text

from synapse_async.cache.config_cache import ConfigCache
from synapse_async.db.engine import Database
from synapse_async.db.notify import notify_event
from synapse_async.ledger import Earned, Effects, LevelUp, ManualAward
from synapse_async.obs.logging import get_logger

log = get_logger(__name__)

_JOURNAL = text(
    """
    SELECT j.user_id, j.event_type, j.xp_delta, j.actor_id, j.details,
           (SELECT l.delta FROM gold_ledger l WHERE l.journal_id = j.id AND l.guild_id = j.guild_id LIMIT 1) AS gold
      FROM reward_journal j
     WHERE j.guild_id = :g AND j.id = :id
    """
)
_LEVEL = text("SELECT level FROM members WHERE guild_id = :g AND user_id = :u")
_KIND_EVENT = {"level_up": "level_change", "achievement": "achievement", "manual_award": "manual_award"}


class EffectsSink(Protocol):
    def publish(self, effects: Effects) -> None: ...


class RoleSyncSink(Protocol):
    def request(self, guild_id: int, user_id: int, level: int) -> None: ...


def split_effects(effects: Effects, owns: Callable[[int], bool]) -> tuple[Effects, Effects]:
    """(what this process acts on, what it hands over): announcements and role syncs by guild ownership."""
    local, remote = Effects(), Effects()
    for up in effects.level_ups:
        (local if owns(up.guild_id) else remote).level_ups.append(up)
    for earned in effects.achievements:
        (local if owns(earned.guild_id) else remote).achievements.append(earned)
    for award in effects.awards:
        (local if owns(award.guild_id) else remote).awards.append(award)
    for key, level in effects.role_syncs.items():
        (local if owns(key[0]) else remote).role_syncs[key] = level
    return local, remote


def handover_messages(effects: Effects) -> list[dict[str, str]]:
    """The `synapse_events` bodies (without `v`) for effects another process must carry out."""
    messages: list[dict[str, str]] = []
    items: list[tuple[str, LevelUp | Earned | ManualAward]] = [
        *(("level_up", up) for up in effects.level_ups),
        *(("achievement", earned) for earned in effects.achievements),
        *(("manual_award", award) for award in effects.awards),
    ]
    for kind, item in items:
        if item.journal_id is None:
            log.warning("handover_without_journal_id", kind=kind, guild_id=item.guild_id)
            continue
        messages.append(
            {"type": "announce", "guild_id": str(item.guild_id), "kind": kind, "journal_id": str(item.journal_id)}
        )
    for guild_id, user_id in effects.role_syncs:
        messages.append({"type": "role_sync", "guild_id": str(guild_id), "user_id": str(user_id)})
    return messages


def _snowflake(event: Mapping[str, Any], key: str) -> int | None:
    value = event.get(key)
    if isinstance(value, str) and value.isdigit() and 0 < int(value) < 2**63:
        return int(value)
    return None


class Handover:
    """Sends effects of guilds owned elsewhere, and carries out those sent to us (see the module doc)."""

    def __init__(
        self,
        db: Database,
        cache: ConfigCache,
        owns: Callable[[int], bool],
        announcements: EffectsSink,
        role_syncs: RoleSyncSink,
    ) -> None:
        self._db = db
        self._cache = cache
        self.owns = owns
        self._announcements = announcements
        self._role_syncs = role_syncs
        self._sending: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.received = 0

    # --- sending -----------------------------------------------------------------------------------------------
    def hand_over(self, effects: Effects) -> None:
        """Queue the notifications for `effects` (all of guilds we do not own); returns at once (after commit)."""
        messages = handover_messages(effects)
        if not messages:
            return
        task = asyncio.create_task(self._send(messages), name="handover-send")
        self._sending.add(task)
        task.add_done_callback(self._sent)

    async def _send(self, messages: list[dict[str, str]]) -> None:
        async with self._db.sessions.begin() as s:
            for message in messages:
                await notify_event(s, message)
        self.sent += len(messages)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("handover_send_failed", error=f"{type(exc).__name__}: {exc}"[:300])

    async def wait_sent(self) -> None:
        """Wait for notifications still being sent (shutdown, tests)."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    # --- receiving ---------------------------------------------------------------------------------------------
    async def on_event(self, event: Mapping[str, Any]) -> None:
        """A `synapse_events` notification (the listener's handler): act on it if we own the guild."""
        guild_id = _snowflake(event, "guild_id")
        if guild_id is None or not self.owns(guild_id):
            return
        kind = event.get("type")
        if kind == "role_sync":
            user_id = _snowflake(event, "user_id")
            if user_id is not None:
                await self._role_sync(guild_id, user_id)
        elif kind == "announce":
            journal_id = _snowflake(event, "journal_id")
            announce = event.get("kind")
            if journal_id is not None and isinstance(announce, str) and announce in _KIND_EVENT:
                await self._announce(guild_id, announce, journal_id)

    async def _role_sync(self, guild_id: int, user_id: int) -> None:
        async with self._db.engine.connect() as conn:
            level = (await conn.execute(_LEVEL, {"g": guild_id, "u": user_id})).scalar()
        if level is not None:
            self.received += 1
            self._role_syncs.request(guild_id, user_id, int(level))

    async def _announce(self, guild_id: int, kind: str, journal_id: int) -> None:
        async with self._db.engine.connect() as conn:
            row = (await conn.execute(_JOURNAL, {"g": guild_id, "id": journal_id})).first()
        if row is None or row.event_type != _KIND_EVENT[kind]:
            log.warning("handover_journal_missing", guild_id=guild_id, kind=kind, journal_id=journal_id)
            return
        details = row.details if isinstance(row.details, dict) else json.loads(row.details)
        effects = Effects()
        user_id = int(row.user_id)
        if kind == "level_up":
            effects.level_ups.append(
                LevelUp(guild_id, user_id, int(details["to"]), int(details.get("bonus", 0)), None, journal_id)
            )
        elif kind == "achievement":
            template_id = int(details["template_id"])
            template = next((t for t in self._cache.guild(guild_id).templates if t.template_id == template_id), None)
            if template is None:
                return  # deactivated or deleted meanwhile: nothing left to announce
            effects.achievements.append(
                Earned(guild_id, user_id, template, template.announce_channel_id, True, row.actor_id, journal_id)
            )
        else:
            gold = int(row.gold or 0)
            effects.awards.append(
                ManualAward(
                    guild_id,
                    user_id,
                    int(row.xp_delta),
                    gold,
                    str(details.get("reason", "")),
                    str(row.actor_id),
                    None,
                    journal_id,
                )
            )
        self.received += 1
        self._announcements.publish(effects)
