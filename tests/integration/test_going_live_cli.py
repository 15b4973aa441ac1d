"""The real process as a newcomer meets it (SPEC §30): `.env` under the environment, `invite-url`, and a failed
start that is one line with exit code 2 and leaves no embedded PostgreSQL behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil

from synapse_async.config import VARIABLES

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], cwd: Path, timeout: float = 180, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {v.name for v in VARIABLES}}
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-m", "synapse_async", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def test_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# local settings\nHTTP_PORT=1234\nLOG_LEVEL=DEBUG\n", encoding="utf-8")
    done = _run(["check-config"], tmp_path, HTTP_PORT="4321")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "HTTP_PORT=4321" in lines  # the environment wins over the file
    assert "LOG_LEVEL=DEBUG" in lines  # the file fills what the environment lacks


def test_unreadable_env_line_is_exit_2_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("HTTP_PORT=1234\nthis is not a setting\n", encoding="utf-8")
    done = _run(["check-config"], tmp_path)
    assert done.returncode == 2
    assert "line 2: expected KEY=value" in done.stderr


def test_invite_url_from_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DISCORD_CLIENT_ID=555000111222333444\n", encoding="utf-8")
    done = _run(["invite-url"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "https://discord.com/oauth2/authorize?client_id=555000111222333444"
        "&scope=bot+applications.commands&permissions=268553216"
    )
    assert _run(["invite-url"], tmp_path / "..", DISCORD_CLIENT_ID="x").returncode == 2


def test_busy_port_is_one_line_exit_2_and_nothing_left_running(tmp_path: Path) -> None:
    pg_dir = tmp_path / "pg"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _run(["run"], tmp_path, EMBEDDED_PG_DIR=str(pg_dir), HTTP_HOST="127.0.0.1", HTTP_PORT=str(port))
    assert done.returncode == 2, done.stderr[-2000:]
    # One plain line says what to do (the rest of stderr is the JSON log).
    [last] = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert last.startswith(f"synapse-async cannot start: cannot listen on 127.0.0.1:{port} (")
    assert "set HTTP_PORT to a free port" in last
    # The embedded server it had started is stopped: no pid file, no process serving that data directory.
    assert (pg_dir / "PG_VERSION").exists()  # it did start one, so the check below means something
    assert not (pg_dir / "postmaster.pid").exists()
    serving = [p for p in psutil.process_iter(["cmdline"]) if str(pg_dir) in " ".join(p.info["cmdline"] or [])]
    assert serving == []


def test_generate_secret_is_accepted_as_jwt_secret(tmp_path: Path) -> None:
    """The going-live page tells operators to paste this output into JWT_SECRET: it must pass the secret rules."""
    done = _run(["generate-secret"], tmp_path)
    secret = done.stdout.strip()
    assert done.returncode == 0 and len(secret) == 64
    checked = _run(
        ["check-config"], tmp_path, JWT_SECRET=secret, DISCORD_TOKEN="x.y.z", DATABASE_URL="postgresql://h/db"
    )
    assert checked.returncode == 0, checked.stderr


async def test_postgres_left_by_a_killed_run_is_adopted_and_stopped(tmp_path: Path) -> None:
    """SIGKILL leaves the embedded server running; the next run says so in one line, uses it, and stops it."""
    import asyncio
    import json
    import signal

    from tests.support import get_json, wait_for

    pg_dir = tmp_path / "pg"
    env = {k: v for k, v in os.environ.items() if k not in {v.name for v in VARIABLES}}
    env.update(EMBEDDED_PG_DIR=str(pg_dir), HTTP_HOST="127.0.0.1", HTTP_PORT="0", LOG_LEVEL="INFO")

    async def start() -> tuple[asyncio.subprocess.Process, int, list[dict[str, object]]]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "synapse_async", "run", env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
        )
        assert proc.stderr is not None
        seen: list[dict[str, object]] = []
        while True:
            raw = await asyncio.wait_for(proc.stderr.readline(), 120)
            assert raw, f"ended before listening: {seen[-3:]}"
            seen.append(json.loads(raw))
            if seen[-1].get("event") == "http_listening":
                port = int(str(seen[-1]["port"]))
                await wait_for(lambda p=port: _ready(p), timeout=120)
                return proc, port, seen

    async def _ready(port: int) -> bool:
        return (await get_json(port, "/ready"))[0] == 200

    first, _, _ = await start()
    orphan = int((pg_dir / "postmaster.pid").read_text().split()[0])
    first.kill()
    await first.wait()
    assert psutil.pid_exists(orphan)  # what a killed run leaves behind
    second, _, seen = await start()
    try:
        adopted = [e for e in seen if e.get("event") == "embedded_database_adopted"]
        assert len(adopted) == 1 and adopted[0]["postmaster_pid"] == orphan
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 60) == 0
        await wait_for(lambda: not psutil.pid_exists(orphan), timeout=30)
        assert not (pg_dir / "postmaster.pid").exists()
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
        if psutil.pid_exists(orphan):
            psutil.Process(orphan).kill()


async def test_mint_token_works_against_the_running_sandbox(tmp_path: Path) -> None:
    """Sandbox mode keeps its generated secret beside the data directory (0600), so `mint-token` run in the same
    directory mints tokens the running sandbox accepts (SPEC §30); it was a random secret per process."""
    import asyncio
    import json
    import signal
    import stat

    import aiohttp

    from tests.support import get_json, wait_for

    env = {k: v for k, v in os.environ.items() if k not in {v.name for v in VARIABLES}}
    env.update(HTTP_HOST="127.0.0.1", HTTP_PORT="0")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "synapse_async", "run", env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stderr is not None
        while True:
            entry = json.loads(await asyncio.wait_for(proc.stderr.readline(), 120))
            if entry.get("event") == "http_listening":
                port = int(str(entry["port"]))
                break

        async def ready() -> bool:
            return (await get_json(port, "/ready"))[0] == 200

        await wait_for(ready, timeout=120)
        secret_file = tmp_path / ".synapse" / "sandbox-jwt-secret"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        minted = await asyncio.to_thread(_run, ["mint-token", "--guild", "100000000000000001"], tmp_path)
        assert minted.returncode == 0, minted.stderr
        token = minted.stdout.strip()
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/api/admin/guilds/100000000000000001/settings"
            async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 200, await resp.text()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_ctrl_c_to_make_run_and_a_sigterm_a_second_later_drain_cleanly(tmp_path: Path) -> None:
    """As a terminal runs it (SPEC §30): `make run` in its own process group, Ctrl-C reaches make and the app
    together, an orchestrator's SIGTERM follows 1 s later; the app drains once (the repeat is ignored, no forced
    exit) and nothing is left running, the embedded PostgreSQL included."""
    import asyncio
    import json
    import signal

    from tests.support import wait_for

    pg_dir = tmp_path / "pg"
    env = {k: v for k, v in os.environ.items() if k not in {v.name for v in VARIABLES}}
    env.update(
        EMBEDDED_PG_DIR=str(pg_dir), HTTP_HOST="127.0.0.1", HTTP_PORT="0", SANDBOX_ACTIVITY_PER_MINUTE="0",
        LOG_FORMAT="json", SHUTDOWN_DEADLINE_SECONDS="10",
    )  # fmt: skip
    make = await asyncio.create_subprocess_exec(
        "make", "-s", "run", cwd=REPO, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    assert make.stderr is not None
    events: list[str] = []

    async def read_until(event: str) -> dict[str, object]:
        assert make.stderr is not None
        while True:
            raw = await asyncio.wait_for(make.stderr.readline(), 180)
            assert raw, f"ended before {event}: {events[-5:]}"
            if not raw.startswith(b"{"):
                continue  # make's own lines
            entry = json.loads(raw)
            events.append(str(entry.get("event")))
            if entry.get("event") == event:
                return entry

    try:
        port = int(str((await read_until("http_listening"))["port"]))
        await wait_for(lambda: _is_ready(port), timeout=120)
        app = [p for p in psutil.Process(make.pid).children(recursive=True) if "synapse_async" in " ".join(p.cmdline())]
        assert len(app) == 1
        postmaster = int((pg_dir / "postmaster.pid").read_text().split()[0])
        os.killpg(make.pid, signal.SIGINT)
        await asyncio.sleep(1)  # the rule's own interval, not a timing assertion
        if app[0].is_running():
            os.killpg(make.pid, signal.SIGTERM)
        await read_until("shutdown_complete")
        rest = await asyncio.wait_for(make.stderr.read(), 60)
        events += [json.loads(line).get("event") for line in rest.splitlines() if line.startswith(b"{")]
        await asyncio.wait_for(make.wait(), 60)
        await wait_for(lambda: not app[0].is_running() and not psutil.pid_exists(postmaster), timeout=30)
        assert "forced_exit" not in events
        assert events.count("shutdown_started") == 1
    finally:
        if make.returncode is None:
            os.killpg(make.pid, signal.SIGKILL)
            await make.wait()


async def _is_ready(port: int) -> bool:
    from tests.support import get_json

    return (await get_json(port, "/ready"))[0] == 200
