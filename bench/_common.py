"""Shared pieces of the benchmarks: a simulator process loaded with a workload, and replay requests to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg

from synapse_async.db.embedded import EmbeddedPostgres
from synapse_async.db.urls import to_asyncpg_dsn, with_database

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORKLOAD = ROOT.parent / "shared" / "bench" / "workload-5000.jsonl"


T = TypeVar("T")


def run_on_app_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on the loop the app itself runs on (uvloop when installed, see `synapse_async.__main__`), so a
    benchmark measures what ships; the default asyncio loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def count_rows(workload: Path) -> int:
    with workload.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


async def start_simulator(
    workload: Path, *, members: int = 0, extra_guilds: int = 0
) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    """`python -m synapse_async.sandbox --workload …` in its own process; returns it and its URLs/token.

    `members` sizes the sandbox guild, `extra_guilds` adds that many minimal guilds (both 0: the workload only)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "synapse_async.sandbox",
        "--members",
        str(members),
        "--extra-guilds",
        str(extra_guilds),
        "--workload",
        str(workload),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 300))
    return proc, info


async def replay(info: dict[str, str], **body: Any) -> dict[str, Any]:
    """Ask the simulator process to dispatch the workload (`rate`, `limit`, `id_offset`)."""
    base = info["api_url"].split("/api/")[0]
    async with aiohttp.ClientSession() as http, http.post(f"{base}/_control/replay", json=body) as resp:
        resp.raise_for_status()
        result: dict[str, Any] = await resp.json()
        return result


@contextlib.asynccontextmanager
async def bench_server() -> AsyncIterator[str]:
    """A PostgreSQL server for one benchmark run: DATABASE_URL's server if set, else an embedded one (fresh data
    directory) that is stopped afterwards. Yields its admin `postgresql://` URL."""
    embedded = None
    if os.environ.get("DATABASE_URL"):
        server_url = to_asyncpg_dsn(os.environ["DATABASE_URL"])
    else:
        embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="synapse-bench-")) / "pg", delete_on_stop=True)
        server_url = await embedded.start()
    try:
        yield server_url
    finally:
        if embedded is not None:
            await embedded.stop()


async def create_database(server_url: str, prefix: str = "bench") -> str:
    """A new, empty database on `server_url`; its plain `postgresql://` URL."""
    db_name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{db_name}"')
    finally:
        await admin.close()
    return with_database(server_url, db_name)


@contextlib.asynccontextmanager
async def fresh_database(prefix: str = "bench") -> AsyncIterator[str]:
    """A new, empty database on a `bench_server()`; yields its plain `postgresql://` URL."""
    async with bench_server() as server_url:
        yield await create_database(server_url, prefix)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` percentile (0 < q ≤ 1) of `values`, as `_stats.summarize` computes p99."""
    ordered = sorted(values)
    return ordered[max(int(len(ordered) * q) - 1, 0)] if ordered else 0.0


def rss_mb() -> float:
    """The CURRENT resident set of this process (not the peak), from /proc."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


_INDEXES = """
SELECT t.relname AS table_name, c.relname AS index_name, pg_get_expr(i.indpred, i.indrelid) AS predicate,
       t.n_tup_ins + t.n_tup_upd - t.n_tup_hot_upd AS row_versions
  FROM pg_stat_user_tables t JOIN pg_index i ON i.indrelid = t.relid JOIN pg_class c ON c.oid = i.indexrelid
 WHERE t.n_tup_ins + t.n_tup_upd > 0
 ORDER BY 1, 2
"""


async def index_entries(conn: asyncpg.Connection) -> dict[str, int]:
    """Index entries written per table since the database was created: every new row version that is not a HOT
    update adds one entry to each full index; a partial index gets one per row matching its predicate (exact for
    the insert-only tables, the journal and the lake, which are the only ones with partial indexes on this path).
    A GIN index counts once per row version although it adds one entry per key. Read after the writers closed
    their connections: PostgreSQL publishes a backend's table statistics when it exits or idles."""
    out: dict[str, int] = {}
    for row in await conn.fetch(_INDEXES):
        entries = int(row["row_versions"])
        if row["predicate"] is not None:
            entries = int(await conn.fetchval(f'SELECT count(*) FROM "{row["table_name"]}" WHERE {row["predicate"]}'))
        out[row["table_name"]] = out.get(row["table_name"], 0) + entries
    return out


def app_env(info: dict[str, str], database_url: str) -> dict[str, str]:
    """The app's configuration against the simulator process `info` describes (one shard, quiet logs)."""
    return {
        "DATABASE_URL": database_url,
        "DISCORD_TOKEN": info["token"],
        "DISCORD_API_URL": info["api_url"],
        "JWT_SECRET": uuid.uuid4().hex + uuid.uuid4().hex,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "LOG_LEVEL": "WARNING",
        "SHARD_COUNT": "1",
    }


async def postgres_cpu_seconds(conn: asyncpg.Connection) -> float | None:
    """CPU seconds (user + system) used so far by every process of the PostgreSQL server `conn` is connected to
    (the postmaster's children: backends, WAL writer, checkpointer…); None when the server is not on this machine.
    With the app's CPU time it shows where a run's cycles go on a box whose wall clock is shared."""
    import psutil

    try:
        backend = psutil.Process(int(await conn.fetchval("SELECT pg_backend_pid()")))
        postmaster = backend.parent()
        if postmaster is None:
            return None
        total = 0.0
        for child in postmaster.children():
            with contextlib.suppress(psutil.Error):
                times = child.cpu_times()
                total += times.user + times.system
        return total
    except psutil.Error:
        return None
