"""`export-openapi` and `mint-token` (SPEC §26): the API's command-line tools.

`mint-token` prints the token on stdout and nothing else there (so `TOKEN=$(… mint-token …)` works); the audit
row `token.mint` is written when `DATABASE_URL` is set and reachable, and its absence is reported on stderr, never
as a failure: minting needs only `JWT_SECRET`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson

from synapse_async.auth.tokens import SERVICE_MAX_TTL, TokenCodec
from synapse_async.config import Config
from synapse_async.domain.snowflakes import InvalidSnowflake, to_snowflake

USER_MAX_TTL = 86_400


def export_openapi() -> int:
    from synapse_async.api.routes import openapi_document

    sys.stdout.write(orjson.dumps(openapi_document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    sys.stdout.write("\n")
    return 0


def add_mint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--guild", action="append", required=True, help="guild id (repeat for several)")
    parser.add_argument("--name", default="automation", help="the token's name (service tokens: svc:<name>)")
    parser.add_argument("--ttl", type=int, default=900, help="lifetime in seconds (service tokens ≤ 3600)")
    parser.add_argument("--user", help="mint a user token for this Discord user id (still live-checked)")


def _snowflake_arg(value: str, what: str) -> int:
    try:
        return to_snowflake(value)
    except InvalidSnowflake:
        raise SystemExit(f"{what}: {value!r} is not a Discord id") from None


def mint(cfg: Config, args: argparse.Namespace) -> int:
    guilds = list(dict.fromkeys(_snowflake_arg(g, "--guild") for g in args.guild))
    name = str(args.name).strip()
    if not 1 <= len(name) <= 32 or not all(c.isalnum() or c in "-_." for c in name):
        raise SystemExit("--name: 1–32 characters of letters, digits, - _ .")
    codec = TokenCodec(
        cfg.jwt_secret, issuer=cfg.jwt_issuer, audience=cfg.jwt_audience, ttl_seconds=cfg.jwt_ttl_seconds
    )
    now = int(time.time())
    if args.user is not None:
        if not 1 <= args.ttl <= USER_MAX_TTL:
            raise SystemExit(f"--ttl: 1–{USER_MAX_TTL} seconds for a user token")
        token = codec.issue_user(_snowflake_arg(args.user, "--user"), name, guilds, ttl=args.ttl, now=now)
    else:
        if not 1 <= args.ttl <= SERVICE_MAX_TTL:
            raise SystemExit(f"--ttl: 1–{SERVICE_MAX_TTL} seconds for a service token")
        token = codec.issue_service(name, guilds, ttl=args.ttl, now=now)
    claims = codec.decode(token)
    print(token, flush=True)
    if cfg.database_url is None:
        print("token.mint not audited: DATABASE_URL is unset", file=sys.stderr)
        return 0
    summary: dict[str, Any] = {
        "sub": claims.sub,
        "kind": claims.kind,
        "name": claims.name,
        "jti": claims.jti,
        "exp": claims.exp,
        "guilds": [str(g) for g in guilds],
    }
    try:
        asyncio.run(_audit(cfg.database_url, guilds, summary))
    except Exception as exc:  # the token is valid either way; say why the audit row is missing
        print(f"token.mint not audited: database unreachable ({type(exc).__name__})", file=sys.stderr)
    return 0


async def _audit(url: str, guilds: list[int], summary: dict[str, Any]) -> None:
    """One `token.mint` row per guild (each guild's audit log shows who can act on it), in one transaction."""
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from synapse_async.db.urls import to_sqlalchemy_url
    from synapse_async.services.audit import Actor, record

    engine = create_async_engine(to_sqlalchemy_url(url), connect_args={"timeout": 5})
    try:
        async with async_sessionmaker(engine)() as session, session.begin():
            for guild_id in guilds:
                await record(
                    session,
                    Actor("cli", "system", "cli"),
                    guild_id=guild_id,
                    action="token.mint",
                    target_type="token",
                    target_id=summary["jti"],
                    after=summary,
                )
    finally:
        await engine.dispose()
