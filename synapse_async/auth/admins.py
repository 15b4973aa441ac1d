"""The live admin check of SPEC §21.3: the §17.1 rule on the gateway's member and role cache, or Discord REST.

For guilds this process owns, the hikari cache is the live data (it is updated by every GUILD_MEMBER_UPDATE and
GUILD_ROLE_UPDATE the gateway delivers), so a removed role is seen on the next request. For guilds another
process owns (and for users the gateway cache does not hold), the member and roles are fetched over REST; a "yes"
may be reused for 5 s by GET requests, never by mutations (SPEC §21.3). Nothing here caches a "yes" for a mutation.

Refused callers must not be able to multiply Discord calls (issue 21 item 4): concurrent lookups for the same
(guild, user) share one REST call (the waiters await one shielded task, so a client that disconnects cancels
only its own wait), and a "no" is kept for 5 s and answers every request, mutations included. Granting a role
therefore takes effect over REST within 5 s; removing one still takes effect on the next mutation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable

import hikari
from cachetools import TTLCache

from synapse_async.access import is_guild_admin
from synapse_async.cache.config_cache import ConfigCache

REST_CACHE_SECONDS = 5.0


def _has_administrator(roles: Iterable[hikari.Role | None]) -> bool:
    return any(role is not None and hikari.Permissions.ADMINISTRATOR in role.permissions for role in roles)


class GatewayAdmins:
    """`AdminDirectory` over a hikari bot and the config cache (owner id, `access.admin_role_ids`)."""

    def __init__(
        self,
        bot: hikari.GatewayBot,
        cache: ConfigCache,
        owns: Callable[[int], bool],
        *,
        cache_seconds: float = REST_CACHE_SECONDS,
    ) -> None:
        self._bot = bot
        self._cache = cache
        self._owns = owns
        self._rest: TTLCache[tuple[int, int], bool] = TTLCache(maxsize=10_000, ttl=cache_seconds)
        self._refused: TTLCache[tuple[int, int], bool] = TTLCache(maxsize=100_000, ttl=cache_seconds)
        self._inflight: dict[tuple[int, int], asyncio.Task[bool]] = {}

    async def is_admin(self, guild_id: int, user_id: int, *, allow_cached: bool) -> bool:
        config = self._cache.guild(guild_id)
        owner_id = config.info.owner_id if config.info is not None else None
        admin_roles = config.settings.snowflakes("access.admin_role_ids")
        if self._owns(guild_id):
            cached_guild = self._bot.cache.get_guild(guild_id)
            member = self._bot.cache.get_member(guild_id, user_id)
            if cached_guild is not None and member is not None:
                role_ids = [int(r) for r in member.role_ids]
                roles = [self._bot.cache.get_role(r) for r in [*role_ids, guild_id]]
                return is_guild_admin(
                    user_id=user_id,
                    owner_id=int(cached_guild.owner_id),
                    role_ids=role_ids,
                    has_administrator=_has_administrator(roles),
                    admin_role_ids=admin_roles,
                )
        key = (guild_id, user_id)
        if key in self._refused:
            return False
        if allow_cached and key in self._rest:
            return self._rest[key]
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.create_task(self._lookup(key, owner_id, admin_roles), name="admin_lookup")
            self._inflight[key] = pending
            pending.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(pending)

    def _forget(self, key: tuple[int, int], done: asyncio.Task[bool]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        if not done.cancelled():
            done.exception()  # retrieved: every waiter got it already, nobody else will

    async def _lookup(self, key: tuple[int, int], owner_id: int | None, admin_roles: Collection[int]) -> bool:
        """One REST lookup shared by every concurrent caller of `key`; its answer feeds both caches."""
        guild_id, user_id = key
        answer = await self._fetch(guild_id, user_id, owner_id, admin_roles)
        if answer:
            self._rest[key] = True
            self._refused.pop(key, None)
        else:
            self._refused[key] = True
            self._rest.pop(key, None)
        return answer

    async def member_roles(self, guild_id: int, user_id: int) -> frozenset[int] | None:
        """What the pipeline sees as the earner's roles: the gateway cache, or one REST read when not cached."""
        member = self._bot.cache.get_member(guild_id, user_id) if self._owns(guild_id) else None
        if member is None:
            try:
                member = await self._bot.rest.fetch_member(guild_id, user_id)
            except (hikari.NotFoundError, hikari.ForbiddenError):
                return None
        return frozenset(int(r) for r in member.role_ids)

    async def _fetch(self, guild_id: int, user_id: int, owner_id: int | None, admin_roles: Collection[int]) -> bool:
        try:
            member = await self._bot.rest.fetch_member(guild_id, user_id)
        except (hikari.NotFoundError, hikari.ForbiddenError):
            return False
        role_ids = [int(r) for r in member.role_ids]
        wanted = {*role_ids, guild_id}
        roles = [r for r in await self._bot.rest.fetch_roles(guild_id) if int(r.id) in wanted]
        return is_guild_admin(
            user_id=user_id,
            owner_id=owner_id,
            role_ids=role_ids,
            has_administrator=_has_administrator(roles),
            admin_role_ids=admin_roles,
        )
