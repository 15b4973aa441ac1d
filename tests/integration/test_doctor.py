"""`doctor` (SPEC §30) against the Discord simulator and a real PostgreSQL: each misconfiguration an operator meets
going live is named with its fix, and a complete configuration passes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web

from synapse_async.config import Config, load_config
from synapse_async.db.urls import to_asyncpg_dsn
from synapse_async.golive.doctor import Finding, diagnose, render
from synapse_async.sandbox import SANDBOX_GUILD_ID, DiscordSimulator
from synapse_async.sandbox.world import ROLE_BOT_ID, ROLE_MEMBER_ID, Permission
from tests.conftest import create_database, drop_database

SECRET = "doctor-tests-" + "d" * 40


@pytest.fixture
async def sim() -> AsyncIterator[DiscordSimulator]:
    simulator = DiscordSimulator(members=3, seed=3)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def callback_url() -> AsyncIterator[str]:
    """Stands in for the app's OAuth callback behind its public address (400 without a login code, as ours)."""

    async def callback(_request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "bad_request"}}, status=400)

    app = web.Application()
    app.router.add_get("/api/auth/callback", callback)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/api/auth/callback"
    finally:
        await runner.cleanup()


def live_config(sim: DiscordSimulator, database_url: str | None, redirect: str, **extra: str) -> Config:
    env = {
        "DISCORD_TOKEN": sim.token,
        "DISCORD_API_URL": sim.api_url,
        "JWT_SECRET": SECRET,
        "PUBLIC_BASE_URL": "https://bot.example.com",
        "DISCORD_CLIENT_ID": str(sim.client_id),
        "DISCORD_CLIENT_SECRET": sim.client_secret,
        "DISCORD_REDIRECT_URI": redirect,
        "COOKIE_SECURE": "false",
        **extra,
    }
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return load_config(env)


def problems(findings: list[Finding]) -> dict[str, Finding]:
    return {f.detail: f for f in findings if not f.ok}


async def test_complete_configuration_passes(sim: DiscordSimulator, migrated_database: str, callback_url: str) -> None:
    findings = await diagnose(live_config(sim, migrated_database, callback_url))
    assert problems(findings) == {}, render(findings)
    assert {f.check for f in findings} >= {
        "Database",
        "Discord token",
        "Privileged intents",
        "Servers",
        "PUBLIC_BASE_URL",
    }
    assert "All checks passed." in render(findings)


async def test_missing_intent_is_named_with_the_portal_switch(
    sim: DiscordSimulator, migrated_database: str, callback_url: str
) -> None:
    sim.world.application_flags &= ~(1 << 18)
    found = problems(await diagnose(live_config(sim, migrated_database, callback_url)))
    assert list(found) == ["Message Content Intent not enabled"]
    fix = found["Message Content Intent not enabled"].fix or ""
    assert "Privileged Gateway Intents" in fix and "Message Content Intent" in fix


async def test_missing_manage_roles_and_a_reward_role_above_the_bot(
    sim: DiscordSimulator, migrated_database: str, callback_url: str
) -> None:
    guild = sim.world.guilds[SANDBOX_GUILD_ID]
    guild.roles[ROLE_BOT_ID].permissions &= ~int(Permission.MANAGE_ROLES)
    guild.roles[ROLE_MEMBER_ID].position = 9  # a reward role dragged above the bot's role
    conn = await asyncpg.connect(to_asyncpg_dsn(migrated_database))
    try:
        await conn.execute(
            "INSERT INTO guilds (guild_id, name, owner_id, joined_at) VALUES ($1, 'Sandbox', 1, now()) "
            "ON CONFLICT DO NOTHING",
            SANDBOX_GUILD_ID,
        )
        await conn.execute(
            "INSERT INTO level_role_rewards (guild_id, role_id, level) VALUES ($1, $2, 5)",
            SANDBOX_GUILD_ID,
            ROLE_MEMBER_ID,
        )
        found = problems(await diagnose(live_config(sim, migrated_database, callback_url)))
    finally:
        await conn.execute("DELETE FROM level_role_rewards")
        await conn.close()
    assert set(found) == {
        "the bot lacks Manage Roles, so level roles cannot be given",
        "level reward role 'Member' is not below the bot's highest role 'Synapse Sandbox'",
    }
    assert all(f.check == "Server 'Sandbox'" for f in found.values())


async def test_bot_in_no_server_points_at_invite_url(
    sim: DiscordSimulator, migrated_database: str, callback_url: str
) -> None:
    sim.world.guilds[SANDBOX_GUILD_ID].members.pop(sim.world.bot_user_id)
    found = problems(await diagnose(live_config(sim, migrated_database, callback_url)))
    assert list(found) == ["the bot is in no server"]
    assert "invite-url" in (found["the bot is in no server"].fix or "")


async def test_refused_token(sim: DiscordSimulator, migrated_database: str, callback_url: str) -> None:
    head = sim.token.split(".", 1)[0]
    found = problems(
        await diagnose(live_config(sim, migrated_database, callback_url, DISCORD_TOKEN=f"{head}.wrong.token"))
    )
    assert list(found) == ["Discord refused DISCORD_TOKEN (401)"]


async def test_database_unmigrated_unset_and_public_url_and_oauth(
    sim: DiscordSimulator, pg_server_url: str, callback_url: str
) -> None:
    url = await create_database(pg_server_url)
    try:
        found = problems(await diagnose(live_config(sim, url, callback_url)))
    finally:
        await drop_database(pg_server_url, url)
    [schema] = [f for f in found.values() if f.check == "Database"]
    assert schema.detail.startswith("schema at empty") and "migrate" in (schema.fix or "")

    cfg = load_config(
        {
            "DISCORD_TOKEN": sim.token,
            "DISCORD_API_URL": sim.api_url,
            "JWT_SECRET": SECRET,
            "DISCORD_REDIRECT_URI": "http://127.0.0.1:9/api/auth/callback",
            "DISCORD_CLIENT_ID": "1",
            "DISCORD_CLIENT_SECRET": "s",
            "COOKIE_SECURE": "false",
        }
    )
    checks = {f.check: f for f in await diagnose(cfg) if not f.ok}
    assert checks["Database"].detail.startswith("DATABASE_URL is not set")
    assert checks["PUBLIC_BASE_URL"].detail == "not set"
    assert "is not reachable" in checks["Console sign-in (OAuth2)"].detail


def test_cli_in_sandbox_mode_says_to_set_the_token(tmp_path: Path) -> None:
    """The command itself: exit 1 with the report; `.env` in the working directory is read (no token there)."""
    (tmp_path / ".env").write_text(f"JWT_SECRET={SECRET}\n", encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "EMBEDDED_PG_DIR": str(tmp_path / "pg")}
    done = subprocess.run(
        [sys.executable, "-m", "synapse_async", "doctor"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "DISCORD_TOKEN is not set" in done.stdout and "Reset Token" in done.stdout
