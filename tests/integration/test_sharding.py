"""Sharding (SPEC §3.4): each guild is handled by exactly one shard, in one process or across processes.

Two guilds live on different shards of a 2-shard deployment. First one runtime runs both shards; then two real
`python -m synapse_async run` processes run one shard each against ONE simulator and one database.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from synapse_async.config import VARIABLES
from synapse_async.domain.events import MessageCreated
from synapse_async.domain.snowflakes import shard_of
from synapse_async.sandbox import DiscordSimulator
from tests.support import RecordingSink, get_json, make_runtime, wait_for

SANDBOX_GUILD = 100000000000000001
ALICE = 100000000000001000


@pytest.fixture
async def sim_two_guilds() -> AsyncIterator[tuple[DiscordSimulator, int]]:
    sim = DiscordSimulator(members=5, seed=7, heartbeat_interval_ms=1000)
    other_shard = 1 - shard_of(SANDBOX_GUILD, 2)
    second = int(await sim.create_guild("Second", shard=(other_shard, 2)))  # before any bot connects
    await sim.start()
    try:
        yield sim, second
    finally:
        await sim.stop()


def _deliveries(sim: DiscordSimulator, message_id: int) -> list[int]:
    """The shard ids of every session a MESSAGE_CREATE for `message_id` was delivered to."""
    return [
        session.shard_id
        for session, record in sim.gateway.dispatched("MESSAGE_CREATE")
        if int(record.d["id"]) == message_id
    ]


def _env_for(sim: DiscordSimulator) -> dict[str, str]:
    return {
        "DISCORD_TOKEN": sim.token,
        "DISCORD_API_URL": sim.api_url,
        "JWT_SECRET": secrets.token_urlsafe(48),
        "SHARD_COUNT": "2",
    }


async def test_two_shards_in_one_process(fresh_database: str, sim_two_guilds: tuple[DiscordSimulator, int]) -> None:
    sim, second = sim_two_guilds
    sink = RecordingSink()
    rt = make_runtime(fresh_database, sink=sink, **_env_for(sim))
    await rt.start()
    try:
        cache = rt.components.cache
        assert cache is not None and rt.http_port is not None
        await wait_for(lambda: {SANDBOX_GUILD, second} <= cache.known_guild_ids())
        _, health = await get_json(rt.http_port, "/health")
        assert [(s["id"], s["state"]) for s in health["gateway"]["shards"]] == [(0, "connected"), (1, "connected")]
        owner = sim.guild(second).owner_id
        first_msg = int(await sim.message(ALICE, "general", "hello shard", guild=SANDBOX_GUILD))
        second_msg = int(await sim.message(owner, "general", "hello other shard", guild=second))
        await wait_for(lambda: {first_msg, second_msg} <= {e.message_id for e in sink.of(MessageCreated)})
        assert _deliveries(sim, first_msg) == [shard_of(SANDBOX_GUILD, 2)]
        assert _deliveries(sim, second_msg) == [shard_of(second, 2)]
        assert sorted(e.message_id for e in sink.of(MessageCreated)) == sorted([first_msg, second_msg])
    finally:
        await rt.shutdown()


async def _start_process(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, list[dict[str, object]], int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "synapse_async", "run", env=env, stderr=asyncio.subprocess.PIPE
    )
    lines: list[dict[str, object]] = []
    assert proc.stderr is not None
    while True:
        raw = await asyncio.wait_for(proc.stderr.readline(), 120)
        if not raw:
            raise AssertionError(f"process exited early: {lines[-5:]}")
        entry = json.loads(raw)
        lines.append(entry)
        if entry.get("event") == "http_listening":
            return proc, lines, int(str(entry["port"]))


async def _drain(proc: asyncio.subprocess.Process, lines: list[dict[str, object]]) -> None:
    assert proc.stderr is not None
    async for raw in proc.stderr:
        lines.append(json.loads(raw))


async def test_two_processes_with_one_shard_each(
    fresh_database: str, sim_two_guilds: tuple[DiscordSimulator, int]
) -> None:
    sim, second = sim_two_guilds
    base = {k: v for k, v in os.environ.items() if k not in {v.name for v in VARIABLES}}
    base.update(_env_for(sim), DATABASE_URL=fresh_database, HTTP_HOST="127.0.0.1", HTTP_PORT="0")
    procs = []
    try:
        for shard in (0, 1):
            procs.append(await _start_process({**base, "SHARD_IDS": str(shard)}))
        drains = [asyncio.create_task(_drain(p, lines)) for p, lines, _ in procs]
        for _, _, port in procs:

            async def ready(port: int = port) -> bool:
                return (await get_json(port, "/ready"))[0] == 200

            await wait_for(ready, timeout=60)
        for shard, (_, _, port) in enumerate(procs):
            _, health = await get_json(port, "/health")
            assert [s["id"] for s in health["gateway"]["shards"]] == [shard]

        owner = sim.guild(second).owner_id
        first_msg = int(await sim.message(ALICE, "general", "to shard of guild one", guild=SANDBOX_GUILD))
        second_msg = int(await sim.message(owner, "general", "to shard of guild two", guild=second))
        assert _deliveries(sim, first_msg) == [shard_of(SANDBOX_GUILD, 2)]
        assert _deliveries(sim, second_msg) == [shard_of(second, 2)]

        # Each process synced exactly the guild of its own shard, and both rows are in the shared database.
        def synced_by(index: int) -> set[int]:
            return {int(str(e["guild_id"])) for e in procs[index][1] if e.get("event") == "guild_synced"}

        await wait_for(lambda: synced_by(0) | synced_by(1) == {SANDBOX_GUILD, second})
        for index in (0, 1):
            assert {shard_of(g, 2) for g in synced_by(index)} == {index}
        from sqlalchemy.ext.asyncio import create_async_engine

        from synapse_async.db.urls import to_sqlalchemy_url

        engine = create_async_engine(to_sqlalchemy_url(fresh_database))
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT guild_id FROM guilds ORDER BY guild_id"))).scalars().all()
        await engine.dispose()
        assert {SANDBOX_GUILD, second} <= set(rows)  # (the module's database also holds the previous test's guild)
        for proc, _, _ in procs:
            proc.terminate()
        codes = [await asyncio.wait_for(p.wait(), 60) for p, _, _ in procs]
        await asyncio.gather(*drains)
        assert codes == [0, 0]
    finally:
        for proc, _, _ in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
