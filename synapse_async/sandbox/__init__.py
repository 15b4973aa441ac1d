"""Local Discord simulator (sandbox mode, §3.5): a real hikari client connects to it over loopback.

`DiscordSimulator` serves Discord's REST API v10, gateway v10 and OAuth2 subset from a deterministic, seeded world
(`build_sandbox_world`), and doubles as the test driver (`sim.message(...)`, `sim.invoke(...)`, …).
"""

from synapse_async.sandbox.driver import DispatchedId, Seqs, SimulatorDriver
from synapse_async.sandbox.server import DiscordSimulator, make_bot_token
from synapse_async.sandbox.world import (
    SANDBOX_BOT_ID,
    SANDBOX_FIRST_MEMBER_ID,
    SANDBOX_GUILD_ID,
    SANDBOX_OWNER_ID,
    World,
    build_sandbox_world,
)

__all__ = [
    "SANDBOX_BOT_ID",
    "SANDBOX_FIRST_MEMBER_ID",
    "SANDBOX_GUILD_ID",
    "SANDBOX_OWNER_ID",
    "DiscordSimulator",
    "DispatchedId",
    "Seqs",
    "SimulatorDriver",
    "World",
    "build_sandbox_world",
    "make_bot_token",
]
