"""The simulator as its own process, and the seeded community activity."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import aiohttp
import hikari

from synapse_async.sandbox import DiscordSimulator
from synapse_async.sandbox.community import CommunityActivity

from .conftest import EventLog, running


async def test_runs_as_a_process_and_stops_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "synapse_async.sandbox",
        "--port",
        "0",
        "--members",
        "5",
        "--seed",
        "1",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        info = json.loads(line)
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bot {info['token']}"}
            async with http.get(info["api_url"] + "/gateway/bot", headers=headers) as response:
                assert response.status == 200
                assert (await response.json())["url"] == info["gateway_url"]
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_community_activity_is_seeded_and_reaches_the_bot(sim: DiscordSimulator, bot: hikari.GatewayBot) -> None:
    log = EventLog(bot, hikari.GuildMessageCreateEvent, hikari.GuildReactionAddEvent, hikari.VoiceStateUpdateEvent)
    async with running(bot, sim):
        activity = CommunityActivity(sim, per_minute=60, seed=3)
        for _ in range(40):
            await activity.step()
        assert activity.actions == 40
        await log.wait_for(hikari.GuildMessageCreateEvent, count=10)
        kinds = {type(e) for e in log.events}
        assert hikari.GuildMessageCreateEvent in kinds
        activity.per_minute = 6000
        activity.start()
        await log.wait_for(hikari.GuildMessageCreateEvent, count=25, timeout=10)
        await activity.stop()
