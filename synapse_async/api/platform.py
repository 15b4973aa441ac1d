"""What the HTTP API depends on, in one object the composition root builds (SPEC §18, §21).

Handlers and the route contract reach the database, the token codec, the live admin check and the OAuth client
settings only through `ApiPlatform`. Some parts exist only later in startup (the gateway's admin directory, the
sandbox's OAuth application): the runtime plugs them in when they exist, and until then the API answers 503 for
what needs them, never a 500.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cachetools import TTLCache
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from synapse_async.api.dbgate import HttpDatabaseGate, PublicReadGate
from synapse_async.api.errors import ApiError
from synapse_async.api.flight import PageAnchors, SingleFlightCache
from synapse_async.auth.tokens import Claims, TokenCodec
from synapse_async.cache.listener import ListenerState
from synapse_async.components import Components
from synapse_async.config import Config
from synapse_async.imports.slots import ImportSlots
from synapse_async.levelroles.grants import MemberRow, RewardConfig
from synapse_async.obs.logging import get_logger
from synapse_async.rewards.roles import RolePreview, RoleRefusal
from synapse_async.services.card import CardService


class AdminDirectory(Protocol):
    """Live §17.1 admin data: the owning process's gateway cache, or Discord REST for guilds owned elsewhere."""

    async def is_admin(self, guild_id: int, user_id: int, *, allow_cached: bool) -> bool:
        """The §17.1 rule on live data; `allow_cached` permits a REST answer up to 5 s old (GET requests only)."""
        ...

    async def member_roles(self, guild_id: int, user_id: int) -> frozenset[int] | None:
        """The member's current role ids (gateway cache, else REST), None when not a member (`rewards/explain`)."""
        ...


class LevelRoleChecks(Protocol):
    """The §13 checks on live Discord data (the level-role syncer of the gateway process)."""

    async def precheck(self, guild_id: int, role_ids: Iterable[int]) -> dict[int, str | None]:
        """Each role's skip reason now (`missing_manage_roles`, `role_above_bot`, …), None when assignable."""
        ...

    async def reward_refusal(
        self, guild_id: int, role_id: int, admin_role_ids: frozenset[int], caller_role_ids: frozenset[int] | None
    ) -> RoleRefusal | None:
        """Why the role may not become a level reward ("safe roles only"), None when it may."""
        ...

    async def preview(self, guild_id: int, members: Iterable[MemberRow], config: RewardConfig) -> RolePreview:
        """What a sync under `config` would change for `members` now, planned exactly as the sync plans."""
        ...


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """The OAuth2 application the login uses (SPEC §21.1)."""

    client_id: str
    client_secret: str
    redirect_uri: str
    authorize_url: str  # `{DISCORD_OAUTH_URL}/authorize`
    api_url: str  # `DISCORD_API_URL`: token exchange and users/@me


MICRO_CACHE_SECONDS = 5.0
"""Within the `Cache-Control: max-age=10` the public responses promise anyway (SPEC §19)."""
MICRO_CACHE_BYTES = 32 * 1024 * 1024
MICRO_CACHE_REFRESH_AFTER = 4.0
"""A cached public answer read when it is older than this is recomputed in the background while it is still
served (refresh ahead, `ApiPlatform.refresh_ahead`): a URL that keeps being read never expires under its readers,
so none of them waits behind its query, and no answer served is older than `MICRO_CACHE_SECONDS`. Before, every
entry of a busy page expired together 5 s after the first burst filled them and the whole burst of misses
repeated, queued behind the public pool (issue 27, `bench/api.py`)."""

MICRO_CACHE_REFRESHES_AT_ONCE = 2
"""Background refreshes running at once (each holds one public connection while it reads)."""


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """One micro-cached answer: its body, the headers replayed with it, and when it was computed (loop time)."""

    body: bytes | None
    headers: dict[str, str]
    at: float


log = get_logger(__name__)

_IS_REVOKED = text("SELECT 1 FROM revoked_tokens WHERE jti = CAST(:jti AS uuid)")


class ApiPlatform:
    """The API's dependencies; built once per process by `build_app`."""

    def __init__(self, config: Config, components: Components, gate: HttpDatabaseGate) -> None:
        self.config = config
        self.components = components
        self.gate = gate
        self.codec = TokenCodec(
            config.jwt_secret,
            issuer=config.jwt_issuer,
            audience=config.jwt_audience,
            ttl_seconds=config.jwt_ttl_seconds,
        )
        self.admins: AdminDirectory | None = None
        self.level_roles: LevelRoleChecks | None = None
        self.oauth: OAuthClient | None = None
        self.cards: CardService | None = None  # the rank card service (SPEC §29), plugged in by the runtime
        if config.discord_client_id and config.discord_client_secret and config.discord_redirect_uri:
            self.oauth = OAuthClient(
                config.discord_client_id,
                config.discord_client_secret,
                config.discord_redirect_uri,
                config.discord_oauth_url + "/authorize",
                config.discord_api_url,
            )
        # Logged out here: refused at once by this process, before its own NOTIFY round trip has reloaded the
        # cache (bounded; an entry is useless once the token has expired anyway).
        self._revoked_here: TTLCache[str, bool] = TTLCache(maxsize=100_000, ttl=config.jwt_ttl_seconds + 60)
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        # Anonymous reads (§19): their own pool and bound, never the admin API's share of `gate`.
        self.public_gate = PublicReadGate(config.public_db_concurrency, config.http_db_wait_seconds)
        # Public page totals by what they depend on (never `page`/`page_size`), shared by concurrent misses.
        self.public_totals: SingleFlightCache[tuple[object, ...], int] = SingleFlightCache(MICRO_CACHE_SECONDS, 4096)
        # Where pages of long public lists ended (keyset continuation of deep pages).
        self.public_anchors: PageAnchors[tuple[object, ...], tuple[datetime, int]] = PageAnchors(MICRO_CACHE_SECONDS)
        self.import_slots = ImportSlots()  # member-import documents held at once by this process (SPEC §20.1)
        self.inflight: dict[str, asyncio.Future[tuple[int, bytes | None, dict[str, str]]]] = {}
        # Rank cards computed right now, by URL: concurrent misses of one card share one render (api/card.py).
        self.card_inflight: dict[str, asyncio.Future[tuple[bytes | None, dict[str, str]]]] = {}
        # Public reads answered within the last few seconds, by path and query (bounded by bytes held).
        self.micro_cache: TTLCache[str, CachedAnswer] = TTLCache(
            maxsize=MICRO_CACHE_BYTES, ttl=MICRO_CACHE_SECONDS, getsizeof=lambda entry: len(entry.body or b"") + 200
        )
        self.refresh_after = MICRO_CACHE_REFRESH_AFTER
        self._refreshes: set[asyncio.Task[None]] = set()

    def refreshes_running(self) -> tuple[asyncio.Task[None], ...]:
        """The background refreshes in progress (awaited by `close`, and by tests that read what they stored)."""
        return tuple(self._refreshes)

    def refresh_ahead(self, key: str, compute: Callable[[], Awaitable[object]]) -> None:
        """Recompute micro-cache entry `key` in the background (once at a time per key: the caller checks
        `inflight`). A failed refresh changes nothing: the entry it would have replaced expires on its own.

        At most `MICRO_CACHE_REFRESHES_AT_ONCE` run at a time; past that the read is not refreshed (the entry is
        refreshed by a later read or expires). Without the bound, a thousand entries filled by one burst all came
        due together and a thousand refreshes queued at the public gate ahead of real requests, which then waited
        past `HTTP_DB_WAIT_SECONDS` (503)."""
        if len(self._refreshes) >= MICRO_CACHE_REFRESHES_AT_ONCE:
            return

        async def run() -> None:
            try:
                await compute()
            except Exception as exc:
                # An answer that is now an error (a 404 for a member who left) is not cached either: no log.
                if not isinstance(exc, ApiError):
                    log.warning("micro_cache_refresh_failed", key=key, error=type(exc).__name__)

        task = asyncio.get_running_loop().create_task(run())
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def close(self) -> None:
        """Stop the background refreshes (the app's cleanup: before the database pools are disposed)."""
        for task in list(self._refreshes):
            task.cancel()
        await asyncio.gather(*self._refreshes, return_exceptions=True)

    def now(self) -> int:
        return int(time.time())

    def require_level_roles(self) -> LevelRoleChecks:
        if self.level_roles is None:
            raise ApiError.unavailable("The Discord connection is not ready yet; try again shortly.")
        return self.level_roles

    def require_admins(self) -> AdminDirectory:
        if self.admins is None:
            raise ApiError.unavailable("The Discord connection is not ready yet; try again shortly.")
        return self.admins

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read connection of the HTTP pool, inside a gate slot."""
        async with self.gate.connect(self.components.require_db()) as conn:
            yield conn

    @asynccontextmanager
    async def public_read(self, client: str) -> AsyncIterator[AsyncConnection]:
        """A read connection of the public pool for an anonymous request from `client` (its IP), inside a slot of
        `public_gate`; every statement on it ends within `PUBLIC_QUERY_TIMEOUT_MS` (else the request gets 503)."""
        async with self.public_gate.connect(self.components.require_db(), client) as conn:
            yield conn

    @asynccontextmanager
    async def sessions(self) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
        """A session factory on the HTTP pool for one write (held inside a gate slot while the caller works)."""
        db = self.components.require_db()
        if self._sessions is None:
            self._sessions = async_sessionmaker(db.http_engine, expire_on_commit=False)
        async with self.gate.slot():
            yield self._sessions

    def serves(self, guild_id: int) -> bool:
        """Whether the bot serves the guild (in any process): known to the shared config cache and not left."""
        cache = self.components.require_cache()
        if guild_id not in cache.known_guild_ids():
            return False
        info = cache.guild(guild_id).info
        return info is not None and not info.left

    async def admin_guilds(self, claims: Claims) -> list[int]:
        """The guilds a token may administer now: a service token's list, or a user's candidates live-checked."""
        if claims.kind == "service":
            return sorted(g for g in claims.guilds if self.serves(g))
        assert claims.user_id is not None
        admins = self.require_admins()
        out = []
        for guild_id in claims.candidates:
            if self.serves(guild_id) and await admins.is_admin(guild_id, claims.user_id, allow_cached=True):
                out.append(guild_id)
        return out

    def revoked_locally(self, jti: str) -> None:
        self._revoked_here[jti] = True

    async def is_revoked(self, jti: str) -> bool:
        """SPEC §21.2: the NOTIFY-fed cache while the listener is connected, else the database on every request."""
        if jti in self._revoked_here:
            return True
        cache = self.components.require_cache()
        listener = self.components.listener
        if listener is not None and listener.state is ListenerState.CONNECTED:
            return cache.is_revoked(jti)
        async with self.read() as conn:
            return (await conn.execute(_IS_REVOKED, {"jti": jti})).first() is not None
