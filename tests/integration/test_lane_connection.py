"""A busy lane keeps its pooled connection between batches and gives it back once idle (lanes.py `_next_guild`).

At 1,000 events/s a lane's queue empties after every small batch; checking a connection out of the pool for each
one (a pre-ping round trip and the pool's machinery) took 14 % of the lane's CPU samples in a benchmark run. The
lane now keeps it until no event came for `PIPELINE_IDLE_RELEASE_SECONDS`, and idle lanes still hold nothing.
"""

from __future__ import annotations

from synapse_async.runtime import Runtime
from tests.pipeline_support import pipeline_runtime, settle, wait_key
from tests.support import wait_for

USER = 100000000000001000  # a sandbox member


async def _one_message(rt: Runtime, content: str) -> None:
    assert rt.simulator is not None
    message_id = int(await rt.simulator.message(USER, "general", content))
    await wait_key(rt, f"msg:{message_id}")
    await settle(rt)  # committed, and no lane has anything left to do


def _checked_out(rt: Runtime) -> int:
    assert rt.components.db is not None
    return rt.components.db.pool_stats()["checked_out"]


async def test_an_idle_lane_keeps_its_connection_for_the_idle_interval_then_gives_it_back(fresh_database: str) -> None:
    async with pipeline_runtime(fresh_database, 2, PIPELINE_IDLE_RELEASE_SECONDS="60") as rt:
        for i in range(3):
            await _one_message(rt, f"a message long enough to count, number {i}")
            # The connections of the lanes that worked (one each, at most PIPELINE_CONCURRENCY): kept for their next
            # batch instead of a checkout per batch.
            assert _checked_out(rt) >= 1
    async with pipeline_runtime(fresh_database, 2, PIPELINE_IDLE_RELEASE_SECONDS="0.05") as rt:
        await _one_message(rt, "a message long enough to count, once more")
        await wait_for(lambda: _checked_out(rt) == 0)  # idle: back in the pool
