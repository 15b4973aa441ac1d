"""The background-task supervisor (SPEC §23.1): a task that raises is logged, shown failed, and restarted."""

from __future__ import annotations

import asyncio

from synapse_async.tasks.supervisor import TaskState, TaskSupervisor
from tests.support import wait_for


async def test_crashing_task_is_shown_failed_then_restarted() -> None:
    runs: list[int] = []
    release = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs) + 1)
        if len(runs) == 1:
            raise RuntimeError("boom connecting to db.internal:5432 as user alice")
        await release.wait()

    sup = TaskSupervisor(restart_delay=0.3)
    status = sup.add("flaky", flaky)
    await wait_for(lambda: status.state is TaskState.FAILED)
    assert status.failures == 1
    assert sup.any_failed
    # /health shows the class and a short code; the message (hosts, users) goes to the log only.
    error = {"class": "RuntimeError", "code": "internal"}
    assert sup.snapshot() == [
        {"name": "flaky", "state": "failed", "last_run_at": None, "last_error": error, "failures": 1}
    ]
    await wait_for(lambda: status.state is TaskState.RUNNING and len(runs) == 2)
    assert not sup.any_failed
    await sup.stop()
    assert status.state is TaskState.STOPPED


async def test_periodic_job_records_last_run_and_stop_cancels_it() -> None:
    calls = 0

    async def job() -> None:
        nonlocal calls
        calls += 1

    sup = TaskSupervisor(restart_delay=0.1)
    sup.every("tick", 0.05, job)
    status = sup.statuses()[0]
    await wait_for(lambda: calls >= 3)
    assert status.last_run_at is not None
    await sup.stop()
    stopped_at = calls
    await asyncio.sleep(0.15)
    assert calls == stopped_at


async def test_stop_can_spare_named_tasks() -> None:
    forever = asyncio.Event()

    async def wait_forever() -> None:
        await forever.wait()

    sup = TaskSupervisor()
    first = sup.add("first", wait_forever)
    second = sup.add("second", wait_forever)
    await wait_for(lambda: first.state is TaskState.RUNNING and second.state is TaskState.RUNNING)
    await sup.stop(exclude={"second"})
    assert first.state is TaskState.STOPPED
    assert second.state is TaskState.RUNNING
    await sup.stop()
    assert second.state is TaskState.STOPPED
