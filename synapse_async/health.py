"""What `/health` and `/ready` report from the runtime's component slots (SPEC §24.1–§24.2).

A component that is not there yet shows as not ready, with the reason of the startup step still to come. Nothing
here performs I/O, so the liveness probe stays cheap and answers even while the database is down.
"""

from __future__ import annotations

import time
from typing import Any

from synapse_async import __version__
from synapse_async.cache.listener import ListenerState
from synapse_async.components import Components
from synapse_async.timeutil import iso

_NO_POOL = {"size": 0, "checked_out": 0, "overflow": 0}


def ready_reasons(components: Components) -> list[str]:
    """`/ready`: why this process should not get traffic now; empty when ready (SPEC §24.2)."""
    reasons: list[str] = []
    if components.db is None or not components.db.probe_state.ok:
        reasons.append("db_unreachable")
    if not components.lifecycle.migrations_at_head:
        reasons.append("migrations_pending")
    if components.cache is None or not components.cache.loaded:
        reasons.append("cache_not_loaded")
    if components.gateway is not None:
        reasons += [
            f"gateway_disconnected:{s['id']}" for s in components.gateway.shard_states() if s["state"] != "connected"
        ]
    if components.lifecycle.shutting_down:
        reasons.append("shutting_down")
    elif not components.lifecycle.api_open and not reasons:
        # Steps 9–10 still to come (the gateway is being built, the API not yet opened): every other check
        # passes, yet `/api/*` would still answer "starting up", so not ready (SPEC §24.2).
        reasons.append("starting_up")
    return reasons


def report(components: Components) -> dict[str, Any]:
    """`/health`: every component's state from memory; `degraded` when any part is down (SPEC §24.1)."""
    probe = components.db.probe_state if components.db is not None else None
    listener = components.listener.snapshot() if components.listener is not None else None
    shards = components.gateway.shard_states() if components.gateway is not None else []
    task_list = components.tasks.snapshot() if components.tasks is not None else []
    degraded = (
        (probe is None or not probe.ok)
        or (components.listener is not None and components.listener.state is ListenerState.CIRCUIT_OPEN)
        or any(s["state"] != "connected" for s in shards)
        or any(t["state"] == "failed" for t in task_list)
    )
    return {
        "status": "degraded" if degraded else "ok",
        "version": __version__,
        "uptime_s": round(time.monotonic() - components.lifecycle.started_monotonic, 1),
        "db": {
            "pool": components.db.pool_stats() if components.db is not None else _NO_POOL,
            "http_pool": components.db.pool_stats(http=True) if components.db is not None else _NO_POOL,
            "public_pool": components.db.pool_stats(public=True) if components.db is not None else _NO_POOL,
            "http_gate": components.http_db.snapshot() if components.http_db is not None else None,
            "last_probe_ok": probe.ok if probe is not None else False,
            "last_probe_at": iso(probe.at) if probe is not None else None,
            "last_probe_latency_ms": probe.latency_ms if probe is not None else None,
        },
        "cache_listener": listener,
        "cache": {
            "loaded": components.cache.loaded if components.cache is not None else False,
            "full_reloads": components.cache.full_reloads if components.cache is not None else 0,
            "last_reload_at": iso(components.cache.last_reload_at) if components.cache is not None else None,
        },
        "gateway": {
            "shards": shards,
            "structure_writes": components.gateway.structure_writes() if components.gateway is not None else None,
        },
        "tasks": task_list,
        "pipeline": components.pipeline.snapshot() if components.pipeline is not None else None,
        "announcements": components.announcements.snapshot() if components.announcements is not None else None,
    }
