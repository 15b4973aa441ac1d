"""The runtime's component slots, and what `/health` and `/ready` report from them (SPEC §24.1–§24.2).

The composition root fills the slots as it starts components (the HTTP server is up before the database, SPEC
§3.2); a component that is not there yet shows as not ready, with the reason of the startup step still to come.
Handlers reach the database and cache only through `require_db()`/`require_cache()`, never through globals.
Nothing here performs I/O, so the liveness probe stays cheap and answers even while the database is down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from synapse_async import __version__
from synapse_async.cache.config_cache import ConfigCache
from synapse_async.cache.listener import ConfigListener, ListenerState
from synapse_async.db.engine import Database
from synapse_async.db.faults import DatabaseUnavailable
from synapse_async.tasks.supervisor import TaskSupervisor
from synapse_async.timeutil import iso

_NO_POOL = {"size": 0, "checked_out": 0, "overflow": 0}


class GatewayStatus(Protocol):
    """What the gateway client exposes to the probes (one entry per local shard)."""

    def shard_states(self) -> list[dict[str, Any]]:
        """[{"id": 0, "state": "connected", "latency_ms": 41.7}, …]"""
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
    simulator: Any = None  # the sandbox's DiscordSimulator, for the /sandbox control endpoints

    def require_db(self) -> Database:
        if self.db is None:
            raise DatabaseUnavailable("the database is not connected yet")
        return self.db

    def require_cache(self) -> ConfigCache:
        if self.cache is None or not self.cache.loaded:
            raise DatabaseUnavailable("the configuration cache is not loaded yet")
        return self.cache

    def ready_reasons(self) -> list[str]:
        reasons: list[str] = []
        if self.db is None or not self.db.probe_state.ok:
            reasons.append("db_unreachable")
        if not self.lifecycle.migrations_at_head:
            reasons.append("migrations_pending")
        if self.cache is None or not self.cache.loaded:
            reasons.append("cache_not_loaded")
        if self.gateway is not None:
            reasons += [
                f"gateway_disconnected:{s['id']}" for s in self.gateway.shard_states() if s["state"] != "connected"
            ]
        if self.lifecycle.shutting_down:
            reasons.append("shutting_down")
        return reasons

    def report(self) -> dict[str, Any]:
        probe = self.db.probe_state if self.db is not None else None
        listener = self.listener.snapshot() if self.listener is not None else None
        shards = self.gateway.shard_states() if self.gateway is not None else []
        task_list = self.tasks.snapshot() if self.tasks is not None else []
        degraded = (
            (probe is None or not probe.ok)
            or (self.listener is not None and self.listener.state is ListenerState.CIRCUIT_OPEN)
            or any(s["state"] != "connected" for s in shards)
            or any(t["state"] == "failed" for t in task_list)
        )
        return {
            "status": "degraded" if degraded else "ok",
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.lifecycle.started_monotonic, 1),
            "db": {
                "pool": self.db.pool_stats() if self.db is not None else _NO_POOL,
                "http_pool": self.db.pool_stats(http=True) if self.db is not None else _NO_POOL,
                "http_gate": self.http_db.snapshot() if self.http_db is not None else None,
                "last_probe_ok": probe.ok if probe is not None else False,
                "last_probe_at": iso(probe.at) if probe is not None else None,
                "last_probe_latency_ms": probe.latency_ms if probe is not None else None,
            },
            "cache_listener": listener,
            "cache": {
                "loaded": self.cache.loaded if self.cache is not None else False,
                "full_reloads": self.cache.full_reloads if self.cache is not None else 0,
                "last_reload_at": iso(self.cache.last_reload_at) if self.cache is not None else None,
            },
            "gateway": {"shards": shards},
            "tasks": task_list,
            "pipeline": self.pipeline.snapshot() if self.pipeline is not None else None,
            "announcements": self.announcements.snapshot() if self.announcements is not None else None,
        }
