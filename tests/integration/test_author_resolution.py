"""Authors of reactions and deletes the in-memory index does not know are resolved in the lane (SPEC §7.4, §8.1).

The normalizer only looks in memory; the lake and the REST fetch run in the guild's lane, in order, inside the
lane's retry of transient faults (bot/authors.py). Simulator → real hikari → pipeline → real PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from synapse_async.runtime import Runtime
from synapse_async.sandbox import DiscordSimulator
from tests.pipeline_support import ALICE, BOB, CAROL, GUILD, pipeline_runtime, query, wait_key
from tests.support import wait_for


@pytest.fixture(scope="module")
async def sandbox(fresh_database: str) -> AsyncIterator[tuple[Runtime, DiscordSimulator]]:
    async with pipeline_runtime(fresh_database, 5) as rt:
        assert rt.simulator is not None
        yield rt, rt.simulator


async def _lake(rt: Runtime, key: str) -> dict[str, object]:
    found: list[dict[str, object]] = []

    async def present() -> bool:
        found[:] = await query(rt, "SELECT * FROM event_lake WHERE guild_id = :g AND source_key LIKE :k", k=key)
        return bool(found)

    await wait_for(present)
    return found[0]


async def _forgotten(rt: Runtime, sim: DiscordSimulator, author: int, content: str) -> tuple[int, int]:
    """A committed message whose author the in-memory index no longer knows (as after a restart); returns its id
    and the REST call count before what the test does next."""
    assert rt.authors is not None
    message_id = int(await sim.message(author, "general", content))
    await wait_key(rt, f"msg:{message_id}")
    rt.authors.forget_all()
    return message_id, len(sim.rest_calls)


def _fetches(sim: DiscordSimulator, since: int, message_id: int) -> int:
    return sum(1 for c in sim.rest_calls[since:] if c.method == "GET" and c.path.endswith(f"/messages/{message_id}"))


async def test_a_reaction_on_a_forgotten_message_is_paid_to_its_author_via_the_lake(
    sandbox: tuple[Runtime, DiscordSimulator],
) -> None:
    rt, sim = sandbox
    message_id, before = await _forgotten(rt, sim, BOB, "an older message with a few words")
    await sim.react(ALICE, message_id, "👍")
    received = await wait_key(rt, f"rr:{message_id}:{ALICE}")
    assert received["user_id"] == BOB and received["zero_reason"] is None and received["xp_delta"] > 0
    assert _fetches(sim, before, message_id) == 0  # the lake answered: no REST call
    row = await _lake(rt, f"radd:{message_id}:{ALICE}:%")
    assert row["target_id"] == BOB


async def test_a_reaction_the_lake_cannot_answer_falls_back_to_one_rest_fetch(
    sandbox: tuple[Runtime, DiscordSimulator],
) -> None:
    rt, sim = sandbox
    message_id, before = await _forgotten(rt, sim, CAROL, "a message whose lake row is gone")
    assert rt.components.db is not None
    async with rt.components.db.engine.begin() as conn:
        for table in ("event_lake", "event_lake_keys"):  # as retention leaves it: row and key gone
            await conn.execute(
                text(f"DELETE FROM {table} WHERE guild_id = :g AND source_key = :k"),
                {"g": GUILD, "k": f"msg:{message_id}"},
            )
    rt.authors.forget_all()
    before = len(sim.rest_calls)
    await sim.react(ALICE, message_id, "🔥")
    received = await wait_key(rt, f"rr:{message_id}:{ALICE}")
    assert received["user_id"] == CAROL
    assert _fetches(sim, before, message_id) == 1
    await sim.react(BOB, message_id, "🔥")  # the fetched author is remembered: no second fetch
    assert (await wait_key(rt, f"rr:{message_id}:{BOB}"))["user_id"] == CAROL
    assert _fetches(sim, before, message_id) == 1


async def test_a_delete_of_a_forgotten_message_records_its_author_from_the_lake_without_rest(
    sandbox: tuple[Runtime, DiscordSimulator],
) -> None:
    rt, sim = sandbox
    message_id, before = await _forgotten(rt, sim, BOB, "soon to be deleted")
    await sim.delete_message(message_id)
    row = await _lake(rt, f"mdel:{message_id}")
    assert row["user_id"] == BOB
    assert _fetches(sim, before, message_id) == 0
