"""Background-task supervision (SPEC §23.1): a task that raises is logged, shown `failed`, and restarted.

Every long-running coroutine of the process (listener, DB probe, later the voice ticker, season rollover, job
runner, pruner) runs under this supervisor instead of a bare `create_task`, so no failure is silent and no task
dies for good. Periodic work is expressed with `every(...)`, which records `last_run_at` for `/health`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from synapse_async.db.errors import ErrorSummary, summary_json
from synapse_async.obs.logging import get_logger
from synapse_async.timeutil import iso

log = get_logger(__name__)

TaskFactory = Callable[[], Awaitable[None]]


class TaskState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    FAILED = "failed"  # raised; waiting for its restart
    STOPPED = "stopped"


@dataclass(slots=True)
class TaskStatus:
    name: str
    state: TaskState = TaskState.PENDING
    last_run_at: datetime | None = None
    last_error: ErrorSummary | None = None  # class and code only: /health is unauthenticated
    failures: int = 0
    started_at: datetime | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "last_run_at": iso(self.last_run_at),
            "last_error": summary_json(self.last_error),
            "failures": self.failures,
        }


@dataclass(slots=True)
class _Entry:
    factory: TaskFactory
    status: TaskStatus
    task: asyncio.Task[None] | None = None


class TaskSupervisor:
    """Starts named coroutines, restarts them after `restart_delay` when they raise, stops them on shutdown."""

    def __init__(self, restart_delay: float = 30.0) -> None:
        self._restart_delay = restart_delay
        self._entries: dict[str, _Entry] = {}
        self._stopping = False

    def add(self, name: str, factory: TaskFactory) -> TaskStatus:
        """Register and start `factory()` under supervision (requires a running loop)."""
        if name in self._entries:
            raise ValueError(f"task {name!r} is already supervised")
        entry = _Entry(factory, TaskStatus(name))
        self._entries[name] = entry
        entry.task = asyncio.create_task(self._supervise(entry), name=f"supervised:{name}")
        return entry.status

    def every(
        self, name: str, interval: float, job: Callable[[], Awaitable[None]], *, first_delay: float = 0.0
    ) -> None:
        """Supervise a periodic job; `last_run_at` is recorded after each successful run."""
        status_ref: list[TaskStatus] = []

        async def loop() -> None:
            await asyncio.sleep(first_delay)
            while True:
                await job()
                status_ref[0].last_run_at = datetime.now(UTC)
                await asyncio.sleep(interval)

        status_ref.append(self.add(name, loop))

    def mark_run(self, name: str) -> None:
        """Let a continuous task report progress (shown as `last_run_at`)."""
        self._entries[name].status.last_run_at = datetime.now(UTC)

    def statuses(self) -> list[TaskStatus]:
        return [e.status for e in self._entries.values()]

    def snapshot(self) -> list[dict[str, Any]]:
        return [s.snapshot() for s in self.statuses()]

    @property
    def any_failed(self) -> bool:
        return any(s.state is TaskState.FAILED for s in self.statuses())

    async def _supervise(self, entry: _Entry) -> None:
        status = entry.status
        while not self._stopping:
            status.state = TaskState.RUNNING
            status.started_at = datetime.now(UTC)
            started = time.monotonic()
            try:
                await entry.factory()
            except asyncio.CancelledError:
                status.state = TaskState.STOPPED
                raise
            except Exception as exc:
                status.failures += 1
                status.last_error = ErrorSummary.of(exc)
                status.state = TaskState.FAILED
                log.exception(
                    "background_task_failed",
                    task=status.name,
                    ran_seconds=round(time.monotonic() - started, 3),
                    restart_in=self._restart_delay,
                )
                await asyncio.sleep(self._restart_delay)
                continue
            # A supervised coroutine that returns normally has finished its work (e.g. a one-shot task).
            status.state = TaskState.STOPPED
            return

    async def stop(self, timeout: float = 5.0, *, exclude: frozenset[str] | set[str] = frozenset()) -> None:
        """Cancel tasks (all but `exclude`) in reverse order of start and wait for them, bounded."""
        if not exclude:
            self._stopping = True
        entries = [e for name, e in reversed(self._entries.items()) if name not in exclude]
        tasks = [e.task for e in entries if e.task is not None and not e.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                log.error("background_task_did_not_stop", task=task.get_name())
        for entry in entries:
            entry.status.state = TaskState.STOPPED
