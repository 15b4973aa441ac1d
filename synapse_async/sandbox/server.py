"""`DiscordSimulator`: the world, the REST API, the gateway and OAuth2 on one loopback port.

A real `hikari.GatewayBot` connects to it exactly as to Discord: pass `rest_url=sim.api_url` and `token=sim.token`;
the gateway URL comes from `GET /gateway/bot` as usual. The simulator runs in the caller's event loop (tests drive
it and the bot side by side) or as its own process (`python -m synapse_async.sandbox`).
"""

from __future__ import annotations

import base64
import secrets
from types import TracebackType

from aiohttp import web

from synapse_async.sandbox.driver import SimulatorDriver
from synapse_async.sandbox.events import WorldEvents
from synapse_async.sandbox.gateway import GatewayServer
from synapse_async.sandbox.interactions import CommandStore, InteractionsApi
from synapse_async.sandbox.oauth import OAuthApi
from synapse_async.sandbox.recording import RestRecorder
from synapse_async.sandbox.rest import RestApi
from synapse_async.sandbox.world import SANDBOX_OWNER_ID, World, build_sandbox_world

API_BASE = "/api/v10"
GATEWAY_PATH = "/gateway"
RESUME_PATH = "/gateway-resume"


def make_bot_token(bot_user_id: int) -> str:
    """A token shaped like Discord's: hikari reads the bot id from the base64 of the first segment."""
    head = base64.b64encode(str(bot_user_id).encode()).decode().rstrip("=")
    return f"{head}.{secrets.token_urlsafe(4)}.{secrets.token_urlsafe(27)}"


class DiscordSimulator(SimulatorDriver):
    """A local Discord: build it, `await start()`, point the bot at `api_url` with `token`, drive it, `stop()`."""

    def __init__(
        self,
        world: World | None = None,
        *,
        members: int = 20,
        seed: int = 42,
        heartbeat_interval_ms: int = 41250,
        recommended_shards: int = 1,
        max_concurrency: int = 16,
        ack_timeout_s: float = 3.0,
        resume_window_s: float = 300.0,
        token: str | None = None,
        client_secret: str | None = None,
    ) -> None:
        self.world = world if world is not None else build_sandbox_world(members=members, seed=seed)
        self.token = token or make_bot_token(self.world.bot_user_id)
        self.client_id = self.world.application_id
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self._base_url: str | None = None
        self.recorder = RestRecorder(API_BASE)
        self.gateway = GatewayServer(
            self.world,
            token=self.token,
            resume_url=lambda: self.resume_url,
            heartbeat_interval_ms=heartbeat_interval_ms,
            resume_window_s=resume_window_s,
        )
        self.events = WorldEvents(self.world, self.gateway)
        self.commands = CommandStore(self.world)
        self.interactions = InteractionsApi(self.world, self.events, self.commands, ack_timeout_s=ack_timeout_s)
        default_user = SANDBOX_OWNER_ID if SANDBOX_OWNER_ID in self.world.users else self.world.bot_user_id
        self.oauth = OAuthApi(
            self.world, client_id=self.client_id, client_secret=self.client_secret, default_user_id=default_user
        )
        self.rest = RestApi(
            self.world,
            self.events,
            self.commands,
            self.oauth,
            token=self.token,
            gateway_url=lambda: self.gateway_url,
            recommended_shards=recommended_shards,
            max_concurrency=max_concurrency,
            verify_key=secrets.token_hex(32),
        )
        self.app = web.Application(middlewares=[self.recorder.middleware], client_max_size=64 * 1024 * 1024)
        self.app.router.add_get(GATEWAY_PATH, self.gateway.handle)
        self.app.router.add_get(RESUME_PATH, self.gateway.handle)
        self.rest.add_routes(self.app, API_BASE)
        self.interactions.add_routes(self.app, API_BASE)
        self.oauth.add_routes(self.app, API_BASE)
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------------------------------------ urls

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the simulator is not started")
        return self._base_url

    @property
    def api_url(self) -> str:
        """REST base, for `hikari.GatewayBot(rest_url=...)` and `DISCORD_API_URL`."""
        return self.base_url + API_BASE

    @property
    def oauth_url(self) -> str:
        """Authorize base, for `DISCORD_OAUTH_URL` (`{oauth_url}/authorize`)."""
        return self.base_url + "/oauth2"

    @property
    def gateway_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + GATEWAY_PATH

    @property
    def resume_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + RESUME_PATH

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    # ------------------------------------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Bind and serve (port 0 picks a free port; read it back from `api_url`)."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_port = int(runner.addresses[0][1])
        shown_host = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        if ":" in shown_host:
            shown_host = f"[{shown_host}]"
        self._base_url = f"http://{shown_host}:{bound_port}"

    async def stop(self) -> None:
        """Close gateway connections (1001) and the HTTP server."""
        runner = self._runner
        if runner is None:
            return
        self._runner = None
        await self.gateway.close()
        await runner.cleanup()

    async def __aenter__(self) -> DiscordSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
