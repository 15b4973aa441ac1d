"""The guild-structure write queue: bounded workers, gateway order per guild, newer snapshots replace older ones."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from synapse_async.services.structure_writer import StructureWriter


class Recorder:
    """Writes that record when they run, how many run at once, and can be held until released."""

    def __init__(self) -> None:
        self.order: list[tuple[int, str]] = []
        self.running = 0
        self.most_at_once = 0
        self.gate = asyncio.Event()
        self.gate.set()

    def write(self, guild: int, label: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            try:
                await asyncio.sleep(0)  # let the other workers start theirs
                await self.gate.wait()
                self.order.append((guild, label))
            finally:
                self.running -= 1

        return run


async def test_never_more_writes_at_once_than_workers_and_all_of_them_written() -> None:
    rec, writer = Recorder(), StructureWriter(3)
    writer.start()
    for g in range(200):
        writer.submit(g, "sync", rec.write(g, "sync"))
    assert writer.backlog == 200
    assert await writer.drain(5)
    assert rec.most_at_once == 3
    assert sorted(g for g, _ in rec.order) == list(range(200))
    assert writer.snapshot() == {
        "backlog": 0,
        "written": 200,
        "superseded": 0,
        "failed": 0,
        "batches": 0,
        "batch_failures": 0,
    }
    await writer.close(0)


async def test_a_guild_keeps_its_order_and_runs_one_write_at_a_time() -> None:
    rec, writer = Recorder(), StructureWriter(4)
    writer.start()
    for label in ("sync", "channel_a", "channel_b", "role"):
        writer.submit(7, label, rec.write(7, label))
    assert await writer.drain(5)
    assert rec.order == [(7, "sync"), (7, "channel_a"), (7, "channel_b"), (7, "role")]
    assert rec.most_at_once == 1
    await writer.close(0)


async def test_guilds_take_turns() -> None:
    rec, writer = Recorder(), StructureWriter(1)
    for i in range(3):
        writer.submit(1, f"a{i}", rec.write(1, f"a{i}"))
    writer.submit(2, "b0", rec.write(2, "b0"))
    writer.start()
    assert await writer.drain(5)
    # Guild 2 does not wait behind all of guild 1's writes.
    assert rec.order.index((2, "b0")) == 1
    await writer.close(0)


async def test_a_full_snapshot_replaces_the_writes_still_waiting_but_not_the_running_one() -> None:
    rec, writer = Recorder(), StructureWriter(1)
    rec.gate.clear()
    writer.start()
    writer.submit(5, "old_sync", rec.write(5, "old_sync"))
    await asyncio.sleep(0.01)  # old_sync is now running, held by the gate
    writer.submit(5, "channel", rec.write(5, "channel"))
    writer.submit(5, "leave", rec.write(5, "leave"), replaces_pending=True)
    rec.gate.set()
    assert await writer.drain(5)
    assert rec.order == [(5, "old_sync"), (5, "leave")]
    assert writer.superseded == 1
    await writer.close(0)


async def test_a_failing_write_is_reported_and_the_worker_goes_on() -> None:
    rec, writer = Recorder(), StructureWriter(1)
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:

        async def broken() -> None:
            raise ValueError("a bug in one write")

        writer.start()
        writer.submit(1, "broken", broken)
        writer.submit(1, "after", rec.write(1, "after"))
        writer.submit(2, "other", rec.write(2, "other"))
        assert await writer.drain(5)
    finally:
        loop.set_exception_handler(previous)
    assert [type(c["exception"]) for c in reported] == [ValueError]
    assert reported[0]["guild_id"] == 1 and "broken" in reported[0]["message"]
    assert sorted(rec.order) == [(1, "after"), (2, "other")]
    assert writer.failed == 1 and writer.written == 2
    await writer.close(0)


async def test_close_gives_queued_writes_time_then_cancels_what_still_runs() -> None:
    rec, writer = Recorder(), StructureWriter(1)
    writer.start()
    writer.submit(1, "quick", rec.write(1, "quick"))
    await writer.close(5)
    assert rec.order == [(1, "quick")]

    stuck, cancelled = asyncio.Event(), asyncio.Event()

    async def hangs() -> None:
        try:
            await stuck.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    writer.start()
    writer.submit(2, "hangs", hangs)
    assert not await writer.drain(0.05)
    await writer.close(0.05)
    assert cancelled.is_set()


def test_at_least_one_worker() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        StructureWriter(0)


class Batches:
    """A `batch` call that records the snapshots of each call; can fail for a snapshot named `bad`."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, snaps: list[str]) -> None:
        await self.gate.wait()
        if "bad" in snaps:
            raise ValueError("one guild's snapshot breaks the batch")
        self.calls.append(list(snaps))


async def test_snapshots_that_arrive_together_are_written_in_one_batch() -> None:
    rec, batches = Recorder(), Batches()
    writer: StructureWriter[str] = StructureWriter(2, batch=batches, batch_max=50)
    for g in range(120):
        writer.submit(g, "sync", rec.write(g, "alone"), snapshot=f"s{g}")
    writer.start()
    assert await writer.drain(5)
    assert sorted(s for call in batches.calls for s in call) == sorted(f"s{g}" for g in range(120))
    assert [len(c) for c in batches.calls] == [50, 50, 20]  # at most batch_max each
    assert rec.order == []  # no snapshot was written alone
    assert writer.snapshot()["written"] == 120 and writer.batches == 3 and writer.failed == 0
    await writer.close(0)


async def test_a_guild_keeps_its_order_around_a_batch() -> None:
    """A channel write queued after the guild's snapshot runs after the batch holding that snapshot; a write that
    is not a snapshot is never put into a batch."""
    rec, batches = Recorder(), Batches()
    batches.gate.clear()
    writer: StructureWriter[str] = StructureWriter(1, batch=batches)
    writer.start()
    writer.submit(1, "sync", rec.write(1, "alone"), snapshot="s1")
    await asyncio.sleep(0.01)  # the batch with s1 is running, held by the gate
    writer.submit(1, "channel", rec.write(1, "channel"))
    writer.submit(2, "sync", rec.write(2, "alone"), snapshot="s2")
    writer.submit(3, "leave", rec.write(3, "leave"))
    batches.gate.set()
    assert await writer.drain(5)
    assert batches.calls[0] == ["s1"]
    assert (1, "channel") in rec.order and (3, "leave") in rec.order and (1, "alone") not in rec.order
    assert ["s2"] in batches.calls
    await writer.close(0)


async def test_a_failing_batch_is_written_guild_by_guild_and_only_the_bad_guild_fails() -> None:
    rec, batches = Recorder(), Batches()
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    async def broken() -> None:
        raise ValueError("this guild's own write fails too")

    writer: StructureWriter[str] = StructureWriter(1, batch=batches)
    try:
        writer.submit(1, "sync", rec.write(1, "alone"), snapshot="s1")
        writer.submit(2, "sync", broken, snapshot="bad")
        writer.submit(3, "sync", rec.write(3, "alone"), snapshot="s3")
        writer.start()
        assert await writer.drain(5)
    finally:
        loop.set_exception_handler(previous)
    assert batches.calls == []
    assert sorted(rec.order) == [(1, "alone"), (3, "alone")]  # retried alone, not lost
    assert [c["guild_id"] for c in reported] == [2]
    assert writer.batch_failures == 1 and writer.failed == 1 and writer.written == 2
    await writer.close(0)


async def test_without_a_batch_call_snapshots_are_written_alone() -> None:
    rec = Recorder()
    writer: StructureWriter[str] = StructureWriter(1)
    writer.submit(1, "sync", rec.write(1, "alone"), snapshot="s1")
    writer.start()
    assert await writer.drain(5)
    assert rec.order == [(1, "alone")]
    await writer.close(0)
