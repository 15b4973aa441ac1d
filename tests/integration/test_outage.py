"""A database outage at any point of a stream loses nothing and pays nothing twice (SPEC §8.2, §25, §27 #10).

The runtime runs against its OWN embedded PostgreSQL, which these tests stop (pg_ctl `fast` and `immediate`) and
start again while members keep posting through the simulator and the real hikari client. To stop the server at a
precise point, a test trigger on `reward_journal` waits on an advisory lock the test holds: either at the insert
(mid-batch, inside the transaction) or as a deferred constraint trigger, which runs during COMMIT itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from synapse_async.db.embedded import EmbeddedPostgres
from synapse_async.db.urls import to_asyncpg_dsn
from synapse_async.domain.events import MemberRef, VoiceTick
from synapse_async.runtime import Runtime
from synapse_async.sandbox import DiscordSimulator
from synapse_async.services.audit import Actor
from synapse_async.services.settings import update_settings
from tests.pipeline_support import GUILD, query
from tests.support import get_json, make_runtime, wait_for

MEMBERS = [100000000000001000 + i for i in range(10)]
AT_STATEMENT, AT_COMMIT = 4242, 4343  # advisory lock keys the test triggers wait on
HOLD_TRIGGERS = f"""
CREATE FUNCTION test_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(TG_ARGV[0]::bigint);
    RETURN NULL;
END $$;
CREATE TRIGGER test_hold_statement AFTER INSERT ON reward_journal
    FOR EACH ROW EXECUTE FUNCTION test_hold({AT_STATEMENT});
CREATE CONSTRAINT TRIGGER test_hold_commit AFTER INSERT ON reward_journal DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION test_hold({AT_COMMIT});
"""


class OwnServer:
    """The test's private embedded PostgreSQL, which it may stop and start again on the same data directory."""

    def __init__(self, data_dir: Path) -> None:
        self._dir = data_dir
        self._server = EmbeddedPostgres(data_dir)

    async def start(self) -> str:
        return await self._server.start()

    async def stop(self, mode: str = "fast") -> None:
        await self._server.stop(mode)

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


@dataclass
class World:
    """One runtime on its own server for the exactly-once tests, and every message sent to it so far."""

    rt: Runtime
    server: OwnServer
    sim: DiscordSimulator
    sent: list[int] = field(default_factory=list)
    failed: int = 0  # events a test dropped on purpose (provably bad data)

    async def post(self, count: int, *, spacing: float = 0.003) -> None:
        for _ in range(count):
            n = len(self.sent)
            self.sent.append(int(await self.sim.message(MEMBERS[n % len(MEMBERS)], "general", f"message {n:05d}")))
            await asyncio.sleep(spacing)

    async def restart(self) -> None:
        assert await self.server.restart() == self.rt.database_url

    async def assert_exactly_once(self) -> None:
        """Every message sent is journaled once; balances equal journal sums; nothing dropped or failed."""
        expected = sorted(f"msg:{m}" for m in self.sent)

        async def all_committed() -> bool:
            rows = await query(
                self.rt, "SELECT count(*) AS n FROM reward_journal WHERE guild_id = :g AND event_type = 'message'"
            )
            return int(rows[0]["n"]) >= len(expected)

        await wait_for(all_committed, timeout=90)
        pipeline = self.rt.pipeline
        assert pipeline is not None
        await wait_for(lambda: pipeline.snapshot()["buffered"] == 0, timeout=30)
        keys = await query(
            self.rt, "SELECT idempotency_key FROM reward_journal WHERE guild_id = :g AND event_type = 'message'"
        )
        assert sorted(r["idempotency_key"] for r in keys) == expected
        totals = await query(
            self.rt, "SELECT sum(messages_sent) AS sent, sum(xp) AS xp FROM members WHERE guild_id = :g"
        )
        journal = await query(self.rt, "SELECT sum(xp_delta) AS xp FROM reward_journal WHERE guild_id = :g")
        lake = await query(
            self.rt, "SELECT count(*) AS n FROM event_lake WHERE guild_id = :g AND event_type = 'message_create'"
        )
        assert int(totals[0]["sent"]) == len(expected) == int(lake[0]["n"])
        assert int(totals[0]["xp"]) == int(journal[0]["xp"])
        assert pipeline.stats.dropped == 0
        assert pipeline.stats.failed == self.failed


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with runtime_on_own_server(
        tmp_path_factory.mktemp("outage"),
        LISTEN_BACKOFF_MAX_SECONDS="0.2",
        DB_PROBE_SECONDS="0.2",
        SANDBOX_MEMBERS="10",
        PIPELINE_RETRY_MAX_SECONDS="0.5",
    ) as (rt, server):
        sim, cache, db = rt.simulator, rt.components.cache, rt.components.db
        assert sim is not None and cache is not None and db is not None
        await update_settings(db.sessions, GUILD, {"cooldown.seconds": 0}, Actor("svc:test", "service", "api"))
        await wait_for(lambda: cache.settings(GUILD).int("cooldown.seconds") == 0)
        conn = await asyncpg.connect(to_asyncpg_dsn(rt.database_url or ""))
        try:
            await conn.execute(HOLD_TRIGGERS)
        finally:
            await conn.close()
        yield World(rt, server, sim)


class Hold:
    """Holds an advisory lock the test triggers wait on, so a lane's transaction stops exactly there."""

    def __init__(self, conn: asyncpg.Connection, key: int) -> None:
        self.conn, self.key = conn, key

    @classmethod
    @contextlib.asynccontextmanager
    async def at(cls, world: World, key: int) -> AsyncIterator[Hold]:
        conn = await asyncpg.connect(to_asyncpg_dsn(world.rt.database_url or ""))
        await conn.execute("SELECT pg_advisory_lock($1)", key)
        try:
            yield cls(conn, key)
        finally:
            with contextlib.suppress(Exception):  # the server may have been stopped under it
                await conn.close()

    async def waiting_backend(self) -> int:
        """Wait until a lane's transaction waits on the lock; return that backend's pid."""
        found: list[int] = []

        async def blocked() -> bool:
            rows = await self.conn.fetch(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1", self.key
            )
            found[:] = [int(r["pid"]) for r in rows]
            return bool(found)

        await wait_for(blocked, timeout=30)
        return found[0]

    async def release(self) -> None:
        await self.conn.execute("SELECT pg_advisory_unlock($1)", self.key)


async def test_a_fast_stop_at_random_points_of_a_stream_five_times_loses_nothing(world: World) -> None:
    pipeline = world.rt.pipeline
    assert pipeline is not None
    rng = random.Random(7)
    for _ in range(5):
        stream = asyncio.create_task(world.post(40))
        await asyncio.sleep(rng.uniform(0.0, 0.15))  # wherever the lanes happen to be: idle, mid-batch, COMMIT
        await world.server.stop("fast")
        await asyncio.sleep(rng.uniform(0.2, 0.6))
        await world.restart()
        await stream
    await world.assert_exactly_once()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
@pytest.mark.parametrize("point", ["before_first_statement", "mid_batch", "during_commit"])
async def test_a_stop_at_each_point_of_a_batch_commits_every_event_exactly_once(
    world: World, point: str, mode: str
) -> None:
    pipeline = world.rt.pipeline
    assert pipeline is not None
    retries = pipeline.stats.retries
    if point == "before_first_statement":
        await world.rt.pipeline.wait_idle()  # type: ignore[union-attr]
        await world.server.stop(mode)
        await world.post(20)  # every batch now fails at its first statement (no connection)
        await wait_for(lambda: pipeline.stats.retries > retries, timeout=30)
    else:
        async with Hold.at(world, AT_STATEMENT if point == "mid_batch" else AT_COMMIT) as hold:
            await world.post(10)
            await hold.waiting_backend()  # a transaction is open and waits right there
            await world.server.stop(mode)
        await world.post(10)
    await world.restart()
    await world.post(10)
    await world.assert_exactly_once()
    assert pipeline.stats.retries > retries


async def test_a_terminated_lane_connection_mid_batch_loses_nothing_and_pays_nothing_twice(world: World) -> None:
    pipeline = world.rt.pipeline
    assert pipeline is not None
    retries = pipeline.stats.retries
    async with Hold.at(world, AT_STATEMENT) as hold:
        await world.post(15)
        pid = await hold.waiting_backend()
        assert await hold.conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        await world.post(5)
        await hold.release()
    await world.assert_exactly_once()
    assert pipeline.stats.retries > retries


async def test_a_genuinely_bad_event_is_dropped_alone_and_the_rest_of_its_batch_commits(world: World) -> None:
    rt, sim, pipeline = world.rt, world.sim, world.rt.pipeline
    assert pipeline is not None
    failed = pipeline.stats.failed
    bad_user = MEMBERS[9] + 1000
    # A voice tick with negative minutes violates the members CHECK (voice_minutes >= 0): a fault of this event.
    bad = VoiceTick(
        guild_id=GUILD,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        member=MemberRef(user_id=bad_user, display_name="x", avatar_hash=None),
        channel_id=sim.channel_id("Lounge"),
        minutes=-5,
    )
    with capture_logs() as logs:
        async with Hold.at(world, AT_STATEMENT) as hold:
            await world.post(1)
            await hold.waiting_backend()  # the lane is busy: what follows queues up into ONE next batch
            await world.post(5)
            await wait_for(lambda: pipeline.snapshot()["buffered"] == 6)
            pipeline.submit(bad)
            await world.post(5)
            await wait_for(lambda: pipeline.snapshot()["buffered"] == 12)
            await hold.release()
        await world.rt.pipeline.wait_idle()  # type: ignore[union-attr]
    assert pipeline.stats.failed == failed + 1
    world.failed += 1
    await world.assert_exactly_once()
    assert await query(rt, "SELECT 1 FROM members WHERE guild_id = :g AND user_id = :u", u=bad_user) == []
    failures = [e for e in logs if e["event"] == "event_failed"]
    assert len(failures) == 1 and failures[0]["fault"] == "data"
    assert failures[0]["keys"] == bad.reward_key and "VoiceTick" in failures[0]["normalized"]
    splits = [e for e in logs if e["event"] == "pipeline_batch_split"]
    assert [(e["batch"], e["fault"]) for e in splits] == [(11, "data")]
    status, health = await get_json(rt.http_port, "/health")
    assert status == 200 and health["pipeline"]["failed"] == failed + 1


async def test_reactions_and_deletes_on_forgotten_messages_wait_out_an_outage_in_order(world: World) -> None:
    rt, sim, pipeline = world.rt, world.sim, world.rt.pipeline
    assert pipeline is not None and rt.authors is not None
    author, reactor = MEMBERS[1], MEMBERS[2]
    targets = [int(await sim.message(author, "general", f"worth a reaction {i}")) for i in range(3)]
    world.sent.extend(targets)
    await world.assert_exactly_once()
    rt.authors.forget_all()  # only the lake knows the authors now, and the lake is about to go away
    await world.server.stop("fast")
    for message_id in targets:
        await sim.react(reactor, message_id, "👍")
    await sim.delete_message(targets[0])
    await world.post(3)  # later events must not overtake the reactions
    await asyncio.sleep(0.3)
    await world.restart()
    await world.assert_exactly_once()
    for message_id in targets:

        async def paid(message_id: int = message_id) -> bool:
            rows = await query(
                rt,
                "SELECT user_id FROM reward_journal WHERE guild_id = :g AND idempotency_key = :k",
                k=f"rr:{message_id}:{reactor}",
            )
            return rows == [{"user_id": author}]

        await wait_for(paid, timeout=30)
    deleted = await query(
        rt, "SELECT user_id FROM event_lake WHERE guild_id = :g AND source_key = :k", k=f"mdel:{targets[0]}"
    )
    assert deleted == [{"user_id": author}]
    # Order (§8.1): the reactions were committed before the messages sent after them.
    order = await query(
        rt,
        "SELECT idempotency_key FROM reward_journal WHERE guild_id = :g AND (idempotency_key LIKE 'rr:%' "
        "OR idempotency_key = ANY(:later)) ORDER BY id DESC LIMIT 6",
        later=[f"msg:{m}" for m in world.sent[-3:]],
    )
    assert [r["idempotency_key"][:3] for r in reversed(order)] == ["rr:"] * 3 + ["msg"] * 3


async def test_the_outage_buffer_drops_the_oldest_waiting_events_beyond_its_bound(tmp_path: Path) -> None:
    async with runtime_on_own_server(
        tmp_path, PIPELINE_BUFFER_EVENTS="5", SANDBOX_MEMBERS="3", PIPELINE_RETRY_MAX_SECONDS="0.5"
    ) as (rt, server):
        sim, pipeline = rt.simulator, rt.pipeline
        assert sim is not None and pipeline is not None
        await server.stop()
        first = int(await sim.message(MEMBERS[0], "general", "taken into the lane, retried"))
        await wait_for(lambda: pipeline.stats.retries > 0, timeout=30)
        waiting = [
            int(await sim.message(MEMBERS[i % 3], "general", f"while the database is down {i}")) for i in range(12)
        ]
        # 5 buffered at most, the one in flight included: the 8 oldest waiting events are dropped, never `first`.
        await wait_for(lambda: pipeline.stats.dropped == 8, timeout=30)
        assert pipeline.snapshot()["buffered"] == 5
        await server.restart()
        await wait_for(lambda: pipeline.snapshot()["buffered"] == 0, timeout=60)
        keys = await query(
            rt, "SELECT idempotency_key FROM reward_journal WHERE guild_id = :g AND event_type = 'message'"
        )
        assert sorted(r["idempotency_key"] for r in keys) == sorted(f"msg:{m}" for m in [first, *waiting[-4:]])
        assert pipeline.snapshot()["dropped"] == 8


async def test_events_older_than_the_buffer_age_are_dropped_during_an_outage(tmp_path: Path) -> None:
    async with runtime_on_own_server(
        tmp_path, PIPELINE_BUFFER_MAX_AGE_SECONDS="1", SANDBOX_MEMBERS="3", PIPELINE_RETRY_MAX_SECONDS="0.5"
    ) as (rt, server):
        sim, pipeline = rt.simulator, rt.pipeline
        assert sim is not None and pipeline is not None
        await server.stop()
        first = int(await sim.message(MEMBERS[0], "general", "taken into the lane, retried"))
        await wait_for(lambda: pipeline.stats.retries > 0, timeout=30)
        for i in range(4):
            await sim.message(MEMBERS[1], "general", f"waiting behind it {i}")
        # While the lane keeps retrying, the waiting events pass the 1 s age bound and are dropped (oldest first);
        # the event in flight is never dropped by a bound.
        await wait_for(lambda: pipeline.stats.dropped == 4, timeout=30)
        await server.restart()
        await wait_for(lambda: pipeline.snapshot()["buffered"] == 0, timeout=60)
        keys = await query(
            rt, "SELECT idempotency_key FROM reward_journal WHERE guild_id = :g AND event_type = 'message'"
        )
        assert [r["idempotency_key"] for r in keys] == [f"msg:{first}"]


async def test_a_drain_cut_short_logs_the_batch_in_flight_as_well_as_the_waiting_events(tmp_path: Path) -> None:
    async with runtime_on_own_server(tmp_path, SANDBOX_MEMBERS="3", PIPELINE_RETRY_MAX_SECONDS="0.5") as (rt, server):
        sim, pipeline = rt.simulator, rt.pipeline
        assert sim is not None and pipeline is not None
        await server.stop()
        in_flight = int(await sim.message(MEMBERS[0], "general", "taken into the lane, retried"))
        await wait_for(lambda: pipeline.stats.retries > 0, timeout=30)
        waiting = int(await sim.message(MEMBERS[1], "general", "waiting behind it"))
        await wait_for(lambda: pipeline.snapshot()["buffered"] == 2)
        with capture_logs() as logs:
            assert await pipeline.drain(0.2) == 2
        incomplete = [e for e in logs if e["event"] == "pipeline_drain_incomplete"]
        assert len(incomplete) == 1
        assert incomplete[0]["keys"] == [f"msg:{in_flight}", f"msg:{waiting}"]
        await server.restart()
        await wait_for(lambda: pipeline.snapshot()["buffered"] == 0, timeout=60)
