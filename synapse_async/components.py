"""The runtime's component slots: what adapters (HTTP handlers, probes) reach the running app through.

The composition root (`runtime.py`) fills the slots as it starts components (the HTTP server is up before the
database, SPEC §3.2), so a slot is None until its startup step ran. Handlers reach the database, cache and
services only through `require_db()`/`require_cache()`/`require_economy()`, never through globals; `health.py`
turns the same slots into `/health` and `/ready`. Every slot is typed: no `Any`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from synapse_async.cache.config_cache import ConfigCache
from synapse_async.cache.listener import ConfigListener
from synapse_async.db.engine import Database
from synapse_async.db.faults import DatabaseUnavailable
from synapse_async.services.economy import Economy
from synapse_async.tasks.supervisor import TaskSupervisor

if TYPE_CHECKING:
    from synapse_async.sandbox import DiscordSimulator


class GatewayStatus(Protocol):
    """What the gateway client exposes to the probes (one entry per local shard)."""

    def shard_states(self) -> list[dict[str, Any]]:
        """One entry per local shard, e.g. `[{"id": 0, "state": "connected", "latency_ms": 41.7}, …]`."""
        ...

    def structure_writes(self) -> dict[str, int]:
        """Guild-structure writes: `backlog` (queued or running), `written`, `superseded`, `failed`."""
        ...


class StatusSource(Protocol):
    """A component that contributes a section to `/health` (pipeline, announcer, …)."""

    def snapshot(self) -> dict[str, Any]: ...


@dataclass(slots=True)
class Lifecycle:
    """Startup and shutdown milestones (SPEC §3.2–§3.3) that readiness depends on."""

    started_monotonic: float = field(default_factory=time.monotonic)
    migrations_at_head: bool = False
    api_open: bool = False
    shutting_down: bool = False


@dataclass(slots=True)
class Components:
    """Mutable slots the composition root fills in startup order; read by probes and handlers."""

    lifecycle: Lifecycle
    db: Database | None = None
    cache: ConfigCache | None = None
    listener: ConfigListener | None = None
    tasks: TaskSupervisor | None = None
    gateway: GatewayStatus | None = None
    pipeline: StatusSource | None = None
    announcements: StatusSource | None = None
    http_db: StatusSource | None = None  # the HTTP API's database gate (slots in use, requests refused)
    simulator: DiscordSimulator | None = None  # for the /sandbox control endpoints (sandbox mode only)
    economy: Economy | None = None  # awards, grants, revokes, purchases (built once the cache is loaded)

    def require_db(self) -> Database:
        if self.db is None:
            raise DatabaseUnavailable("the database is not connected yet")
        return self.db

    def require_cache(self) -> ConfigCache:
        if self.cache is None or not self.cache.loaded:
            raise DatabaseUnavailable("the configuration cache is not loaded yet")
        return self.cache

    def require_economy(self) -> Economy:
        if self.economy is None:
            raise DatabaseUnavailable("the economy service is not started yet")
        return self.economy
