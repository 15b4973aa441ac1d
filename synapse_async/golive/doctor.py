"""`doctor` (SPEC §30): checks a live configuration against Discord and the database and says exactly what to fix.

Each check is one `Finding` with the fix spelled out as a step the operator can take (a portal switch, a role to
drag, a variable to set). It asks Discord through hikari's REST client, as the bot itself does, so what passes here
is what the gateway will meet; it never changes anything, on Discord or in the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp
import hikari
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from synapse_async.config import Config
from synapse_async.db.migrate import current_revision, head_revision
from synapse_async.db.urls import to_sqlalchemy_url

# Discord's application flags for the two privileged intents the bot asks for (the "limited" variants are what an
# application in fewer than 100 servers gets when the switch is on).
_MEMBERS_INTENT: Final = (1 << 14) | (1 << 15)
_MESSAGE_CONTENT_INTENT: Final = (1 << 18) | (1 << 19)
_PORTAL: Final = "Discord Developer Portal → your application → Bot → Privileged Gateway Intents"
_MAX_GUILDS_CHECKED: Final = 25


@dataclass(frozen=True, slots=True)
class Finding:
    """One check: what was found, and for a problem the step that fixes it."""

    check: str
    ok: bool
    detail: str
    fix: str | None = None


def render(findings: Sequence[Finding]) -> str:
    """The report printed by the CLI: a line per check, the fix under each problem, a verdict at the end."""
    lines = ["synapse-async doctor"]
    for f in findings:
        lines.append(f"  {'ok ' if f.ok else 'FIX'}  {f.check}: {f.detail}")
        if not f.ok and f.fix:
            lines.append(f"       → {f.fix}")
    problems = sum(not f.ok for f in findings)
    lines.append("All checks passed." if not problems else f"{problems} problem(s) to fix; run doctor again after.")
    return "\n".join(lines)


def _permissions(guild: hikari.Guild, member: hikari.Member, roles: Iterable[hikari.Role]) -> hikari.Permissions:
    """Guild-level permissions of the bot: @everyone plus its roles; the owner and Administrator get everything."""
    by_id = {r.id: r for r in roles}
    if member.id == guild.owner_id:
        return hikari.Permissions.all_permissions()
    perms = by_id[guild.id].permissions if guild.id in by_id else hikari.Permissions.NONE
    for role_id in member.role_ids:
        role = by_id.get(role_id)
        if role is not None:
            perms |= role.permissions
    if perms & hikari.Permissions.ADMINISTRATOR:
        return hikari.Permissions.all_permissions()
    return perms


def guild_findings(
    guild: hikari.Guild, member: hikari.Member, roles: Sequence[hikari.Role], reward_role_ids: Iterable[int]
) -> list[Finding]:
    """Manage Roles, and every level-reward role below the bot's highest role (§13's pre-check, ahead of time)."""
    label = f"Server {guild.name!r}"
    found: list[Finding] = []
    if not _permissions(guild, member, roles) & hikari.Permissions.MANAGE_ROLES:
        found.append(
            Finding(
                label,
                False,
                "the bot lacks Manage Roles, so level roles cannot be given",
                "Server Settings → Roles → the bot's role → enable Manage Roles (or re-invite with `invite-url`)",
            )
        )
    by_id = {r.id: r for r in roles}
    own = [by_id[r] for r in member.role_ids if r in by_id]
    top = max(own, key=lambda r: r.position, default=by_id.get(guild.id))
    top_position, top_name = (top.position, top.name) if top is not None else (0, "@everyone")
    for role_id in sorted(reward_role_ids):
        role = by_id.get(hikari.Snowflake(role_id))
        if role is None:
            found.append(
                Finding(
                    label, False, f"level reward role {role_id} no longer exists", "remove it in /admin → Level roles"
                )
            )
        elif role.position >= top_position and member.id != guild.owner_id:
            found.append(
                Finding(
                    label,
                    False,
                    f"level reward role {role.name!r} is not below the bot's highest role {top_name!r}",
                    "Server Settings → Roles → drag the bot's role above every level reward role",
                )
            )
    if not found:
        found.append(Finding(label, True, "Manage Roles present; every level reward role is below the bot's role"))
    return found


async def _reward_roles(engine: AsyncEngine | None, guild_id: int) -> list[int]:
    if engine is None:
        return []
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT role_id FROM level_role_rewards WHERE guild_id = :g"), {"g": guild_id})
        return [int(r[0]) for r in rows]


async def _discord(cfg: Config, engine: AsyncEngine | None) -> list[Finding]:
    if cfg.discord_token is None:
        return [
            Finding(
                "Discord token",
                False,
                "DISCORD_TOKEN is not set (sandbox mode: the local simulator answers instead of Discord)",
                "Developer Portal → your application → Bot → Reset Token; put it in .env as DISCORD_TOKEN=…",
            )
        ]
    app = hikari.RESTApp(url=cfg.discord_api_url)
    await app.start()
    try:
        async with app.acquire(cfg.discord_token, hikari.TokenType.BOT) as rest:
            try:
                me = await rest.fetch_my_user()
            except hikari.UnauthorizedError:
                return [
                    Finding(
                        "Discord token",
                        False,
                        "Discord refused DISCORD_TOKEN (401)",
                        "Developer Portal → Bot → Reset Token, and copy the new one into DISCORD_TOKEN",
                    )
                ]
            found = [Finding("Discord token", True, f"valid, the bot is {me.username!r} ({me.id})")]
            application = await rest.fetch_application()
            missing = [
                name
                for name, bits in (("Server Members", _MEMBERS_INTENT), ("Message Content", _MESSAGE_CONTENT_INTENT))
                if not int(application.flags) & bits
            ]
            if missing:
                names = " and ".join(f"{n} Intent" for n in missing)
                found.append(
                    Finding("Privileged intents", False, f"{names} not enabled", f"{_PORTAL} → enable {names}")
                )
            else:
                found.append(Finding("Privileged intents", True, "Server Members and Message Content enabled"))
            guilds = [g async for g in rest.fetch_my_guilds()]
            if not guilds:
                found.append(
                    Finding(
                        "Servers",
                        False,
                        "the bot is in no server",
                        "run `python -m synapse_async invite-url` and open the link as a server admin",
                    )
                )
                return found
            found.append(Finding("Servers", True, f"the bot is in {len(guilds)} server(s)"))
            for own in guilds[:_MAX_GUILDS_CHECKED]:
                guild = await rest.fetch_guild(own.id)
                member = await rest.fetch_member(own.id, me.id)
                roles = await rest.fetch_roles(own.id)
                found += guild_findings(guild, member, roles, await _reward_roles(engine, int(own.id)))
            return found
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return [
            Finding(
                "Discord API",
                False,
                f"{cfg.discord_api_url} unreachable ({exc.__class__.__name__})",
                "check DISCORD_API_URL and the network",
            )
        ]
    finally:
        await app.close()


async def _database(cfg: Config) -> tuple[list[Finding], AsyncEngine | None]:
    if cfg.database_url is None:
        fix = "set DATABASE_URL=postgresql://user:password@host:5432/synapse (docs/going-live.md)"
        return [
            Finding("Database", False, "DATABASE_URL is not set: the embedded PostgreSQL is for local use", fix)
        ], None
    engine = create_async_engine(to_sqlalchemy_url(cfg.database_url), connect_args={"timeout": 5})
    try:
        current = await current_revision(engine)
    except Exception as exc:  # whatever stops the connection or the version query is the finding itself
        await engine.dispose()
        detail = f"unreachable ({exc.__class__.__name__}: {str(exc)[:120]})"
        return [Finding("Database", False, detail, "check DATABASE_URL, the server and its firewall")], None
    head = head_revision()
    if current != head:
        await engine.dispose()  # the level-role check reads tables an old schema may not have
        fix = "run `python -m synapse_async migrate` (the app also migrates at start with DB_AUTO_MIGRATE=true)"
        return [Finding("Database", False, f"schema at {current or 'empty'}, this version needs {head}", fix)], None
    return [Finding("Database", True, f"reachable, schema at {head}")], engine


async def _oauth(cfg: Config) -> Finding:
    needed = {
        "DISCORD_CLIENT_ID": cfg.discord_client_id,
        "DISCORD_CLIENT_SECRET": cfg.discord_client_secret,
        "DISCORD_REDIRECT_URI": cfg.discord_redirect_uri,
    }
    unset = [name for name, value in needed.items() if not value]
    if unset:
        fix = "Developer Portal → OAuth2: copy the Client ID and Secret, add the redirect URI; set " + ", ".join(unset)
        return Finding("Console sign-in (OAuth2)", False, "not configured", fix)
    uri = str(cfg.discord_redirect_uri)
    try:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(uri, allow_redirects=False) as resp:
            status = resp.status
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        fix = "start the app and make the reverse proxy forward /api/ to it (docs/deploy.md)"
        return Finding("Console sign-in (OAuth2)", False, f"{uri} is not reachable ({exc.__class__.__name__})", fix)
    return Finding("Console sign-in (OAuth2)", True, f"{uri} answers (HTTP {status} without a login code)")


def _public_base_url(cfg: Config) -> Finding:
    if cfg.public_base_url:
        return Finding("PUBLIC_BASE_URL", True, cfg.public_base_url)
    fix = "set PUBLIC_BASE_URL to the address members open (e.g. https://bot.example.com): links and previews use it"
    return Finding("PUBLIC_BASE_URL", False, "not set", fix)


async def diagnose(cfg: Config) -> list[Finding]:
    """Every check, in the order an operator fixes them: database, Discord, public address, console sign-in."""
    found, engine = await _database(cfg)
    try:
        found += await _discord(cfg, engine)
    finally:
        if engine is not None:
            await engine.dispose()
    found.append(_public_base_url(cfg))
    found.append(await _oauth(cfg))
    return found
