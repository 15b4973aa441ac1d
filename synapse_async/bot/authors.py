"""Who wrote a message, when only its id is known (SPEC §7.4), resolved in the lane, in order, through outages.

Reactions and deletes name a message, not its author. Steps 1–2 (the author LRU fed by every MESSAGE_CREATE, and
hikari's message cache) are in-memory and run in the normalizer. Steps 3–4 (the lake row `msg:<id>`, then one
REST fetch with a 10-minute negative cache, reactions only) need I/O, so they do NOT run in the hikari listener:
there a database outage would lose the event and a slow lookup would let later events overtake it (§8.1). The
normalizer marks such events `author_pending`; the guild's lane calls `resolve` before processing them, on the
lane's own connection and inside the lane's retry of transient faults, so a reaction waits for the database like
any other event and keeps its place in the guild's order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import hikari
from cachetools import TTLCache

from synapse_async.bot.author_table import AuthorTable
from synapse_async.domain.events import MessageDeleted, PipelineEvent, ReactionAdded, ReactionRemoved
from synapse_async.obs.logging import get_logger

log = get_logger(__name__)

MISS_TTL_SECONDS = 600.0
# The lake's key table holds each row's author: one primary-key probe per key, whatever the lake's partitions.
_LAKE_AUTHORS = "SELECT source_key, user_id FROM event_lake_keys WHERE guild_id = $1 AND source_key = ANY($2::text[])"

FetchMessage = Callable[[int, int], Awaitable[hikari.Message]]
_Pending = MessageDeleted | ReactionAdded | ReactionRemoved


class AuthorIndex:
    """The bounded author caches and the I/O steps of §7.4; shared by the normalizer and the pipeline lanes."""

    def __init__(self, maxsize: int) -> None:
        # Step 1: message id -> (author, bot, channel), flat arrays allocated once (bot/author_table.py).
        self._entries = AuthorTable(maxsize)
        self._rest_misses: TTLCache[int, bool] = TTLCache(maxsize=10_000, ttl=MISS_TTL_SECONDS)
        self._fetch: FetchMessage | None = None
        self.lake_hits = 0
        self.rest_fetches = 0

    def bind(self, fetch: FetchMessage) -> None:
        """Give the index the REST call of the running hikari client (set once by the normalizer's bind)."""
        self._fetch = fetch

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, message_id: int, author_id: int, is_bot: bool, channel_id: int) -> None:
        self._entries.put(message_id, author_id, is_bot, channel_id)

    def known(self, message_id: int) -> tuple[int, bool] | None:
        entry = self._entries.get(message_id)  # a hit keeps the message longer (CLOCK's `used` bit)
        return (entry[0], entry[1]) if entry is not None else None

    def forget_all(self) -> None:
        """Drop every remembered author (as after a restart)."""
        self._entries.clear()

    async def resolve(self, conn: asyncpg.Connection, events: Sequence[PipelineEvent]) -> list[PipelineEvent]:
        """Return `events` with every pending author resolved (or definitely unknown); order unchanged.

        Raises whatever the database raises: the lane classifies and retries it like any other fault.
        """
        pending = [e for e in events if isinstance(e, _Pending) and e.author_pending]
        if not pending:
            return list(events)
        found: dict[int, tuple[int, bool]] = {}
        lookup: list[int] = []
        for event in pending:
            known = self.known(event.message_id)  # a message seen since the event was normalized
            if known is not None:
                found[event.message_id] = known
            else:
                lookup.append(event.message_id)
        if lookup:
            rows = await conn.fetch(_LAKE_AUTHORS, pending[0].guild_id, [f"msg:{m}" for m in lookup])
            for row in rows:
                if row["user_id"] is not None:
                    found[int(row["source_key"].split(":", 1)[1])] = (int(row["user_id"]), False)  # lake: no bots
            self.lake_hits += len(rows)
        for event in pending:
            if event.message_id not in found and isinstance(event, ReactionAdded):
                fetched = await self._fetch_author(event.channel_id, event.message_id)
                if fetched is not None:
                    found[event.message_id] = fetched
        return [self._resolved(e, found) for e in events]

    @staticmethod
    def _resolved(event: PipelineEvent, found: dict[int, tuple[int, bool]]) -> PipelineEvent:
        if not (isinstance(event, _Pending) and event.author_pending):
            return event
        author = found.get(event.message_id)
        changes: dict[str, object] = {"author_pending": False, "author_id": author[0] if author else None}
        if isinstance(event, ReactionAdded):
            changes["author_is_bot"] = author[1] if author else False
        return dataclasses.replace(event, **changes)  # type: ignore[arg-type]

    async def _fetch_author(self, channel_id: int, message_id: int) -> tuple[int, bool] | None:
        """Step 4, reactions only: one REST fetch; 404/403 is remembered for 10 minutes (§7.4)."""
        if self._fetch is None or message_id in self._rest_misses:
            return None
        self.rest_fetches += 1
        try:
            message = await self._fetch(channel_id, message_id)
        except (hikari.NotFoundError, hikari.ForbiddenError):
            self._rest_misses[message_id] = True
            return None
        except hikari.HTTPError as exc:
            log.warning("author_fetch_failed", message_id=message_id, error=type(exc).__name__)
            return None
        self.remember(message_id, int(message.author.id), message.author.is_bot, channel_id)
        return int(message.author.id), message.author.is_bot
