"""Fixtures for the simulator tests: a started `DiscordSimulator` and real `hikari.GatewayBot`s connected to it.

Nothing here mocks hikari: bots are constructed and started exactly as the app does, with the REST URL pointing at
the simulator, and every assertion is made on events hikari raised or on what the simulator received.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TypeVar

import hikari
import pytest

from synapse_async.sandbox import DiscordSimulator

INTENTS = (
    hikari.Intents.GUILDS
    | hikari.Intents.GUILD_MEMBERS
    | hikari.Intents.GUILD_MESSAGES
    | hikari.Intents.MESSAGE_CONTENT
    | hikari.Intents.GUILD_MESSAGE_REACTIONS
    | hikari.Intents.GUILD_VOICE_STATES
)
"""The app's intents (§7.1)."""

EventT = TypeVar("EventT", bound=hikari.Event)


class EventLog:
    """Collects hikari events of chosen types from a bot and lets a test wait for one."""

    def __init__(self, bot: hikari.GatewayBot, *types: type[hikari.Event]) -> None:
        self.events: list[hikari.Event] = []
        self._changed = asyncio.Condition()
        for event_type in types:
            bot.subscribe(event_type, self._on_event)

    async def _on_event(self, event: hikari.Event) -> None:
        self.events.append(event)
        async with self._changed:
            self._changed.notify_all()

    def of(self, event_type: type[EventT], predicate: Callable[[EventT], bool] = lambda _e: True) -> list[EventT]:
        return [e for e in self.events if isinstance(e, event_type) and predicate(e)]

    async def wait_for(
        self,
        event_type: type[EventT],
        predicate: Callable[[EventT], bool] = lambda _e: True,
        *,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[EventT]:
        async with asyncio.timeout(timeout), self._changed:
            while len(found := self.of(event_type, predicate)) < count:
                await self._changed.wait()
        return found


def make_bot(sim: DiscordSimulator, *, intents: hikari.Intents = INTENTS) -> hikari.GatewayBot:
    return hikari.GatewayBot(
        token=sim.token,
        rest_url=sim.api_url,
        intents=intents,
        banner=None,
        logs=None,
        suppress_optimization_warning=True,
    )


@contextlib.asynccontextmanager
async def running(
    bot: hikari.GatewayBot,
    sim: DiscordSimulator,
    *,
    shard_ids: Sequence[int] | None = None,
    shard_count: int | None = None,
    sessions: int | None = None,
) -> AsyncIterator[hikari.GatewayBot]:
    """Start `bot` in this loop, wait until the simulator sent it READY and its guilds, close it afterwards."""
    before = len(sim.gateway.live_sessions())
    await bot.start(check_for_updates=False, shard_ids=shard_ids, shard_count=shard_count)
    try:
        expected = sessions if sessions is not None else len(shard_ids or range(shard_count or 1))
        await sim.wait_for_ready(before + expected, timeout=10)
        yield bot
    finally:
        await bot.close()


@pytest.fixture
async def sim() -> AsyncIterator[DiscordSimulator]:
    simulator = DiscordSimulator(members=20, seed=42, heartbeat_interval_ms=1000)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
def bot(sim: DiscordSimulator) -> hikari.GatewayBot:
    return make_bot(sim)
