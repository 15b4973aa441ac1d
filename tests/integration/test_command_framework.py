"""The slash-command framework through real hikari + lightbulb + the simulator (SPEC §17.1)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from synapse_async.access import is_guild_admin
from synapse_async.bot.framework import BUSY_MESSAGE, NOT_ADMIN_MESSAGE
from synapse_async.runtime import Runtime
from synapse_async.sandbox import DiscordSimulator
from tests.support import make_runtime

ADMIN = 100000000000000010  # owner of the sandbox guild, holds the Admin role (Administrator)
ALICE = 100000000000001000
EXTENSIONS = ["tests.command_fixtures"]


@pytest.fixture(scope="module")
async def runtime(fresh_database: str) -> AsyncIterator[Runtime]:
    rt = make_runtime(fresh_database, extensions=EXTENSIONS)
    await rt.start()
    yield rt
    await rt.shutdown()


def _sim(rt: Runtime) -> DiscordSimulator:
    assert rt.simulator is not None
    return rt.simulator


async def test_database_trouble_after_public_defer_becomes_an_ephemeral_busy_reply(runtime: Runtime) -> None:
    record = await _sim(runtime).invoke("test-busy", user=ALICE, until=lambda r: bool(r.followups))
    assert record.deferred
    assert record.original_deleted  # the public "thinking…" reply is removed
    followup = record.followups[-1]
    assert followup.content == BUSY_MESSAGE
    assert followup.flags & 64  # EPHEMERAL


async def test_input_errors_are_answered_before_any_defer(runtime: Runtime) -> None:
    record = await _sim(runtime).invoke("test-validate", user=ALICE)
    assert not record.deferred
    assert record.ephemeral
    assert record.content == "xp: must be between -1,000,000 and 1,000,000"


async def test_admin_check_refuses_members_and_admits_admins(runtime: Runtime) -> None:
    refused = await _sim(runtime).invoke("test-admin", user=ALICE)
    assert (refused.content, refused.ephemeral) == (NOT_ADMIN_MESSAGE, True)
    admitted = await _sim(runtime).invoke("test-admin", user=ADMIN)
    assert admitted.content == "admin ok"


async def test_commands_get_the_runtimes_economy_service_injected(runtime: Runtime) -> None:
    """The runtime registers its one `Economy` in lightbulb's DI: a command declares it and uses it."""
    record = await _sim(runtime).invoke("test-coffee", user=ALICE)
    assert record.content == "ok=False balance=0"  # no member row yet: nothing to pay with, nothing written
    assert runtime.components.economy is runtime.economy is not None


async def test_commands_sync_once_per_start_and_only_when_definitions_differ(fresh_database: str) -> None:
    sim = DiscordSimulator(members=3, seed=1, heartbeat_interval_ms=1000)
    await sim.start()
    env = {"DISCORD_TOKEN": sim.token, "DISCORD_API_URL": sim.api_url, "JWT_SECRET": secrets.token_urlsafe(48)}

    def command_calls(since: int, methods: tuple[str, ...]) -> list[object]:
        return [c for c in sim.rest_calls[since:] if "/commands" in c.path and c.method in methods]

    try:
        for round_no in (1, 2):
            mark = len(sim.rest_calls)
            rt = make_runtime(fresh_database, extensions=EXTENSIONS, **env)
            await rt.start()
            try:
                answer = await sim.invoke("test-admin", user=ADMIN)  # waits until the commands exist
                assert answer.content == "admin ok"
                writes = command_calls(mark, ("PUT", "POST", "PATCH", "DELETE"))
                if round_no == 1:
                    assert writes, "the first start registers the commands"
                else:
                    assert writes == [], "unchanged definitions are not written again"
                reads = len(command_calls(mark, ("GET",)))
                await sim.drop_connection()  # a reconnect/resume must not sync again
                await sim.invoke("test-validate", user=ALICE, timeout=30)
                assert len(command_calls(mark, ("GET",))) == reads
            finally:
                await rt.shutdown()
    finally:
        await sim.stop()


def test_admin_rule() -> None:
    base = {"user_id": 5, "owner_id": 1, "role_ids": [10], "has_administrator": False, "admin_role_ids": [20]}
    assert not is_guild_admin(**base)  # type: ignore[arg-type]
    assert is_guild_admin(**{**base, "owner_id": 5})  # type: ignore[arg-type]
    assert is_guild_admin(**{**base, "has_administrator": True})  # type: ignore[arg-type]
    assert is_guild_admin(**{**base, "admin_role_ids": [10]})  # type: ignore[arg-type]
