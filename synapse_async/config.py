"""Process configuration from environment variables (SPEC §4).

Every variable is parsed and validated once, at start, and ALL problems are reported together (an operator fixing
a deployment should not discover errors one restart at a time). Secrets are masked in every message. The table of
variables (`VARIABLES`) is the single source for validation, `check-config` output and the README table, which a
test keeps in step with this module.
"""

from __future__ import annotations

import ipaddress
import math
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from synapse_async.db.urls import redact
from synapse_async.domain.snowflakes import to_snowflake

T = TypeVar("T")

WEAK_SECRETS = (
    "secret",
    "changeme",
    "change-me",
    "password",
    "dev",
    "test",
    "jwt-secret",
    "your-secret-here",
    "synapse-dev-secret-change-me",
)
_WEAK_RE = re.compile(r"^(?:" + "|".join(re.escape(w) for w in WEAK_SECRETS) + r")\d*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Variable:
    """One documented environment variable."""

    name: str
    default: str
    doc: str
    secret: bool = False


VARIABLES: tuple[Variable, ...] = (
    Variable("DATABASE_URL", "unset", "`postgresql://…`; unset → embedded PostgreSQL in `EMBEDDED_PG_DIR`", True),
    Variable("EMBEDDED_PG_DIR", "./.synapse/pg", "Data directory of the embedded PostgreSQL (kept between runs)"),
    Variable("DB_POOL_SIZE", "10", "Pool size, 1–100"),
    Variable("DB_POOL_MAX_OVERFLOW", "5", "Extra connections beyond the pool size, 0–100"),
    Variable("DB_POOL_TIMEOUT_SECONDS", "5", "Longest wait for a pooled connection, 0.1–60 (then HTTP 503)"),
    Variable("HTTP_DB_POOL_SIZE", "4", "Connections of the HTTP API's own pool (never the pipeline's), 1–100"),
    Variable("HTTP_DB_WAIT_SECONDS", "0.5", "Longest wait of a request for one of them, 0.01–60 (then HTTP 503)"),
    Variable("DB_STATEMENT_TIMEOUT_MS", "15000", "Server-side statement timeout, 100–600000"),
    Variable("DB_AUTO_MIGRATE", "true", "Upgrade the schema to head at startup (under an advisory lock)"),
    Variable("DB_CONNECT_RETRY_SECONDS", "60", "How long startup retries the first connection before exit 2"),
    Variable("DB_PROBE_SECONDS", "10", "Interval of the `SELECT 1` probe shown in `/health`"),
    Variable("MIGRATION_POLL_SECONDS", "5", "Poll interval while waiting for another process to migrate"),
    Variable("DISCORD_TOKEN", "unset", "Bot token; unset → the local Discord simulator (sandbox)", True),
    Variable("DISCORD_API_URL", "https://discord.com/api/v10", "REST base (gateway URL discovered from it)"),
    Variable("DISCORD_OAUTH_URL", "https://discord.com/oauth2", "OAuth2 authorize base"),
    Variable("DISCORD_CDN_URL", "https://cdn.discordapp.com", "Avatar and icon base"),
    Variable("DISCORD_CLIENT_ID", "unset", "OAuth2 application id"),
    Variable("DISCORD_CLIENT_SECRET", "unset", "OAuth2 application secret", True),
    Variable("DISCORD_REDIRECT_URI", "unset", "Absolute OAuth2 redirect URI ending in `/api/auth/callback`"),
    Variable("PUBLIC_BASE_URL", "unset", "Absolute URL members open (links, page previews); `doctor` asks for it"),
    Variable("OAUTH_SUCCESS_URL", "/", "Landing page after login: relative, or on an origin in `CORS_ORIGINS`"),
    Variable("DEV_GUILD_IDS", "unset", "Register commands in these guilds instead of globally"),
    Variable("REGISTER_COMMANDS", "auto", "`auto` (shard 0 is local), `true` or `false`"),
    Variable("SHARD_IDS", "all", "`0-3` or `0,2,5`; requires `SHARD_COUNT`; ids < count"),
    Variable("SHARD_COUNT", "Discord's recommendation", "Total shards of the deployment"),
    Variable("HTTP_HOST", "0.0.0.0 (sandbox: 127.0.0.1)", "Listen address"),
    Variable("HTTP_PORT", "8080", "Listen port (0 = any free port)"),
    Variable("HTTP_MAX_BODY_BYTES", "1048576", "Larger bodies → 413"),
    Variable("IMPORT_MAX_BYTES", "20971520", "Body limit of the member import"),
    Variable("HTTP_BODY_TIMEOUT_SECONDS", "30", "A request body must arrive within this, 0.05–3600 (else 408, closed)"),
    Variable("HTTP_IDLE_TIMEOUT_SECONDS", "75", "Idle keep-alive connections are closed after this, 0.05–3600"),
    Variable(
        "HTTP_MAX_CONNECTIONS_PER_IP",
        "64",
        "Open connections per peer address, 1–100000; more are refused (peers in `TRUSTED_PROXIES` exempt)",
    ),
    Variable("TRUSTED_PROXIES", "empty", "CIDRs whose `X-Forwarded-For` gives the client IP"),
    Variable("CORS_ORIGINS", "empty", "Exact allowed origins (empty → no CORS)"),
    Variable(
        "JWT_SECRET",
        "required (sandbox: kept in `.synapse/sandbox-jwt-secret`)",
        "≥ 32 characters, not weak; see `generate-secret`",
        True,
    ),
    Variable("JWT_TTL_SECONDS", "3600", "Token lifetime, 300–86400"),
    Variable("JWT_ISSUER", "synapse-async", "`iss` claim"),
    Variable("JWT_AUDIENCE", "synapse-async-api", "`aud` claim"),
    Variable("COOKIE_SECURE", "true", "`Secure` on auth cookies; false only with an `http://` redirect URI"),
    Variable("OPERATOR_USER_IDS", "empty", "Comma list of Discord user ids allowed to read process logs"),
    Variable("ADMIN_RATE_LIMIT_PER_MINUTE", "30", "Admin mutations per principal per minute"),
    Variable("PUBLIC_RATE_LIMIT_PER_MINUTE", "120", "Public requests per client IP per minute; 0 = off"),
    Variable("PUBLIC_QUERY_TIMEOUT_MS", "1500", "Longest public or page query, 100–60000 (then HTTP 503)"),
    Variable("PUBLIC_DB_CONCURRENCY", "4", "Connections all public and page reads share, 1–32 (their own pool)"),
    Variable("CARD_RENDER_CONCURRENCY", "2", "Rank cards rendered at once (worker processes, off the event loop)"),
    Variable("CARD_RENDER_QUEUE", "32", "Rank cards waiting for a render worker; past it the card answers 503"),
    Variable(
        "CARD_FONT_DIRS",
        "empty",
        "Extra font directories for the rank card, searched before the system's (`:`-separated)",
    ),
    Variable("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    Variable(
        "LOG_FORMAT", "auto", "`auto` (`console` on a terminal, else `json`), `json` (one object per line) or `console`"
    ),
    Variable("LOG_BUFFER_SIZE", "2000", "Live-log ring size, 100–100000"),
    Variable("PIPELINE_CONCURRENCY", "8", "Guild lanes processed at once, 1–64 and ≤ pool size"),
    Variable(
        "GUILD_SYNC_CONCURRENCY",
        "2",
        "Guild-structure writes (start-up syncs, channels, roles) run at once, 1–16 and ≤ pool size",
    ),
    Variable("PIPELINE_BUFFER_EVENTS", "50000", "Outage buffer: most events kept"),
    Variable("PIPELINE_BUFFER_MAX_AGE_SECONDS", "300", "Outage buffer: oldest event age kept"),
    Variable("PIPELINE_RETRY_MAX_SECONDS", "30", "Cap of the lanes' retry backoff (from 0.5 s doubling), 0.5–300"),
    Variable(
        "PIPELINE_IDLE_RELEASE_SECONDS",
        "1",
        "A lane's connection goes back to the pool after this long without events, 0.01–60",
    ),
    Variable("COOLDOWN_CACHE_MAX", "200000", "Cooldown cache capacity"),
    Variable("MESSAGE_AUTHOR_CACHE_MAX", "100000", "Message-author cache capacity (LRU-like, CLOCK)"),
    Variable("LISTEN_PING_SECONDS", "15", "Listener liveness ping interval"),
    Variable("LISTEN_MAX_FAILURES", "10", "Consecutive listener failures before the circuit opens"),
    Variable("LISTEN_BACKOFF_MAX_SECONDS", "60", "Listener reconnect backoff cap"),
    Variable("LISTEN_HALF_OPEN_SECONDS", "60", "Reconnect attempt interval while the circuit is open"),
    Variable("CACHE_POLL_SECONDS", "30", "Full cache reload interval while the circuit is open"),
    Variable("TASK_RESTART_SECONDS", "30", "Delay before a failed background task is restarted"),
    Variable("VOICE_TICK_CHECK_SECONDS", "60", "How often the voice ticker checks for slot boundaries"),
    Variable("SEASON_CHECK_SECONDS", "60", "How often expired seasons are ended (and renewed)"),
    Variable("JOB_POLL_SECONDS", "5", "How often the job runner looks for queued jobs of local guilds"),
    Variable("LAKE_SCHEDULER_CHECK_SECONDS", "30", "How often the lake retention/reconciliation schedule is checked"),
    Variable("LAKE_RETENTION_BUDGET_SECONDS", "1800", "Time budget of one retention run (the next run continues)"),
    Variable("LAKE_RETENTION_PAUSE_SECONDS", "0.1", "Pause between retention batches of 5,000 rows, 0–60"),
    Variable("SHUTDOWN_DEADLINE_SECONDS", "25", "Graceful shutdown deadline, 5–300"),
    Variable("SANDBOX_MEMBERS", "20", "Sandbox world size"),
    Variable("SANDBOX_ACTIVITY_PER_MINUTE", "0", "Simulated sandbox events per minute"),
    Variable("SANDBOX_SEED", "42", "Seed of the sandbox world and activity"),
    Variable(
        "SANDBOX_ALLOW_EXTERNAL_DATABASE",
        "false",
        "Let sandbox mode (no `DISCORD_TOKEN`) `run` against a `DATABASE_URL`; off, it refuses to start",
    ),
)
_SECRET_NAMES = frozenset(v.name for v in VARIABLES if v.secret)
_KNOWN = frozenset(v.name for v in VARIABLES)

LogFormat = Literal["json", "console", "auto"]


@dataclass(frozen=True, slots=True)
class Config:
    """The validated configuration. Immutable; the composition root hands parts of it to each component."""

    database_url: str | None = None
    embedded_pg_dir: Path = Path("./.synapse/pg")
    db_pool_size: int = 10
    db_pool_max_overflow: int = 5
    db_pool_timeout_seconds: float = 5.0
    db_statement_timeout_ms: int = 15000
    http_db_pool_size: int = 4
    http_db_wait_seconds: float = 0.5
    db_auto_migrate: bool = True
    db_connect_retry_seconds: float = 60.0
    db_probe_seconds: float = 10.0
    migration_poll_seconds: float = 5.0
    discord_token: str | None = None
    discord_api_url: str = "https://discord.com/api/v10"
    discord_oauth_url: str = "https://discord.com/oauth2"
    discord_cdn_url: str = "https://cdn.discordapp.com"
    discord_client_id: str | None = None
    discord_client_secret: str | None = None
    discord_redirect_uri: str | None = None
    public_base_url: str | None = None
    oauth_success_url: str = "/"
    dev_guild_ids: tuple[int, ...] = ()
    register_commands: Literal["auto", "true", "false"] = "auto"
    shard_ids: tuple[int, ...] | None = None
    shard_count: int | None = None
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    http_max_body_bytes: int = 1024 * 1024
    import_max_bytes: int = 20 * 1024 * 1024
    http_body_timeout_seconds: float = 30.0
    http_idle_timeout_seconds: float = 75.0
    http_max_connections_per_ip: int = 64
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    cors_origins: tuple[str, ...] = ()
    jwt_secret: str = field(default="", repr=False)
    jwt_secret_generated: bool = False
    jwt_ttl_seconds: int = 3600
    jwt_issuer: str = "synapse-async"
    jwt_audience: str = "synapse-async-api"
    cookie_secure: bool = True
    operator_user_ids: frozenset[int] = frozenset()
    admin_rate_limit_per_minute: int = 30
    public_rate_limit_per_minute: int = 120
    public_query_timeout_ms: int = 1500
    public_db_concurrency: int = 2

    card_render_concurrency: int = 2
    card_render_queue: int = 32
    card_font_dirs: tuple[str, ...] = ()
    log_level: str = "INFO"
    log_format: LogFormat = "auto"
    log_buffer_size: int = 2000
    pipeline_concurrency: int = 8
    guild_sync_concurrency: int = 2
    pipeline_buffer_events: int = 50000
    pipeline_buffer_max_age_seconds: float = 300.0
    pipeline_retry_max_seconds: float = 30.0
    pipeline_idle_release_seconds: float = 1.0
    cooldown_cache_max: int = 200000
    message_author_cache_max: int = 100000
    listen_ping_seconds: float = 15.0
    listen_max_failures: int = 10
    listen_backoff_max_seconds: float = 60.0
    listen_half_open_seconds: float = 60.0
    cache_poll_seconds: float = 30.0
    task_restart_seconds: float = 30.0
    voice_tick_check_seconds: float = 60.0
    season_check_seconds: float = 60.0
    job_poll_seconds: float = 5.0
    lake_scheduler_check_seconds: float = 30.0
    lake_retention_budget_seconds: float = 1800.0
    lake_retention_pause_seconds: float = 0.1
    shutdown_deadline_seconds: float = 25.0
    sandbox_members: int = 20
    sandbox_activity_per_minute: int = 0
    sandbox_seed: int = 42
    sandbox_allow_external_database: bool = False

    @property
    def sandbox(self) -> bool:
        """No token: the app talks to the in-process Discord simulator."""
        return self.discord_token is None

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    variable: str
    value: str | None
    expected: str

    def render(self) -> str:
        shown = "<unset>" if self.value is None else repr(self.value)
        return f"{self.variable}={shown}: expected {self.expected}"


class ConfigError(Exception):
    """All problems found in the environment; the CLI prints them and exits with code 2."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("; ".join(p.render() for p in problems))
        self.problems = problems


def mask(name: str, value: str | None) -> str | None:
    """Mask secrets: keep a hint of length only, never characters."""
    if value is None or name not in _SECRET_NAMES:
        return value
    if name == "DATABASE_URL":
        return redact(value)  # user-info and `?password=` forms alike
    return f"***({len(value)} chars)"


class _Reader:
    """Reads variables from a mapping, recording problems instead of raising so all are reported at once."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[ConfigProblem] = []

    def raw(self, name: str) -> str | None:
        assert name in _KNOWN, name
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def fail(self, name: str, value: str | None, expected: str) -> None:
        self.problems.append(ConfigProblem(name, mask(name, value), expected))

    def parse(self, name: str, default: T, convert: Callable[[str], T], expected: str) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return convert(value)
        except (ValueError, TypeError):
            self.fail(name, value, expected)
            return default

    def integer(self, name: str, default: int, lo: int, hi: int) -> int:
        def conv(v: str) -> int:
            n = int(v)
            if not lo <= n <= hi:
                raise ValueError
            return n

        return self.parse(name, default, conv, f"an integer from {lo} to {hi}")

    def number(self, name: str, default: float, lo: float, hi: float) -> float:
        def conv(v: str) -> float:
            n = float(v)
            if not math.isfinite(n) or not lo <= n <= hi:
                raise ValueError
            return n

        return self.parse(name, default, conv, f"a number from {lo:g} to {hi:g}")

    def boolean(self, name: str, default: bool) -> bool:
        table = {"true": True, "1": True, "false": False, "0": False}
        return self.parse(name, default, lambda v: table[v.lower()] if v.lower() in table else _bad(), "true/false/1/0")

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        def conv(v: str) -> str:
            x = v.lower()
            if x not in allowed:
                raise ValueError
            return x

        return self.parse(name, default, conv, "one of " + ", ".join(allowed))

    def url(self, name: str, default: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
        def conv(v: str) -> str:
            parts = urlsplit(v)
            if parts.scheme not in schemes or not parts.netloc:
                raise ValueError
            return v.rstrip("/")

        return self.parse(name, default, conv, "an absolute URL (" + "/".join(schemes) + ")")

    def snowflakes(self, name: str) -> tuple[int, ...]:
        def conv(v: str) -> tuple[int, ...]:
            out: list[int] = []
            for part in v.split(","):
                out.append(to_snowflake(part.strip()))  # InvalidSnowflake is a ValueError
            return tuple(dict.fromkeys(out))

        return self.parse(name, (), conv, "a comma-separated list of Discord ids")


def _bad() -> bool:
    raise ValueError


def _parse_shard_ids(value: str) -> tuple[int, ...]:
    if re.fullmatch(r"\d+-\d+", value):
        lo, hi = (int(x) for x in value.split("-"))
        if lo > hi:
            raise ValueError
        return tuple(range(lo, hi + 1))
    ids = [int(p) for p in value.split(",") if p.strip()]
    if not ids or any(i < 0 for i in ids):
        raise ValueError
    return tuple(sorted(set(ids)))


_NO_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


def _parse_cidrs(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in value.split(",") if p.strip())


def _parse_origins(value: str) -> tuple[str, ...]:
    out = []
    for part in value.split(","):
        origin = part.strip().rstrip("/")
        if not origin:
            continue
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or origin == "*":
            raise ValueError
        out.append(origin)
    return tuple(out)


def secret_problem(value: str) -> str | None:
    """Why a JWT secret is unacceptable (SPEC §21.2), or None."""
    if len(value) < 32:
        return "at least 32 characters (use `python -m synapse_async generate-secret`)"
    if len(set(value)) == 1:
        return "not one repeated character (use `python -m synapse_async generate-secret`)"
    if _WEAK_RE.fullmatch(value):
        return "not a known weak value (use `python -m synapse_async generate-secret`)"
    return None


def load_config(env: Mapping[str, str]) -> Config:
    """Parse and validate the environment; raise ConfigError listing every problem."""
    r = _Reader(env)
    database_url = r.raw("DATABASE_URL")
    if database_url is not None and urlsplit(database_url).scheme not in (
        "postgresql",
        "postgres",
        "postgresql+asyncpg",
    ):
        r.fail("DATABASE_URL", database_url, "a postgresql:// URL")
    pool_size = r.integer("DB_POOL_SIZE", 10, 1, 100)
    discord_token = r.raw("DISCORD_TOKEN")
    sandbox = discord_token is None

    shard_count = r.parse("SHARD_COUNT", None, lambda v: _positive(int(v)), "a positive integer")
    shard_ids = r.parse("SHARD_IDS", None, _parse_shard_ids, "`0-3` or `0,2,5`")
    if shard_ids is not None:
        if shard_count is None:
            r.fail("SHARD_IDS", r.raw("SHARD_IDS"), "SHARD_COUNT to be set as well")
        elif max(shard_ids) >= shard_count:
            r.fail("SHARD_IDS", r.raw("SHARD_IDS"), f"ids below SHARD_COUNT={shard_count}")

    redirect = r.raw("DISCORD_REDIRECT_URI")
    if redirect is not None:
        parts = urlsplit(redirect)
        if parts.scheme not in ("http", "https") or not parts.netloc or not parts.path.endswith("/api/auth/callback"):
            r.fail("DISCORD_REDIRECT_URI", redirect, "an absolute URL ending in /api/auth/callback")
    cookie_secure = r.boolean("COOKIE_SECURE", True)
    if not cookie_secure and not (redirect or "").startswith("http://") and not sandbox:
        r.fail("COOKIE_SECURE", r.raw("COOKIE_SECURE"), "true unless DISCORD_REDIRECT_URI is an http:// URI")

    no_origins: tuple[str, ...] = ()
    cors = r.parse("CORS_ORIGINS", no_origins, _parse_origins, "comma-separated exact origins like https://app.example")
    success = r.raw("OAUTH_SUCCESS_URL") or "/"
    if not success.startswith("/") or success.startswith("//"):
        parts = urlsplit(success)
        if f"{parts.scheme}://{parts.netloc}" not in cors:
            r.fail("OAUTH_SUCCESS_URL", success, "a relative path or a URL on an origin listed in CORS_ORIGINS")

    jwt_secret = r.raw("JWT_SECRET")
    generated = False
    if jwt_secret is None:
        if sandbox:
            jwt_secret, generated = secrets.token_urlsafe(48), True
        else:
            r.fail("JWT_SECRET", None, "a secret (required outside the sandbox; see generate-secret)")
            jwt_secret = ""
    elif (why := secret_problem(jwt_secret)) is not None:
        r.fail("JWT_SECRET", jwt_secret, why)

    concurrency = r.integer("PIPELINE_CONCURRENCY", 8, 1, 64)
    if concurrency > pool_size:
        r.fail("PIPELINE_CONCURRENCY", str(concurrency), f"at most DB_POOL_SIZE={pool_size}")

    guild_sync = r.integer("GUILD_SYNC_CONCURRENCY", 2, 1, 16)
    if guild_sync > pool_size:
        r.fail("GUILD_SYNC_CONCURRENCY", str(guild_sync), f"at most DB_POOL_SIZE={pool_size}")

    log_format = r.choice("LOG_FORMAT", "auto", ("auto", "json", "console"))
    register = r.choice("REGISTER_COMMANDS", "auto", ("auto", "true", "false"))
    cfg = Config(
        database_url=database_url,
        embedded_pg_dir=Path(r.raw("EMBEDDED_PG_DIR") or "./.synapse/pg"),
        db_pool_size=pool_size,
        db_pool_max_overflow=r.integer("DB_POOL_MAX_OVERFLOW", 5, 0, 100),
        db_pool_timeout_seconds=r.number("DB_POOL_TIMEOUT_SECONDS", 5.0, 0.1, 60),
        http_db_pool_size=r.integer("HTTP_DB_POOL_SIZE", 4, 1, 100),
        http_db_wait_seconds=r.number("HTTP_DB_WAIT_SECONDS", 0.5, 0.01, 60),
        db_statement_timeout_ms=r.integer("DB_STATEMENT_TIMEOUT_MS", 15000, 100, 600000),
        db_auto_migrate=r.boolean("DB_AUTO_MIGRATE", True),
        db_connect_retry_seconds=r.number("DB_CONNECT_RETRY_SECONDS", 60.0, 0, 3600),
        db_probe_seconds=r.number("DB_PROBE_SECONDS", 10.0, 0.05, 3600),
        migration_poll_seconds=r.number("MIGRATION_POLL_SECONDS", 5.0, 0.05, 3600),
        discord_token=discord_token,
        discord_api_url=r.url("DISCORD_API_URL", "https://discord.com/api/v10"),
        discord_oauth_url=r.url("DISCORD_OAUTH_URL", "https://discord.com/oauth2"),
        discord_cdn_url=r.url("DISCORD_CDN_URL", "https://cdn.discordapp.com"),
        discord_client_id=r.raw("DISCORD_CLIENT_ID"),
        discord_client_secret=r.raw("DISCORD_CLIENT_SECRET"),
        discord_redirect_uri=redirect,
        public_base_url=r.url("PUBLIC_BASE_URL", "") or None,
        oauth_success_url=success,
        dev_guild_ids=r.snowflakes("DEV_GUILD_IDS"),
        register_commands=register,  # type: ignore[arg-type]
        shard_ids=shard_ids,
        shard_count=shard_count,
        # The sandbox serves unauthenticated control endpoints: it listens on loopback unless told otherwise.
        http_host=r.raw("HTTP_HOST") or ("127.0.0.1" if sandbox else "0.0.0.0"),
        http_port=r.integer("HTTP_PORT", 8080, 0, 65535),
        http_max_body_bytes=r.integer("HTTP_MAX_BODY_BYTES", 1024 * 1024, 1024, 1024**3),
        import_max_bytes=r.integer("IMPORT_MAX_BYTES", 20 * 1024 * 1024, 1024, 1024**3),
        http_body_timeout_seconds=r.number("HTTP_BODY_TIMEOUT_SECONDS", 30.0, 0.05, 3600),
        http_idle_timeout_seconds=r.number("HTTP_IDLE_TIMEOUT_SECONDS", 75.0, 0.05, 3600),
        http_max_connections_per_ip=r.integer("HTTP_MAX_CONNECTIONS_PER_IP", 64, 1, 100000),
        trusted_proxies=r.parse("TRUSTED_PROXIES", _NO_NETWORKS, _parse_cidrs, "comma-separated CIDRs"),
        cors_origins=cors,
        jwt_secret=jwt_secret,
        jwt_secret_generated=generated,
        jwt_ttl_seconds=r.integer("JWT_TTL_SECONDS", 3600, 300, 86400),
        jwt_issuer=r.raw("JWT_ISSUER") or "synapse-async",
        jwt_audience=r.raw("JWT_AUDIENCE") or "synapse-async-api",
        cookie_secure=cookie_secure,
        operator_user_ids=frozenset(r.snowflakes("OPERATOR_USER_IDS")),
        admin_rate_limit_per_minute=r.integer("ADMIN_RATE_LIMIT_PER_MINUTE", 30, 1, 100000),
        public_rate_limit_per_minute=r.integer("PUBLIC_RATE_LIMIT_PER_MINUTE", 120, 0, 1000000),
        public_query_timeout_ms=r.integer("PUBLIC_QUERY_TIMEOUT_MS", 1500, 100, 60000),
        public_db_concurrency=r.integer("PUBLIC_DB_CONCURRENCY", 4, 1, 32),
        card_render_concurrency=r.integer("CARD_RENDER_CONCURRENCY", 2, 1, 32),
        card_render_queue=r.integer("CARD_RENDER_QUEUE", 32, 0, 100000),
        card_font_dirs=tuple(d for d in (r.raw("CARD_FONT_DIRS") or "").split(":") if d.strip()),
        log_level=r.parse("LOG_LEVEL", "INFO", _log_level, "DEBUG, INFO, WARNING, ERROR or CRITICAL"),
        log_format=log_format,  # type: ignore[arg-type]
        log_buffer_size=r.integer("LOG_BUFFER_SIZE", 2000, 100, 100000),
        pipeline_concurrency=concurrency,
        guild_sync_concurrency=guild_sync,
        pipeline_buffer_events=r.integer("PIPELINE_BUFFER_EVENTS", 50000, 1, 10_000_000),
        pipeline_buffer_max_age_seconds=r.number("PIPELINE_BUFFER_MAX_AGE_SECONDS", 300.0, 1, 86400),
        pipeline_retry_max_seconds=r.number("PIPELINE_RETRY_MAX_SECONDS", 30.0, 0.5, 300),
        pipeline_idle_release_seconds=r.number("PIPELINE_IDLE_RELEASE_SECONDS", 1.0, 0.01, 60),
        cooldown_cache_max=r.integer("COOLDOWN_CACHE_MAX", 200000, 100, 100_000_000),
        message_author_cache_max=r.integer("MESSAGE_AUTHOR_CACHE_MAX", 100000, 100, 100_000_000),
        listen_ping_seconds=r.number("LISTEN_PING_SECONDS", 15.0, 0.05, 3600),
        listen_max_failures=r.integer("LISTEN_MAX_FAILURES", 10, 1, 1000),
        listen_backoff_max_seconds=r.number("LISTEN_BACKOFF_MAX_SECONDS", 60.0, 0.01, 3600),
        listen_half_open_seconds=r.number("LISTEN_HALF_OPEN_SECONDS", 60.0, 0.05, 3600),
        cache_poll_seconds=r.number("CACHE_POLL_SECONDS", 30.0, 0.05, 3600),
        task_restart_seconds=r.number("TASK_RESTART_SECONDS", 30.0, 0.01, 3600),
        voice_tick_check_seconds=r.number("VOICE_TICK_CHECK_SECONDS", 60.0, 0.05, 3600),
        season_check_seconds=r.number("SEASON_CHECK_SECONDS", 60.0, 0.05, 3600),
        job_poll_seconds=r.number("JOB_POLL_SECONDS", 5.0, 0.05, 3600),
        lake_scheduler_check_seconds=r.number("LAKE_SCHEDULER_CHECK_SECONDS", 30.0, 0.05, 3600),
        lake_retention_budget_seconds=r.number("LAKE_RETENTION_BUDGET_SECONDS", 1800.0, 0, 86400),
        lake_retention_pause_seconds=r.number("LAKE_RETENTION_PAUSE_SECONDS", 0.1, 0, 60),
        shutdown_deadline_seconds=r.number("SHUTDOWN_DEADLINE_SECONDS", 25.0, 5, 300),
        sandbox_members=r.integer("SANDBOX_MEMBERS", 20, 1, 100000),
        sandbox_activity_per_minute=r.integer("SANDBOX_ACTIVITY_PER_MINUTE", 0, 0, 600000),
        sandbox_seed=r.integer("SANDBOX_SEED", 42, 0, 2**31 - 1),
        sandbox_allow_external_database=r.boolean("SANDBOX_ALLOW_EXTERNAL_DATABASE", False),
    )
    if r.problems:
        raise ConfigError(r.problems)
    return cfg


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError
    return level


def _positive(n: int) -> int:
    if n < 1:
        raise ValueError
    return n


def run_problems(cfg: Config) -> list[ConfigProblem]:
    """Why `run` must refuse this configuration although it is valid for the other commands (e.g. `migrate`).

    Sandbox mode has unauthenticated `/sandbox/*` endpoints that write rewards and a random JWT secret; pointed
    at a shared or production database by a forgotten `DISCORD_TOKEN`, it would let anyone on the host rewrite
    real balances. So it runs only on the embedded database unless the operator says so explicitly."""
    if cfg.sandbox and not cfg.embedded_database and not cfg.sandbox_allow_external_database:
        return [
            ConfigProblem(
                "DATABASE_URL",
                mask("DATABASE_URL", cfg.database_url),
                "unset in sandbox mode (DISCORD_TOKEN unset), or SANDBOX_ALLOW_EXTERNAL_DATABASE=true to use it",
            )
        ]
    return []


def describe(cfg: Config, env: Mapping[str, str]) -> list[str]:
    """Lines for `check-config`: each variable with its effective (masked) value."""
    lines = []
    for var in VARIABLES:
        value = env.get(var.name)
        shown = mask(var.name, value) if value else f"(default: {var.default})"
        lines.append(f"{var.name}={shown}")
    if cfg.sandbox:
        lines.append("# DISCORD_TOKEN unset: sandbox mode (local Discord simulator)")
    if cfg.embedded_database:
        lines.append(f"# DATABASE_URL unset: embedded PostgreSQL in {cfg.embedded_pg_dir}")
    return lines


def markdown_table() -> str:
    """The README's variable table, generated from `VARIABLES` (`make env-docs` rewrites the README and
    `.env.example`; a test fails when they drift)."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for v in VARIABLES:
        lines.append(f"| `{v.name}` | {v.default} | {v.doc}{' (secret, masked in output)' if v.secret else ''} |")
    return "\n".join(lines)


def env_example() -> str:
    lines = [
        "# synapse-async environment. Copy to .env and fill in; every variable is optional except where noted.",
        "# docker-compose reads POSTGRES_PASSWORD from here too (no default password is committed).",
        "POSTGRES_PASSWORD=",
    ]
    for v in VARIABLES:
        lines += [f"# {v.doc} (default: {v.default})", f"# {v.name}="]
    return "\n".join(lines) + "\n"
