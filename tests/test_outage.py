"""A database outage in the middle of a stream of events loses nothing and pays nothing twice (SPEC §8.2, §27 #10).

The runtime runs against its OWN embedded PostgreSQL, which the test stops and restarts while members keep
posting through the simulator and the real hikari client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from synapse_async.db.embedded import EmbeddedPostgres
from synapse_async.runtime import Runtime
from synapse_async.services.audit import Actor
from synapse_async.services.settings import update_settings
from tests.pipeline_support import GUILD, query
from tests.support import make_runtime, wait_for

MEMBERS = [100000000000001000 + i for i in range(10)]


class OwnServer:
    """This test's private embedded PostgreSQL, which it may stop and start again on the same data directory."""

    def __init__(self, data_dir: Path) -> None:
        self._dir = data_dir
        self._server = EmbeddedPostgres(data_dir)

    async def start(self) -> str:
        return await self._server.start()

    async def stop(self) -> None:
        await self._server.stop()

    async def restart(self) -> str:
        self._server = EmbeddedPostgres(self._dir)
        return await self._server.start()


@contextlib.asynccontextmanager
async def runtime_on_own_server(tmp_path: Path, **env: str) -> AsyncIterator[tuple[Runtime, OwnServer]]:
    """A started sandbox runtime whose database is an `OwnServer`; both are stopped afterwards."""
    server = OwnServer(tmp_path / "pg")
    url = await server.start()
    rt = make_runtime(url, DB_POOL_TIMEOUT_SECONDS="0.5", **env)
    try:
        await rt.start()
        cache = rt.components.cache
        assert rt.simulator is not None and cache is not None and rt.pipeline is not None
        await wait_for(lambda: GUILD in cache.known_guild_ids())
        yield rt, server
    finally:
        await rt.shutdown()
        await server.stop()


async def test_every_accepted_event_is_committed_exactly_once_across_an_outage(tmp_path: Path) -> None:
    async with runtime_on_own_server(
        tmp_path, LISTEN_BACKOFF_MAX_SECONDS="0.2", DB_PROBE_SECONDS="0.2", SANDBOX_MEMBERS="10"
    ) as (rt, server):
        sim, cache, db, pipeline = rt.simulator, rt.components.cache, rt.components.db, rt.pipeline
        assert sim is not None and cache is not None and db is not None and pipeline is not None
        await update_settings(db.sessions, GUILD, {"cooldown.seconds": 0}, Actor("svc:test", "service", "api"))
        await wait_for(lambda: cache.settings(GUILD).int("cooldown.seconds") == 0)

        sent: list[int] = []

        async def stream(count: int) -> None:
            for i in range(count):
                sent.append(int(await sim.message(MEMBERS[i % len(MEMBERS)], "general", f"message number {i:04d}")))
                await asyncio.sleep(0.005)

        await stream(40)
        await server.stop()  # outage: the lane retries, events queue in memory
        await stream(60)
        await wait_for(lambda: pipeline.stats.retries > 0, timeout=30)
        assert pipeline.snapshot()["buffered"] > 0
        assert await server.restart() == rt.database_url
        await stream(40)

        async def all_committed() -> bool:
            rows = await query(
                rt, "SELECT count(*) AS n FROM reward_journal WHERE guild_id = :g AND event_type = 'message'"
            )
            return int(rows[0]["n"]) == len(sent)

        await wait_for(all_committed, timeout=90)
        await wait_for(lambda: pipeline.snapshot()["buffered"] == 0, timeout=30)
        keys = await query(
            rt, "SELECT idempotency_key FROM reward_journal WHERE guild_id = :g AND event_type = 'message'"
        )
        assert sorted(r["idempotency_key"] for r in keys) == sorted(f"msg:{m}" for m in sent)
        totals = await query(
            rt,
            "SELECT sum(messages_sent) AS sent, sum(xp) AS xp FROM members WHERE guild_id = :g",
        )
        journal_xp = await query(rt, "SELECT sum(xp_delta) AS xp FROM reward_journal WHERE guild_id = :g")
        assert int(totals[0]["sent"]) == len(sent)
        assert int(totals[0]["xp"]) == int(journal_xp[0]["xp"])
        assert pipeline.stats.dropped == 0 and pipeline.stats.failed == 0


async def test_the_outage_buffer_is_bounded_and_drops_the_oldest(tmp_path: Path) -> None:
    async with runtime_on_own_server(tmp_path, PIPELINE_BUFFER_EVENTS="5", SANDBOX_MEMBERS="3") as (rt, server):
        sim, pipeline = rt.simulator, rt.pipeline
        assert sim is not None and pipeline is not None
        await server.stop()
        for i in range(12):
            await sim.message(MEMBERS[i % 3], "general", f"while the database is down {i}")
        await wait_for(lambda: pipeline.stats.dropped >= 6, timeout=30)
        snapshot = pipeline.snapshot()
        assert snapshot["buffered"] <= 5 + 256  # the bound plus at most one batch in flight
        assert snapshot["dropped"] == pipeline.stats.dropped


async def test_events_older_than_the_buffer_age_are_dropped_during_an_outage(tmp_path: Path) -> None:
    async with runtime_on_own_server(tmp_path, PIPELINE_BUFFER_MAX_AGE_SECONDS="1", SANDBOX_MEMBERS="3") as (
        rt,
        server,
    ):
        sim, pipeline = rt.simulator, rt.pipeline
        assert sim is not None and pipeline is not None
        await server.stop()
        first = await sim.message(MEMBERS[0], "general", "taken into the lane, retried")
        await wait_for(lambda: pipeline.stats.retries > 0, timeout=30)
        for i in range(4):
            await sim.message(MEMBERS[1], "general", f"waiting behind it {i}")
        # While the lane keeps retrying, the waiting events pass the 1 s age bound and are dropped (oldest first).
        await wait_for(lambda: pipeline.stats.dropped == 4, timeout=30)
        assert int(first) > 0
