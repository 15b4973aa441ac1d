"""The real process: `python -m synapse_async migrate` and `run`, driven like an operator would (SPEC §3.3, §26)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from synapse_async.config import VARIABLES
from tests.support import get_json, wait_for


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {v.name for v in VARIABLES}}
    env.update(extra)
    return env


def test_migrate_is_idempotent(fresh_database_sync: str) -> None:
    env = _clean_env(DATABASE_URL=fresh_database_sync, LOG_LEVEL="WARNING")
    cmd = [sys.executable, "-m", "synapse_async", "migrate"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().startswith("schema: base -> ")
    head = first.stdout.strip().rsplit(" ", 1)[1]
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == f"schema: {head} -> {head}"


async def _read_port(stream: asyncio.StreamReader, lines: list[dict[str, object]]) -> int:
    while True:
        raw = await stream.readline()
        if not raw:
            raise AssertionError("process ended before listening: " + json.dumps(lines[-5:]))
        entry = json.loads(raw.decode("utf-8"))  # every line must be one JSON object
        lines.append(entry)
        if entry.get("event") == "http_listening":
            return int(str(entry["port"]))


async def test_run_serves_probes_and_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    pg_dir = tmp_path / "pg"
    env = _clean_env(EMBEDDED_PG_DIR=str(pg_dir), HTTP_HOST="127.0.0.1", HTTP_PORT="0", SHUTDOWN_DEADLINE_SECONDS="10")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "synapse_async", "run", env=env, stderr=asyncio.subprocess.PIPE
    )
    lines: list[dict[str, object]] = []
    try:
        assert proc.stderr is not None
        port = await asyncio.wait_for(_read_port(proc.stderr, lines), 120)

        async def ready() -> bool:
            return (await get_json(port, "/ready"))[0] == 200

        await wait_for(ready, timeout=120)
        status, health = await get_json(port, "/health")
        assert status == 200
        assert health["cache_listener"]["state"] == "connected", health["cache_listener"]
        postmaster_pid = int((pg_dir / "postmaster.pid").read_text().split()[0])
        assert psutil.pid_exists(postmaster_pid)

        # Ctrl-C in a terminal, then an impatient orchestrator's SIGTERM right after: one clean drain (SPEC §30).
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stderr.read(), 60)
        code = await asyncio.wait_for(proc.wait(), 30)
        assert code == 0
        for raw in rest.decode("utf-8").splitlines():
            lines.append(json.loads(raw))
        events = [e["event"] for e in lines]
        assert events.index("shutdown_started") < events.index("shutdown_complete")
        assert all({"ts", "level", "logger", "event"} <= e.keys() for e in lines)
        await wait_for(lambda: not psutil.pid_exists(postmaster_pid), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_ready_turns_503_as_soon_as_shutdown_is_requested(fresh_database: str) -> None:
    from tests.support import make_runtime

    rt = make_runtime(fresh_database)
    await rt.start()
    try:
        assert rt.http_port is not None
        assert (await get_json(rt.http_port, "/ready"))[0] == 200
        rt.request_stop()
        status, body = await get_json(rt.http_port, "/ready")
        assert status == 503 and body["reasons"] == ["shutting_down"]
    finally:
        await rt.shutdown()


async def test_a_repeated_signal_is_ignored_and_one_5_s_later_forces_exit_1(tmp_path: Path) -> None:
    """Shutdown is kept busy (the database is gone while an event waits in the pipeline), then signalled again: at
    once (ignored), and again 5 s after the first (exit 1 at once, SPEC §30)."""
    import aiohttp

    from synapse_async.db.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path / "pg")
    url = await server.start()
    env = _clean_env(
        DATABASE_URL=url,
        SANDBOX_ALLOW_EXTERNAL_DATABASE="true",
        HTTP_HOST="127.0.0.1",
        HTTP_PORT="0",
        SHUTDOWN_DEADLINE_SECONDS="20",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "synapse_async", "run", env=env, stderr=asyncio.subprocess.PIPE
    )
    lines: list[dict[str, object]] = []
    try:
        assert proc.stderr is not None
        port = await asyncio.wait_for(_read_port(proc.stderr, lines), 120)

        async def ready() -> bool:
            return (await get_json(port, "/ready"))[0] == 200

        await wait_for(ready, timeout=120)
        await server.stop()
        body = {"user_id": "100000000000001000", "channel_id": "100000000000000201", "content": "stuck in the lane"}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/sandbox/messages", json=body) as resp:
                assert resp.status == 202
        loop = asyncio.get_running_loop()
        proc.send_signal(signal.SIGTERM)
        first = loop.time()

        async def logged(event: str) -> None:
            while json.loads(await asyncio.wait_for(proc.stderr.readline(), 60)).get("event") != event:
                pass

        await logged("shutdown_started")  # the graceful shutdown has begun (it then waits for the stuck event)
        proc.send_signal(signal.SIGTERM)
        await logged("signal_ignored")
        assert proc.returncode is None
        await asyncio.sleep(max(first + 5.2 - loop.time(), 0))  # the rule's own 5 s, not a timing assertion
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 1
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await server.stop()
