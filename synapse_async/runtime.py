"""The composition root: the one place that builds every component and owns startup and shutdown order.

Startup follows SPEC §3.2: embedded database (if needed) → HTTP server with probes → pool (retried, then exit 2) →
schema at head (migrate under a lock, or wait) → full cache load → LISTEN supervisor → gateway (slot) → open the
API → background tasks. Shutdown follows SPEC §3.3 within `SHUTDOWN_DEADLINE_SECONDS`: `/ready` turns 503 at
once, background work stops, the HTTP server drains, then the listener, the pool and the embedded server close.
Everything else in the package receives its dependencies from here; nothing holds connections in module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from synapse_async.api.contract import PLATFORM
from synapse_async.api.dbgate import HttpDatabaseGate
from synapse_async.api.platform import ApiPlatform, OAuthClient
from synapse_async.api.pruner import PRUNE_INTERVAL_SECONDS, prune
from synapse_async.api.serving import CappedSite, ConnectionCap
from synapse_async.bot.authors import AuthorIndex
from synapse_async.cache.config_cache import ConfigCache
from synapse_async.cache.listener import ConfigListener, ListenerSettings
from synapse_async.components import Components, GatewayStatus, Lifecycle
from synapse_async.config import Config, run_problems
from synapse_async.db.embedded import EmbeddedPostgres, EmbeddedPostgresError
from synapse_async.db.engine import Database
from synapse_async.db.migrate import is_at_head, migrate
from synapse_async.domain.snowflakes import shard_of
from synapse_async.handover import Handover, split_effects
from synapse_async.ledger import Effects, LevelEngine
from synapse_async.obs import malloc
from synapse_async.obs.heap import release_heap, settle_heap
from synapse_async.obs.logging import get_logger
from synapse_async.pipeline.cooldowns import CooldownCache
from synapse_async.pipeline.lanes import Pipeline
from synapse_async.pipeline.processor import Processor
from synapse_async.services.card import CardService
from synapse_async.services.economy import Economy
from synapse_async.tasks.supervisor import TaskSupervisor
from synapse_async.web.app import build_site

if TYPE_CHECKING:
    from synapse_async.announce.announcer import Announcer
    from synapse_async.bot.gateway import DiscordGateway
    from synapse_async.bot.normalizer import EventSink
    from synapse_async.jobs.runner import JobRunner
    from synapse_async.sandbox import DiscordSimulator
    from synapse_async.sandbox.community import CommunityActivity
    from synapse_async.tasks.scheduler import LakeScheduler
    from synapse_async.tasks.seasons import SeasonRollover
    from synapse_async.tasks.voice_ticker import VoiceTicker

log = get_logger(__name__)

LISTENER_TASK = "cache_listener"
HEAP_TRIM_TASK = "heap_trim"
PIPELINE_TASK = "pipeline"
ANNOUNCER_TASK = "announcer"
ROLE_SYNC_TASK = "level_roles"
# Kept running through the drain (step 4) and the flush (step 5): they carry out what the drain still commits.
_FLUSHED_LAST = frozenset({LISTENER_TASK, PIPELINE_TASK, ANNOUNCER_TASK, ROLE_SYNC_TASK})


SIGNAL_REPEAT_IGNORE_SECONDS = 5.0


class StartupError(Exception):
    """Startup cannot continue; the CLI prints the message as one line and exits with `exit_code` (2, SPEC §30)."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class GatewayClient(GatewayStatus, Protocol):
    """The slot the Discord gateway plugs into (real Discord or the sandbox simulator)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class RoleSyncRequests(Protocol):
    def request(self, guild_id: int, user_id: int, level: int) -> None: ...

    async def flush(self, deadline: float) -> int: ...


class EffectsPublisher(Protocol):
    def publish(self, effects: Effects) -> None: ...


class Runtime:
    """Owns the process's components and their lifecycle."""

    def __init__(
        self,
        config: Config,
        *,
        gateway: GatewayClient | None = None,
        sink: EventSink | None = None,
        extensions: Sequence[str] | None = None,
        on_started: Callable[[Runtime], None] | None = None,
    ) -> None:
        self.config = config
        self._on_started = on_started
        self.components = Components(Lifecycle())
        self.supervisor = TaskSupervisor(restart_delay=config.task_restart_seconds)
        self.components.tasks = self.supervisor
        self.gateway = gateway
        self.embedded: EmbeddedPostgres | None = None
        self.simulator: DiscordSimulator | None = None
        self._community: CommunityActivity | None = None
        # Tests may replace the pipeline as the normalizer's sink with a recorder; normally the pipeline consumes.
        self.sink: EventSink | None = sink
        self.pipeline: Pipeline | None = None
        self.engine = LevelEngine()  # the one level/achievement engine: pipeline, economy and jobs share it
        self.economy: Economy | None = None
        self.cards: CardService | None = None
        self.authors: AuthorIndex | None = None
        self._extensions = extensions
        self.role_syncer: RoleSyncRequests | None = None
        self.announcements: EffectsPublisher | None = None
        self.announcer: Announcer | None = None
        self.voice_ticker: VoiceTicker | None = None
        self.season_rollover: SeasonRollover | None = None
        self.lake_scheduler: LakeScheduler | None = None
        self.jobs: JobRunner | None = None
        self.handover: Handover | None = None
        self.database_url: str | None = None
        self.http_port: int | None = None
        self._runner: web.AppRunner | None = None
        self.api: ApiPlatform | None = None
        self._stop = asyncio.Event()
        self._first_signal_at: float | None = None
        self._shutdown_done = False
        self.frozen_objects = 0  # what startup left on the heap, kept out of later collections (obs/heap.py)

    # --- startup -----------------------------------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.config
        if problems := run_problems(cfg):
            raise StartupError(2, "; ".join(p.render() for p in problems))
        # Before the big buffers come (member chunks): they then never fragment the heap (obs/malloc.py, issue 27).
        malloc.fix_mmap_threshold()
        url = cfg.database_url
        if url is None:
            self.embedded = EmbeddedPostgres(cfg.embedded_pg_dir)
            log.warning("embedded_database", detail="local use only", data_dir=str(cfg.embedded_pg_dir))
            try:
                url = await self.embedded.start()
            except EmbeddedPostgresError as exc:  # missing server, version mismatch: the message says what to do
                raise StartupError(2, str(exc)) from exc
        self.database_url = url

        await self._start_http()

        db = Database(
            url,
            pool_size=cfg.db_pool_size,
            max_overflow=cfg.db_pool_max_overflow,
            pool_timeout=cfg.db_pool_timeout_seconds,
            statement_timeout_ms=cfg.db_statement_timeout_ms,
            http_pool_size=cfg.http_db_pool_size,
            public_pool_size=cfg.public_db_concurrency,
            public_statement_timeout_ms=cfg.public_query_timeout_ms,
        )
        self.components.db = db
        try:
            await db.wait_until_reachable(cfg.db_connect_retry_seconds)
        except Exception as exc:
            raise StartupError(
                2, f"database unreachable after {cfg.db_connect_retry_seconds:g}s ({exc}): check DATABASE_URL"
            ) from exc
        self.supervisor.every("db_probe", cfg.db_probe_seconds, db.run_probe)
        self.supervisor.every(HEAP_TRIM_TASK, malloc.TRIM_SECONDS, malloc.trim_job, first_delay=malloc.TRIM_SECONDS)

        await self._ensure_schema(db)
        self.supervisor.every("pruner", PRUNE_INTERVAL_SECONDS, lambda: self._prune(db))  # needs the schema

        cache = ConfigCache(db.engine)
        await cache.full_reload()
        # One author index (§7.4): the normalizer fills it from memory, the lanes resolve what it lacks in order.
        self.authors = AuthorIndex(cfg.message_author_cache_max)
        self.pipeline = Pipeline(
            db,
            Processor(cache, CooldownCache(cfg.cooldown_cache_max), self.engine),
            concurrency=cfg.pipeline_concurrency,
            buffer_events=cfg.pipeline_buffer_events,
            buffer_max_age_seconds=cfg.pipeline_buffer_max_age_seconds,
            retry_max=cfg.pipeline_retry_max_seconds,
            idle_release_seconds=cfg.pipeline_idle_release_seconds,
            on_commit=self._after_commit,
            resolve_authors=self.authors.resolve,
        )
        self.components.pipeline = self.pipeline
        # Services are built once here; each write commits and then publishes its own effects.
        self.economy = self.components.economy = Economy(db, self.engine, cache, self._after_commit)
        if self.sink is None:
            self.sink = self.pipeline
        self.supervisor.add(PIPELINE_TASK, self.pipeline.run)

        listener = ConfigListener(
            url,
            cache,
            ListenerSettings(
                ping_seconds=cfg.listen_ping_seconds,
                max_failures=cfg.listen_max_failures,
                backoff_max_seconds=cfg.listen_backoff_max_seconds,
                half_open_seconds=cfg.listen_half_open_seconds,
                poll_seconds=cfg.cache_poll_seconds,
            ),
            on_event=self._on_event,
        )
        self.components.listener = listener
        self.supervisor.add(LISTENER_TASK, listener.run)
        # Step 8 completes when LISTEN is active (or its first attempt failed: it keeps retrying in the background).
        await listener.first_attempt_done.wait()
        self.components.cache = cache  # readiness reports `cache_not_loaded` until steps 7 and 8 are done

        # The rank card (SPEC §29): rendered by worker processes, each finding its fonts once; they start with the
        # first card, so a process that never draws one (most test runtimes, API-only deployments) pays nothing.
        self.cards = CardService(
            font_dirs=cfg.card_font_dirs,
            cdn=cfg.discord_cdn_url,
            concurrency=cfg.card_render_concurrency,
            queue=cfg.card_render_queue,
        )
        if self.api is not None:
            self.api.cards = self.cards
        if self.gateway is None:
            self.gateway = await self._build_gateway(db, cache)
        self.components.gateway = self.gateway
        # Before the first gateway event: what startup built stays out of every later collection (obs/heap.py).
        self.frozen_objects = settle_heap()
        await self.gateway.start()
        self._wire_api(cache)

        self.components.lifecycle.api_open = True
        if self._community is not None:
            self._community.start()
        if self._on_started is not None:
            self._on_started(self)
        log.info(
            "startup_complete", http_port=self.http_port, sandbox=cfg.sandbox, embedded_db=self.embedded is not None
        )

    async def _build_gateway(self, db: Database, cache: ConfigCache) -> GatewayClient:
        """Step 9: Discord with a token, else the in-process simulator (SPEC §3.5), through the same hikari client."""
        from synapse_async.bot.gateway import DiscordGateway
        from synapse_async.bot.normalizer import Normalizer

        cfg = self.config
        token, api_url = cfg.discord_token, cfg.discord_api_url
        if token is None:
            from synapse_async.sandbox import DiscordSimulator
            from synapse_async.sandbox.community import CommunityActivity

            simulator = DiscordSimulator(members=cfg.sandbox_members, seed=cfg.sandbox_seed)
            await simulator.start(host="127.0.0.1", port=0)
            self.simulator = self.components.simulator = simulator
            token, api_url = simulator.token, simulator.api_url
            log.warning("sandbox_mode", detail="DISCORD_TOKEN unset: local Discord simulator", api_url=api_url)
            if cfg.sandbox_activity_per_minute > 0:
                self._community = CommunityActivity(
                    simulator, per_minute=cfg.sandbox_activity_per_minute, seed=cfg.sandbox_seed
                )
        shard_count = cfg.shard_count if cfg.shard_count is not None else (1 if cfg.sandbox else None)
        local_shards = cfg.shard_ids
        register = cfg.register_commands == "true" or (
            cfg.register_commands == "auto" and (local_shards is None or 0 in local_shards)
        )
        assert self.sink is not None
        assert self.pipeline is not None
        assert self.authors is not None
        normalizer = Normalizer(
            self.sink,
            cache,
            authors=self.authors,
        )
        gateway = DiscordGateway(
            token=token,
            rest_url=api_url,
            sessions=db.sessions,
            normalizer=normalizer,
            cache=cache,
            extensions=self._extensions,
            shard_ids=local_shards,
            shard_count=shard_count,
            default_guilds=cfg.dev_guild_ids,
            register_commands=register,
            structure_workers=cfg.guild_sync_concurrency,
        )
        self._provide_services(gateway, db)
        self._wire_discord_tasks(gateway, cache, db)
        return gateway

    def _provide_services(self, gateway: DiscordGateway, db: Database) -> None:
        """The services slash commands receive through lightbulb's DI, each built once here."""
        from synapse_async.bot.gateway import top_role_colour
        from synapse_async.services.catalogue import Catalogue
        from synapse_async.services.member_settings import MemberSettings
        from synapse_async.services.seasons import Seasons
        from synapse_async.services.standings import Standings

        assert self.economy is not None
        assert self.cards is not None
        self.cards.role_colour = top_role_colour(gateway.bot.cache)
        gateway.provide(CardService, self.cards)
        gateway.provide(Economy, self.economy)
        gateway.provide(Standings, Standings(db))
        gateway.provide(MemberSettings, MemberSettings(db))
        gateway.provide(Seasons, Seasons(db))
        gateway.provide(Catalogue, Catalogue(db))

    def _wire_discord_tasks(self, gateway: DiscordGateway, cache: ConfigCache, db: Database) -> None:
        """Background work that needs the gateway: announcer, voice ticker, season rollover (SPEC §23.1)."""
        from synapse_async.announce.announcer import Announcer
        from synapse_async.announce.publisher import AnnouncementPublisher, GatewayDirectory, usable_channels
        from synapse_async.domain.events import MemberRef
        from synapse_async.imports.service import import_handler
        from synapse_async.jobs.handlers import level_role_sync_handler, relevel_handler
        from synapse_async.jobs.lake import lake_job_handlers
        from synapse_async.jobs.runner import JobRunner
        from synapse_async.levelroles.grants import GrantStore
        from synapse_async.levelroles.syncer import LevelRoleSyncer
        from synapse_async.tasks.scheduler import LakeScheduler
        from synapse_async.tasks.seasons import SeasonRollover
        from synapse_async.tasks.voice_ticker import VoiceTicker

        bot = gateway.bot
        self.announcer = Announcer(bot.rest, is_usable=usable_channels(cache))
        self.announcements = AnnouncementPublisher(self.announcer, cache, GatewayDirectory(bot.cache))
        self.supervisor.add(ANNOUNCER_TASK, self.announcer.run)
        self.components.announcements = self.announcer
        # hikari itself retries 5xx responses 3 times with backoff (SPEC §13's "up to 3 retries"), so the syncer's
        # default adds none of its own: 403/404 surface at once and are logged, never retried.
        self.role_syncer = LevelRoleSyncer(bot, cache, GrantStore(db))
        self.supervisor.add(ROLE_SYNC_TASK, self.role_syncer.run)
        self.handover = Handover(db, cache, self.owns, self.announcements, self.role_syncer)

        def member_ref(guild_id: int, user_id: int) -> MemberRef:
            m = bot.cache.get_member(guild_id, user_id)
            if m is None:
                return MemberRef(user_id=user_id, display_name=str(user_id), avatar_hash=None)
            return MemberRef(
                user_id=user_id,
                display_name=m.display_name,
                avatar_hash=m.avatar_hash,
                role_ids=tuple(int(r) for r in m.role_ids),
            )

        def present_name(guild_id: int, user_id: int) -> str | None:
            """The import's view of Discord (SPEC §20.1): in the guild (with this name) or not."""
            m = bot.cache.get_member(guild_id, user_id)
            return None if m is None else m.display_name

        assert self.pipeline is not None
        self.pipeline.processor.bind_members(member_ref)
        self.voice_ticker = VoiceTicker(gateway.normalizer.voice, cache, self.pipeline.submit, member_ref)
        self.supervisor.every("voice_ticker", self.config.voice_tick_check_seconds, self.voice_ticker.check)
        self.jobs = JobRunner(
            db,
            {
                "relevel": relevel_handler(db, self.engine, cache, self._after_commit),
                "level_role_sync": level_role_sync_handler(db, self.role_syncer),
                **lake_job_handlers(db, self.config),
                "import": import_handler(
                    db, self.engine, cache, max_bytes=self.config.import_max_bytes, people=present_name
                ),
            },
            lambda: [int(g) for g in bot.cache.get_guilds_view()],
            instance=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4()}",
        )
        self.supervisor.every("job_runner", self.config.job_poll_seconds, self.jobs.poll)
        self.lake_scheduler = LakeScheduler(
            db.sessions, lambda: [int(g) for g in bot.cache.get_guilds_view()], engine=db.engine
        )
        self.supervisor.every("lake_scheduler", self.config.lake_scheduler_check_seconds, self.lake_scheduler.check)
        self.season_rollover = SeasonRollover(db.sessions, cache, lambda: [int(g) for g in bot.cache.get_guilds_view()])
        self.pipeline.processor.bind_renewal(self.season_rollover.renew)
        self.supervisor.every("season_rollover", self.config.season_check_seconds, self.season_rollover.check)

    async def _prune(self, db: Database) -> None:
        await prune(db.engine)

    def _wire_api(self, cache: ConfigCache) -> None:
        """The API's live admin check (hikari's cache) and, in the sandbox, the simulator's OAuth application."""
        from synapse_async.auth.admins import GatewayAdmins
        from synapse_async.bot.gateway import DiscordGateway
        from synapse_async.levelroles.syncer import LevelRoleSyncer

        api = self.api
        if api is None:
            return
        if isinstance(self.gateway, DiscordGateway):
            api.admins = GatewayAdmins(self.gateway.bot, cache, self.owns)
        if isinstance(self.role_syncer, LevelRoleSyncer):
            api.level_roles = self.role_syncer
        sim = self.simulator
        if api.oauth is None and sim is not None:
            redirect = f"http://127.0.0.1:{self.http_port}/api/auth/callback"
            api.oauth = OAuthClient(
                str(sim.client_id), sim.client_secret, redirect, sim.oauth_url + "/authorize", sim.api_url
            )
        if sim is not None and api.oauth is not None:
            sim.oauth.allowed_redirect_uris = {api.oauth.redirect_uri}  # the registered redirect only

    def owns(self, guild_id: int) -> bool:
        """Whether this process runs the guild's shard (SPEC §3.4); a process running every shard owns all."""
        shard_ids, shard_count = self.config.shard_ids, self.config.shard_count
        if shard_ids is None or shard_count is None:
            return True
        return shard_of(guild_id, shard_count) in shard_ids

    async def _on_event(self, event: dict[str, Any]) -> None:
        """A `synapse_events` notification from any process (SPEC §16.3)."""
        if self.handover is not None:
            await self.handover.on_event(event)

    def _after_commit(self, effects: Effects) -> None:
        """Effects of a committed transaction: announcements and role syncs (SPEC §8.1 'after commit').

        Those of guilds another process owns are handed over to it through `synapse_events` (SPEC §3.4).
        """
        if self.handover is not None:
            effects, remote = split_effects(effects, self.owns)
            self.handover.hand_over(remote)
        if self.role_syncer is not None:
            for (guild_id, user_id), level in effects.role_syncs.items():
                self.role_syncer.request(guild_id, user_id, level)
        if self.announcements is not None:
            self.announcements.publish(effects)

    async def _start_http(self) -> None:
        gate = HttpDatabaseGate(self.config.http_db_pool_size, self.config.http_db_wait_seconds)
        self.components.http_db = gate
        app = build_site(self.config, self.components, gate)
        self.api = app[PLATFORM]
        # In-flight requests get up to 3 s when the server stops (SPEC §3.3 step 6); idle connections are closed
        # after HTTP_IDLE_TIMEOUT_SECONDS, and each address may hold HTTP_MAX_CONNECTIONS_PER_IP (api/serving.py).
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=3.0,
            keepalive_timeout=self.config.http_idle_timeout_seconds,
        )
        await self._runner.setup()
        host, port = self.config.http_host, self.config.http_port
        cap = ConnectionCap(self.config.http_max_connections_per_ip, self.config.trusted_proxies)
        site = CappedSite(self._runner, host, port, cap)
        try:
            await site.start()
        except OSError as exc:  # port in use, address not on this machine, privileged port
            reason = exc.strerror or str(exc)
            raise StartupError(
                2, f"cannot listen on {host}:{port} ({reason}): set HTTP_PORT to a free port or stop what uses it"
            ) from None
        # The bound port matters when HTTP_PORT=0 (tests, several local processes).
        addresses = self._runner.addresses
        self.http_port = int(addresses[0][1]) if addresses else self.config.http_port
        log.info("http_listening", host=self.config.http_host, port=self.http_port)

    async def _ensure_schema(self, db: Database) -> None:
        if self.config.db_auto_migrate:
            before, after = await migrate(db.engine, "head")
            if before != after:
                log.info("schema_migrated", from_revision=before, to_revision=after)
        else:
            while not await is_at_head(db.engine):
                log.warning("migrations_pending", detail="run `python -m synapse_async migrate`")
                await asyncio.sleep(self.config.migration_poll_seconds)
        self.components.lifecycle.migrations_at_head = True

    # --- running -----------------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """First signal: begin graceful shutdown (`/ready` is 503 from now on). A repeat within
        `SIGNAL_REPEAT_IGNORE_SECONDS` is ignored (a terminal's Ctrl-C reaching `make` and the app, an orchestrator
        that sends SIGTERM twice); one after that exits at once with code 1 (SPEC §30)."""
        now = time.monotonic()
        if self._first_signal_at is None:
            self._first_signal_at = now
            self.components.lifecycle.shutting_down = True
            self._stop.set()
            return
        if now - self._first_signal_at < SIGNAL_REPEAT_IGNORE_SECONDS:
            log.warning("signal_ignored", detail="shutting down; a signal 5 s after the first forces an exit")
            return
        log.error("forced_exit", detail="second signal during shutdown")
        os._exit(1)

    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, shut down; return the process exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            startup = asyncio.create_task(self.start(), name="startup")
            stopping = asyncio.create_task(self._stop.wait(), name="stop-wait")
            await asyncio.wait({startup, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if startup.done():
                startup.result()  # raises StartupError
                await stopping
            else:
                startup.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await startup
            return 0
        finally:
            await self.shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    # --- shutdown ----------------------------------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Graceful shutdown in SPEC §3.3 order, bounded by the deadline; resources are always released."""
        if self._shutdown_done:
            return
        self._shutdown_done = True
        self.components.lifecycle.shutting_down = True
        deadline = self.config.shutdown_deadline_seconds
        loop = asyncio.get_running_loop()
        started = loop.time()
        log.info("shutdown_started", deadline_s=deadline)
        try:
            async with asyncio.timeout(max(deadline - 2.0, 1.0)):
                if self._community is not None:
                    await self._community.stop()
                if self.pipeline is not None:
                    self.pipeline.stop_accepting()
                if self.jobs is not None:  # step 3: a running job stops at its next batch boundary, ends failed
                    self.jobs.stop()
                    await self.jobs.wait_stopped(max(started + deadline - 8.0 - loop.time(), 0.5))
                await self.supervisor.stop(exclude=_FLUSHED_LAST)
                if self.pipeline is not None:  # step 4: drain until deadline − 8 s
                    await self.pipeline.drain(max(started + deadline - 8.0 - loop.time(), 0.5))
                if self.handover is not None:
                    await self.handover.wait_sent()
                # Step 5: flush announcements (and the role updates the drain's commits asked for) until
                # deadline − 5 s; both keep sending concurrently meanwhile.
                flush_until = max(started + deadline - 5.0, loop.time() + 0.5)
                flushes = [x.flush(flush_until) for x in (self.announcer, self.role_syncer) if x is not None]
                await asyncio.gather(*flushes)
                await self.supervisor.stop(exclude={LISTENER_TASK})
                if self._runner is not None:
                    await self._runner.cleanup()
                if self.gateway is not None:
                    await self.gateway.close()
                await self.supervisor.stop()
                if self.simulator is not None:
                    await self.simulator.stop()
        except TimeoutError:
            log.error("shutdown_deadline_exceeded", deadline_s=deadline)
        finally:
            if self.cards is not None:  # its worker processes end with the app, even after a timeout above
                await self.cards.close()
            if self.components.db is not None:
                await self.components.db.dispose()
            if self.embedded is not None:
                await self.embedded.stop()
            if self.frozen_objects:
                release_heap()
                self.frozen_objects = 0
            log.info("shutdown_complete")
