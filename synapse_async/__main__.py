"""Command line: `python -m synapse_async <command>` (SPEC §26).

Exit codes: 0 success; 1 `doctor` found something to fix; 2 the service cannot start (invalid configuration with
every problem printed, HTTP port unavailable, database unreachable: one line saying what to do, nothing left
running); 130 second interrupt during shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from synapse_async import __version__
from synapse_async.config import Config, ConfigError, describe, load_config
from synapse_async.envfile import SANDBOX_SECRET_FILE, EnvFileError, layered_environment, with_sandbox_secret
from synapse_async.obs.logging import configure_logging, get_logger
from synapse_async.obs.ring import LogRing

if TYPE_CHECKING:
    from synapse_async.runtime import Runtime

EXIT_CONFIG = 2


def _utf8_streams() -> None:
    """Output streams are UTF-8 regardless of the locale (SPEC §3.2 step 2)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding="utf-8", errors="backslashreplace")


def _environment() -> dict[str, str]:
    """The process environment over the working directory's `.env` (SPEC §30); an unreadable line is exit 2."""
    try:
        return layered_environment(os.environ)
    except EnvFileError as exc:
        print(f"Invalid configuration: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def _load(*, sandbox_secret: bool = False) -> Config:
    """The validated configuration; with `sandbox_secret`, sandbox mode uses the secret kept on disk (`run` and
    `mint-token` must agree on it; other commands never create it)."""
    env = _environment()
    try:
        return load_config(with_sandbox_secret(env) if sandbox_secret else env)
    except ConfigError as exc:
        print("Invalid configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem.render()}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def _setup_logging(cfg: Config, ring: LogRing | None = None) -> None:
    configure_logging(level=cfg.log_level, fmt=cfg.log_format, ring=ring)
    # Library warnings (e.g. platformdirs in the embedded server) become log records, so every line stays JSON.
    logging.captureWarnings(True)


def _run_async(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run on uvloop when available (faster I/O for the gateway and the pool), else the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


def cmd_run(_args: argparse.Namespace) -> int:
    cfg = _load(sandbox_secret=True)
    _setup_logging(cfg, LogRing(cfg.log_buffer_size, capture_level=cfg.log_level))
    from synapse_async.runtime import Runtime, StartupError

    log = get_logger("synapse_async")
    if cfg.sandbox and "JWT_SECRET" not in _environment():
        secret_file = cfg.embedded_pg_dir.parent / SANDBOX_SECRET_FILE
        log.warning(
            "sandbox_jwt_secret", detail="sandbox mode: the JWT secret is kept in a local file", path=str(secret_file)
        )

    async def main() -> int:
        runtime = Runtime(cfg, on_started=_print_banner)
        try:
            return await runtime.run()
        except StartupError as exc:
            log.error("startup_failed", error=str(exc), exit_code=exc.exit_code)
            print(f"synapse-async cannot start: {exc}", file=sys.stderr, flush=True)  # the one line to act on
            return exc.exit_code

    return _run_async(main)


def banner_lines(base: str, sandbox_guild_id: int | None) -> list[str]:
    """The few lines printed once the service is up (SPEC §30): where the pages, the API and the sandbox are."""
    lines = ["synapse-async is up", f"  Pages      {base}/"]
    if sandbox_guild_id is not None:
        lines.append(f"  Board      {base}/g/{sandbox_guild_id}   (the sandbox guild's leaderboard)")
    lines.append(f"  API        {base}/api/openapi.json   (OpenAPI 3.1; probes {base}/health, {base}/ready)")
    if sandbox_guild_id is not None:
        lines.append(f"  Sandbox    {base}/sandbox   (play as any member: post, react, voice, slash commands)")
    return lines


def _print_banner(runtime: Runtime) -> None:
    """A human summary on stdout (logs go to stderr)."""
    host = "127.0.0.1" if runtime.config.http_host in ("0.0.0.0", "::") else runtime.config.http_host
    base = f"http://{host}:{runtime.http_port}"
    sim = runtime.simulator
    print("\n".join(banner_lines(base, None if sim is None else sim.default_guild_id)), flush=True)


def cmd_migrate(args: argparse.Namespace) -> int:
    cfg = _load()
    _setup_logging(cfg)

    async def main() -> int:
        from sqlalchemy.ext.asyncio import create_async_engine

        from synapse_async.db.embedded import EmbeddedPostgres
        from synapse_async.db.migrate import migrate
        from synapse_async.db.urls import to_sqlalchemy_url

        embedded = None
        url = cfg.database_url
        if url is None:
            embedded = EmbeddedPostgres(cfg.embedded_pg_dir)
            url = await embedded.start()
        engine = create_async_engine(to_sqlalchemy_url(url))
        try:
            before, after = await migrate(engine, args.to)
        finally:
            await engine.dispose()
            if embedded is not None:
                await embedded.stop()
        print(f"schema: {before or 'base'} -> {after or 'base'}")
        return 0

    return asyncio.run(main())


def cmd_check_config(_args: argparse.Namespace) -> int:
    cfg = _load()
    for line in describe(cfg, _environment()):
        print(line)
    print("configuration OK")
    return 0


def cmd_generate_secret(_args: argparse.Namespace) -> int:
    # 48 random bytes in URL-safe base64 are exactly 64 characters.
    print(secrets.token_urlsafe(48))
    return 0


def cmd_export_openapi(_args: argparse.Namespace) -> int:
    from synapse_async.api.cli import export_openapi

    return export_openapi()


def cmd_mint_token(args: argparse.Namespace) -> int:
    from synapse_async.api.cli import mint

    return mint(_load(sandbox_secret=True), args)


def cmd_invite_url(_args: argparse.Namespace) -> int:
    from synapse_async.golive.invite import NoClientId, invite_url, resolve_client_id

    cfg = _load()
    try:
        client_id = resolve_client_id(cfg.discord_client_id, cfg.discord_token)
    except NoClientId as exc:
        print(f"Cannot build the invite link: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(invite_url(cfg.discord_oauth_url, client_id))
    return 0


def cmd_doctor(_args: argparse.Namespace) -> int:
    """Exit 0 when every check passes, 1 when something is left to fix (each with its fix printed)."""
    from synapse_async.golive.doctor import diagnose, render

    cfg = _load()
    _setup_logging(cfg)
    logging.getLogger().setLevel(logging.WARNING)  # the report is the output; library chatter stays out of it
    findings = asyncio.run(diagnose(cfg))
    print(render(findings))
    return 0 if all(f.ok for f in findings) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m synapse_async", description="synapse-async engagement bot")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="start the service (default)").set_defaults(func=cmd_run)
    migrate = sub.add_parser("migrate", help="apply migrations and exit")
    migrate.add_argument("--to", default="head", help="target revision (default head; 'base' empties the schema)")
    migrate.set_defaults(func=cmd_migrate)
    sub.add_parser("check-config", help="validate the environment; exit 0 or 2").set_defaults(func=cmd_check_config)
    sub.add_parser("generate-secret", help="print a random 64-character secret").set_defaults(func=cmd_generate_secret)
    sub.add_parser("export-openapi", help="print the OpenAPI document").set_defaults(func=cmd_export_openapi)
    sub.add_parser("invite-url", help="print the bot's invite link").set_defaults(func=cmd_invite_url)
    sub.add_parser("doctor", help="check a live configuration; say what to fix").set_defaults(func=cmd_doctor)
    from synapse_async.api.cli import add_mint_arguments

    mint = sub.add_parser("mint-token", help="print a service (or --user) token for the listed guilds")
    add_mint_arguments(mint)
    mint.set_defaults(func=cmd_mint_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _utf8_streams()
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = getattr(args, "func", cmd_run)
    return func(args)


if __name__ == "__main__":
    raise SystemExit(main())
