"""Level-role rewards applied on Discord (SPEC §13): one member update per change, pre-checked, retried per spec.

What a member should hold is decided by the pure `rewards.roles.plan_role_update`; this module only gathers its
inputs and acts on its result:

- inputs come from hikari's gateway cache (member roles, guild roles with positions, permissions and `managed`,
  the bot's own member and permissions) so a level-up costs no REST read; a member missing from the cache (large
  guilds are not fully chunked) costs one `fetch_member`. For a level change, reward table and mode come from the
  `ConfigCache`; a `level_role_sync` job instead reads level, table, mode and admin roles from the database when
  it reaches each member (`GrantStore.live_state`), so a change committed while it runs is honoured, and it stops
  as soon as a newer reward-table change asked for a fresh sync (`superseded`);
- only roles the bot granted are removed: the member's `level_role_grants` rows are read before planning and
  written after Discord accepted the update (`levelroles.grants`); a role that is (or became) dangerous or an admin
  role is never added (`dangerous_role`);
- a plan with `new_roles` becomes exactly ONE `PATCH /guilds/{g}/members/{u}` carrying the full role list and the
  audit reason "Level roles". A full list (not per-role PUT/DELETE) keeps the update atomic and idempotent, which
  is also what makes a retry after a 5xx safe;
- roles the pre-check rejects are kept as they are, logged, and remembered per guild (`problems`) for
  `GET …/level-roles`; bots are never touched;
- 403 and 404 are final (retrying cannot fix a permission or a departed member, and §25 forbids retrying 403);
  5xx: hikari's REST client already retries 500/502/503/504 three times with exponential backoff before raising
  `hikari.InternalServerError` — exactly SPEC §13's "up to 3 retries with backoff" — so by default
  (`max_retries=0`, what the app runs) the syncer adds none and gives the member up when hikari does. For a REST
  client without retries of its own, `max_retries` > 0 retries here instead, re-planning from the cache first so
  that a manual edit or a gateway update that arrived meanwhile is respected rather than overwritten.

The pipeline calls `request()` after COMMIT. Requests are coalesced per member (latest level wins) and drained by
the supervised `run()`, so a burst of level changes for one member yields one update at the end rather than a
series of intermediate ones. `sync_guild` is the body of the `level_role_sync` job.

Two details keep repeated syncs correct:

- hikari's cache learns about our own update only when the gateway's GUILD_MEMBER_UPDATE arrives. A second sync of
  the same member before that (e.g. level up then straight down) would plan from stale roles and could make no
  call at all. So after each update we remember, briefly, "the cache showed `base`, we wrote `written`": while the
  cache still shows exactly `base`, `written` is taken as the member's roles. The memory ends when the gateway
  echoes our update (a GUILD_MEMBER_UPDATE carrying `written`): after that the cache is the truth again, also when
  a person then sets the roles back to `base` (otherwise that removal would be undone by the next sync);
- one member is never synced by two coroutines at once (the `run()` drain and a `level_role_sync` job may overlap),
  so their full-list updates cannot interleave.

Every structure here is bounded (§25): pending requests, the per-guild problem map (LRU over guilds, at most the
guild's reward roles each), the written-roles memory (LRU + TTL) and the per-member locks (only while in use).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, cast

import hikari

from synapse_async.cache.config_cache import ConfigCache
from synapse_async.levelroles.grants import GrantStore, LiveState, MemberRow, RewardConfig
from synapse_async.obs.logging import get_logger
from synapse_async.rewards.roles import (
    RoleInfo,
    RoleMode,
    RolePlan,
    RolePreview,
    RoleRefusal,
    plan_role_update,
    reward_role_refusal,
    role_skip_reason,
)

log = get_logger(__name__)

AUDIT_REASON: Final = "Level roles"
DEFAULT_MAX_PENDING: Final = 100_000
"""Distinct members waiting for a sync; beyond it new requests are dropped (the next level change or a
`level_role_sync` job catches them up) rather than letting memory grow without bound."""
MAX_PROBLEM_GUILDS: Final = 10_000
"""Guilds whose skip reasons are remembered (LRU); matches the 10,000-guild deployment target of §25."""
MAX_WRITTEN: Final = 10_000
WRITTEN_TTL_SECONDS: Final = 10.0
"""How long our own update may be ahead of the gateway cache; GUILD_MEMBER_UPDATE normally lands in milliseconds."""

MemberKey = tuple[int, int]
BeforeCall = Callable[[], Awaitable[None]]
Superseded = Callable[[], Awaitable[bool]]
Refresh = Callable[[], Awaitable[LiveState]]
PREVIEW_YIELD_EVERY: Final = 200
"""Members planned between two yields to the event loop while a preview walks a large guild."""


class _Status(enum.Enum):
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # nothing to change, or every change was skipped by the pre-check
    FAILED = "failed"  # Discord refused (403), an unexpected HTTP error, or 5xx after every retry
    NOT_APPLICABLE = "not_applicable"  # a bot, or the member/guild is gone (404)


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: _Status
    plan: RolePlan | None


@dataclass(frozen=True, slots=True)
class _GuildView:
    """The pre-check inputs about the guild and the bot, as hikari currently sees them."""

    roles: Mapping[int, RoleInfo]
    bot_top_position: int
    bot_can_manage_roles: bool


@dataclass(frozen=True, slots=True)
class _Written:
    base: frozenset[int]
    written: frozenset[int]
    expires_at: float


class _Pacer:
    """Spaces calls at least `1 / per_second` apart; the first call goes at once.

    Only the member updates themselves wait here, so members that need no change cost no time (SPEC §13:
    "≤ 2 updates/s").
    """

    def __init__(self, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be > 0")
        self._interval = 1.0 / per_second
        self._next: float | None = None

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        if self._next is not None:
            delay = self._next - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        self._next = loop.time() + self._interval


class LevelRoleSyncer:
    """Brings members' reward roles in line with their level on Discord (SPEC §13)."""

    def __init__(
        self,
        bot: hikari.GatewayBot,
        cache: ConfigCache,
        grants: GrantStore,
        *,
        max_retries: int = 0,
        base_delay: float = 1.0,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._bot = bot
        self._cache = cache
        self._grants = grants
        self._max_retries = max_retries
        self._base_delay = base_delay
        self._max_pending = max_pending
        # Insertion-ordered: the oldest waiting member is served first; re-requesting keeps its place.
        self._pending: dict[MemberKey, int] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set by `run` when nothing is pending or being synced
        self._idle.set()
        self._problems: OrderedDict[int, dict[int, str]] = OrderedDict()
        self._written: OrderedDict[MemberKey, _Written] = OrderedDict()
        bot.subscribe(hikari.MemberUpdateEvent, self._on_member_update)
        self._locks: dict[MemberKey, tuple[asyncio.Lock, int]] = {}
        self._updated = 0
        self._failed = 0
        self.dropped = 0
        """Requests refused because `max_pending` distinct members were already waiting."""

    # --- queueing -----------------------------------------------------------------------------------------------

    def request(self, guild_id: int, user_id: int, level: int) -> None:
        """Ask for the member's roles to match `level`; returns at once (called after the pipeline's COMMIT).

        Coalesced per (guild, user): while a request waits, a newer one replaces its level, because only the
        current level decides the roles (§13) and intermediate updates would be wasted calls.
        """
        key = (guild_id, user_id)
        if key not in self._pending and len(self._pending) >= self._max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("level_roles_queue_full", guild_id=guild_id, user_id=user_id, dropped=self.dropped)
            return
        self._pending[key] = level
        self._idle.clear()
        self._wake.set()

    async def run(self) -> None:
        """Drain requests forever, one member at a time (run under the task supervisor).

        One member's unexpected error is logged and counted, not raised: it must not stall every other member's
        rewards behind a supervisor restart. Cancellation still ends the loop.
        """
        while True:
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            key = next(iter(self._pending))
            level = self._pending.pop(key)
            guild_id, user_id = key
            try:
                await self._sync(guild_id, user_id, level)
            except Exception:
                self._failed += 1
                log.exception("level_roles_sync_error", guild_id=guild_id, user_id=user_id, level=level)
            # A fully cached, unchanged member never suspends; yield so a long queue cannot starve the loop.
            await asyncio.sleep(0)

    async def flush(self, deadline: float) -> int:
        """Shutdown (SPEC §3.3 step 5): let `run` finish pending requests until `deadline` (`loop.time()`).

        Returns how many members were still waiting (logged); they are caught up by their next level change or a
        `level_role_sync` job.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await self._idle.wait()
        left = len(self._pending)
        if left:
            log.warning("level_roles_dropped_at_shutdown", pending=left)
        return left

    # --- syncing ------------------------------------------------------------------------------------------------

    async def sync_member(self, guild_id: int, user_id: int, level: int) -> RolePlan | None:
        """Plan and apply one member's reward roles now; returns the plan acted on.

        None when nothing was planned: the member is a bot, or the member or guild no longer exists on Discord.
        A refused or failed update still returns its plan; the failure is logged and counted in `snapshot()`.
        """
        return (await self._sync(guild_id, user_id, level)).plan

    async def sync_guild(
        self,
        guild_id: int,
        user_ids: Iterable[int],
        *,
        per_second: float = 2.0,
        should_stop: Callable[[], bool] = lambda: False,
        superseded: Superseded | None = None,
    ) -> dict[str, int]:
        """The `level_role_sync` job body: sync each listed member, reading its state when it reaches it.

        Level, reward table, mode and admin roles are read from the database per member (SPEC §13: "as committed
        when it reaches that member"), so a level change or a table change committed while the job runs is
        honoured for every member after it. `superseded` is asked before each member: once a newer reward-table
        change has asked for a fresh sync, this one stops (`superseded` = 1 in the counts) and the fresh one
        starts over with the new table. Members who left or are unknown are passed over.

        At most `per_second` member updates per second (only actual updates are paced, retries included), and
        `should_stop` is consulted before each member so a cancelled job ends promptly without cutting an update
        in half. Counts: `checked` members looked at, `updated` members whose roles were changed, `skipped` members
        with at least one role the pre-check refused (such a member may also be `updated` for its other roles),
        `failed` members whose update Discord refused or that failed after every retry.
        """
        pacer = _Pacer(per_second)
        counts = {"checked": 0, "updated": 0, "skipped": 0, "failed": 0}
        for user_id in user_ids:
            if should_stop():
                log.info("level_role_sync_stopped", guild_id=guild_id, **counts)
                break
            if superseded is not None and await superseded():
                counts["superseded"] = 1
                log.info("level_role_sync_superseded", guild_id=guild_id, **counts)
                break
            state = await self._grants.live_state(guild_id, user_id)
            if state.level is None:
                continue
            outcome = await self._sync(
                guild_id,
                user_id,
                state.level,
                before_call=pacer.wait,
                config=state.config,
                refresh=functools.partial(self._grants.live_state, guild_id, user_id),
            )
            counts["checked"] += 1
            if outcome.status is _Status.UPDATED:
                counts["updated"] += 1
            elif outcome.status is _Status.FAILED:
                counts["failed"] += 1
            if outcome.plan is not None and outcome.plan.skipped:
                counts["skipped"] += 1
            await asyncio.sleep(0)
        return counts

    async def _sync(
        self,
        guild_id: int,
        user_id: int,
        level: int,
        *,
        before_call: BeforeCall | None = None,
        config: RewardConfig | None = None,
        refresh: Refresh | None = None,
    ) -> _Outcome:
        """Plan and apply one member. With `refresh` (a job), the member's state is read again after the pacing
        wait and planned afresh, so what is applied is what is committed when the call is made, not when the
        member's turn began (a level change may land during the wait)."""
        async with self._member_lock((guild_id, user_id)):
            attempt = 0
            plan: RolePlan | None = None
            while True:
                try:
                    planned = await self._plan(guild_id, user_id, level, config or self._cached_config(guild_id))
                    if isinstance(planned, _Outcome):
                        return planned
                    if before_call is not None:
                        await before_call()
                        if refresh is not None:
                            state = await refresh()
                            if state.level is None:
                                return _Outcome(_Status.NOT_APPLICABLE, None)
                            level, config = state.level, state.config
                            planned = await self._plan(guild_id, user_id, level, config)
                            if isinstance(planned, _Outcome):
                                return planned
                    plan, new_roles, cached_roles, granted = planned
                    await self._bot.rest.edit_member(guild_id, user_id, roles=sorted(new_roles), reason=AUDIT_REASON)
                except hikari.InternalServerError as exc:
                    if attempt >= self._max_retries:
                        self._failed += 1
                        log.error(
                            "level_roles_update_failed",
                            guild_id=guild_id,
                            user_id=user_id,
                            status=exc.status,
                            attempts=attempt + 1,
                        )
                        return _Outcome(_Status.FAILED, plan)
                    delay = self._base_delay * 2**attempt
                    attempt += 1
                    log.warning(
                        "level_roles_server_error_retry",
                        guild_id=guild_id,
                        user_id=user_id,
                        status=exc.status,
                        retry=attempt,
                        delay_seconds=delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                except hikari.NotFoundError as exc:
                    # The member left (or the guild is gone) since the level change: nothing left to fix.
                    log.info("level_roles_not_found", guild_id=guild_id, user_id=user_id, code=exc.code)
                    return _Outcome(_Status.NOT_APPLICABLE, None)
                except hikari.ClientHTTPResponseError as exc:
                    # 403 despite the pre-check means the cache lagged behind a permission or role change; other
                    # 4xx are request errors. Neither improves by retrying (§13; §25: 401/403 never retried).
                    self._failed += 1
                    log.warning(
                        "level_roles_update_refused",
                        guild_id=guild_id,
                        user_id=user_id,
                        status=exc.status,
                        code=exc.code,
                        message=exc.message,
                    )
                    return _Outcome(_Status.FAILED, plan)
                except hikari.HTTPError as exc:
                    # Connection errors hikari already retried, or a rate limit too long to wait for: give up on
                    # this member (the next level change or a sync job catches up) instead of failing a whole job.
                    self._failed += 1
                    log.warning(
                        "level_roles_update_error", guild_id=guild_id, user_id=user_id, error=type(exc).__name__
                    )
                    return _Outcome(_Status.FAILED, plan)
                self._updated += 1
                self._remember_written((guild_id, user_id), cached_roles, new_roles)
                # Discord accepted: from now on these roles are the bot's to take back, and only these.
                await self._grants.record(guild_id, user_id, plan.added, granted - new_roles)
                log.info(
                    "level_roles_updated",
                    guild_id=guild_id,
                    user_id=user_id,
                    level=level,
                    added=sorted(str(r) for r in plan.added),
                    removed=sorted(str(r) for r in plan.removed),
                )
                return _Outcome(_Status.UPDATED, plan)

    def _cached_config(self, guild_id: int) -> RewardConfig:
        """Reward table, mode and admin roles from the ConfigCache (a level change: the table is not changing)."""
        config = self._cache.guild(guild_id)
        return RewardConfig(
            config.level_roles,
            cast(RoleMode, config.settings.str("level_roles.mode")),
            frozenset(config.settings.snowflakes("access.admin_role_ids")),
        )

    async def _member(self, guild_id: int, user_id: int) -> hikari.Member:
        member = self._bot.cache.get_member(guild_id, user_id)
        if member is None:
            member = await self._bot.rest.fetch_member(guild_id, user_id)
        return member

    async def _plan(
        self, guild_id: int, user_id: int, level: int, config: RewardConfig
    ) -> _Outcome | tuple[RolePlan, frozenset[int], frozenset[int], frozenset[int]]:
        """Read the inputs and plan once: an `_Outcome` when no call is due, else (plan, roles to set, cached roles,
        roles the bot granted).

        Discord errors of the fallback reads propagate to `_sync`, which applies the same policy as for the update.
        """
        member = await self._member(guild_id, user_id)
        if member.is_bot:
            return _Outcome(_Status.NOT_APPLICABLE, None)
        view = await self._guild_view(guild_id)
        granted = await self._grants.granted(guild_id, user_id)
        cached_roles = frozenset(int(r) for r in member.role_ids) - {guild_id}  # hikari lists @everyone too
        current = self._current_roles((guild_id, user_id), cached_roles)
        plan = self._plan_for(guild_id, current, level, config, view, granted)
        self._record_problems(guild_id, config, plan, view)
        if plan.skipped:
            log.warning(
                "level_roles_skipped",
                guild_id=guild_id,
                user_id=user_id,
                level=level,
                skipped=[f"{skip.role_id}:{skip.reason}" for skip in plan.skipped],
                call_made=plan.new_roles is not None,
            )
        if plan.new_roles is None:
            # A granted role the member no longer holds was taken away by a person: if a person gives it back
            # later, that copy is theirs, not the bot's.
            await self._grants.record(guild_id, user_id, frozenset(), granted - current)
            return _Outcome(_Status.UNCHANGED, plan)
        return plan, plan.new_roles, cached_roles, granted

    @staticmethod
    def _plan_for(
        guild_id: int,
        current: frozenset[int],
        level: int,
        config: RewardConfig,
        view: _GuildView,
        granted: frozenset[int],
    ) -> RolePlan:
        return plan_role_update(
            current_roles=current,
            level=level,
            rewards=config.rewards,
            mode=config.mode,
            roles=view.roles,
            guild_id=guild_id,
            bot_top_position=view.bot_top_position,
            bot_can_manage_roles=view.bot_can_manage_roles,
            granted=granted,
            protected=config.admin_roles,
        )

    async def _guild_view(self, guild_id: int) -> _GuildView:
        """Roles and the bot's standing in the guild, from the cache; REST only for what the cache lacks."""
        me = self._bot.get_me()
        me_id = int(me.id) if me is not None else int((await self._bot.rest.fetch_my_user()).id)
        cached_roles = list(self._bot.cache.get_roles_view_for_guild(guild_id).values())
        roles = cached_roles or list(await self._bot.rest.fetch_roles(guild_id))
        by_id = {int(role.id): role for role in roles}
        bot_member = self._bot.cache.get_member(guild_id, me_id)
        if bot_member is None:
            bot_member = await self._bot.rest.fetch_member(guild_id, me_id)
        bot_role_ids = {int(r) for r in bot_member.role_ids} | {guild_id}
        permissions = hikari.Permissions.NONE
        for role_id in bot_role_ids:
            role = by_id.get(role_id)
            if role is not None:
                permissions |= role.permissions
        top = max((by_id[r].position for r in bot_role_ids if r in by_id and r != guild_id), default=0)
        guild = self._bot.cache.get_guild(guild_id)
        if guild is not None and int(guild.owner_id) == me_id:
            # Discord lets the owner manage every (non-managed) role regardless of position.
            can_manage = True
            top = max((role.position for role in roles), default=0) + 1
        else:
            can_manage = bool(permissions & (hikari.Permissions.MANAGE_ROLES | hikari.Permissions.ADMINISTRATOR))
        infos = {
            role_id: RoleInfo(role_id, int(role.position), bool(role.is_managed), permissions=int(role.permissions))
            for role_id, role in by_id.items()
        }
        return _GuildView(roles=infos, bot_top_position=top, bot_can_manage_roles=can_manage)

    # --- bookkeeping --------------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _member_lock(self, key: MemberKey) -> AsyncIterator[None]:
        """Serialize syncs of one member; the lock exists only while someone holds or awaits it (bounded)."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def _on_member_update(self, event: hikari.MemberUpdateEvent) -> None:
        """The gateway echoed a member update: if it carries the roles we wrote, the cache has caught up."""
        key = (int(event.guild_id), int(event.user_id))
        entry = self._written.get(key)
        if entry is not None and frozenset(int(r) for r in event.member.role_ids) - {key[0]} == entry.written:
            del self._written[key]

    def _current_roles_peek(self, key: MemberKey, cached: frozenset[int]) -> frozenset[int]:
        """Like `_current_roles`, without forgetting anything: a preview only looks."""
        entry = self._written.get(key)
        if entry is not None and cached == entry.base and time.monotonic() < entry.expires_at:
            return entry.written
        return cached

    def _current_roles(self, key: MemberKey, cached: frozenset[int]) -> frozenset[int]:
        """The member's roles, corrected for our own update the gateway has not echoed back yet."""
        entry = self._written.get(key)
        if entry is None:
            return cached
        if cached == entry.base and time.monotonic() < entry.expires_at:
            return entry.written
        # The cache caught up (or someone else changed the roles since): the cache is the truth again.
        del self._written[key]
        return cached

    def _remember_written(self, key: MemberKey, base: frozenset[int], written: frozenset[int]) -> None:
        self._written[key] = _Written(base, written, time.monotonic() + WRITTEN_TTL_SECONDS)
        self._written.move_to_end(key)
        while len(self._written) > MAX_WRITTEN:
            self._written.popitem(last=False)

    def _record_problems(self, guild_id: int, config: RewardConfig, plan: RolePlan, view: _GuildView) -> None:
        """Remember each skipped role's reason; forget roles that are no longer rewards or now pass the pre-check.

        Re-checking the remembered roles against the current view keeps `problems()` from showing a reason that
        was fixed (e.g. Manage Roles granted again) while no member happened to need that role changed.
        """
        problems = self._problems.get(guild_id)
        if problems is None:
            if not plan.skipped:
                return
            problems = self._problems[guild_id] = {}
        self._problems.move_to_end(guild_id)
        reward_ids = {role_id for _, role_id in config.rewards}
        for role_id in list(problems):
            still_failing = role_skip_reason(
                role_id,
                roles=view.roles,
                guild_id=guild_id,
                bot_top_position=view.bot_top_position,
                bot_can_manage_roles=view.bot_can_manage_roles,
                protected=config.admin_roles,
            )
            if role_id not in reward_ids or still_failing is None:
                del problems[role_id]
        for skip in plan.skipped:
            problems[skip.role_id] = skip.reason
        if not problems:
            del self._problems[guild_id]
        while len(self._problems) > MAX_PROBLEM_GUILDS:
            self._problems.popitem(last=False)

    # --- observation --------------------------------------------------------------------------------------------

    async def precheck(self, guild_id: int, role_ids: Iterable[int]) -> dict[int, str | None]:
        """The §13 pre-check of each role as things stand now (None: assignable), for `GET …/level-roles` and the
        admin's PUT; the same inputs and rule a sync uses, so what admins are shown is what a sync would skip."""
        view = await self._guild_view(guild_id)
        protected = self._cached_config(guild_id).admin_roles
        return {
            role_id: role_skip_reason(
                role_id,
                roles=view.roles,
                guild_id=guild_id,
                bot_top_position=view.bot_top_position,
                bot_can_manage_roles=view.bot_can_manage_roles,
                protected=protected,
            )
            for role_id in role_ids
        }

    async def reward_refusal(
        self, guild_id: int, role_id: int, admin_role_ids: frozenset[int], caller_role_ids: frozenset[int] | None
    ) -> RoleRefusal | None:
        """SPEC §13 "Safe roles only" on live Discord data: why `role_id` may not become a reward, or None.

        `caller_role_ids` are the roles of a user-token caller who is not the guild owner (None: no hierarchy
        check). An unknown role passes here; the caller answers 404 for it.
        """
        view = await self._guild_view(guild_id)
        role = view.roles.get(role_id)
        if role is None:
            return None
        caller_top = None
        if caller_role_ids is not None:
            caller_top = max((view.roles[r].position for r in caller_role_ids if r in view.roles), default=0)
        return reward_role_refusal(role, admin_role_ids=admin_role_ids, caller_top_position=caller_top)

    async def preview(self, guild_id: int, members: Iterable[MemberRow], config: RewardConfig) -> RolePreview:
        """What a sync with `config` would do to `members` now (SPEC §13 `dry_run`), without changing anything.

        The same inputs and the same plan as `_sync`: the member's roles from the gateway cache (one REST read for
        a member it lacks), corrected for our own not-yet-echoed updates, and the roles the bot granted; bots and
        members no longer on Discord are passed over, as the sync passes them over.
        """
        view = await self._guild_view(guild_id)
        preview = RolePreview()
        for index, row in enumerate(members):
            if index % PREVIEW_YIELD_EVERY == PREVIEW_YIELD_EVERY - 1:
                await asyncio.sleep(0)
            try:
                member = await self._member(guild_id, row.user_id)
            except hikari.NotFoundError:
                continue
            if member.is_bot:
                continue
            cached = frozenset(int(r) for r in member.role_ids) - {guild_id}
            current = self._current_roles_peek((guild_id, row.user_id), cached)
            plan = self._plan_for(guild_id, current, row.level, config, view, row.granted)
            preview.add(row.user_id, row.display_name, plan)
        return preview

    def problems(self, guild_id: int) -> dict[int, str]:
        """role_id -> the last pre-check reason seen for it (`missing_manage_roles`, `role_above_bot`, …)."""
        return dict(self._problems.get(guild_id, {}))

    def snapshot(self) -> dict[str, int]:
        """Counters for `/health`: members waiting, member updates done, syncs that failed."""
        return {"pending": len(self._pending), "updated": self._updated, "failed": self._failed}
