"""The public read gate's admission rules (api/dbgate.py `PublicReadGate`), without I/O or timing.

At most `concurrency` slots in all; one client holds at most `concurrency - 1` of them (at least one), so while a
flooding client has requests waiting, another client is admitted at once.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from synapse_async.api.dbgate import PublicReadGate
from synapse_async.api.errors import ApiError


async def test_one_client_cannot_take_every_slot() -> None:
    gate = PublicReadGate(2, wait_seconds=30)
    release = asyncio.Event()
    admitted: list[str] = []

    async def request(client: str) -> None:
        async with gate.slot(client):
            admitted.append(client)
            await release.wait()

    flood = [asyncio.create_task(request("flooder")) for _ in range(5)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert admitted == ["flooder"] and gate.in_use == 1  # its other four wait behind its own slot
    other = asyncio.create_task(request("reader"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert admitted == ["flooder", "reader"] and gate.in_use == 2 == gate.peak  # admitted ahead of the queue
    release.set()
    await asyncio.gather(*flood, other)
    assert gate.peak == 2 and gate.acquired == 6 and gate.in_use == 0
    assert gate.snapshot()["rejected"] == 0


async def test_a_request_that_cannot_get_a_slot_in_time_gets_503_and_leaves_no_trace() -> None:
    gate = PublicReadGate(1, wait_seconds=0.01)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(gate.slot("a"))
        with pytest.raises(ApiError) as refused:
            async with gate.slot("b"):
                pass
    assert refused.value.status == 503 and refused.value.code == "unavailable"
    assert gate.rejected == 1 and gate.in_use == 0
    async with gate.slot("b"):  # both slots (global, per client) were given back
        assert gate.in_use == 1
