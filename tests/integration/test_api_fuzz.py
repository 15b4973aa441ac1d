"""Schemathesis against the running app's own `/api/openapi.json` (SPEC §18, §27 item 9).

Every operation is exercised with generated valid and invalid inputs (bounded examples per operation, stateful
phase included): no response may be a 5xx, and every response must conform to the document (status, content
type, headers, body schema); schema-invalid input must be refused. The run uses the schemathesis CLI in a child
process, because it is synchronous and the app serves from this test's event loop; it authenticates with a
service token for the sandbox guild so the admin operations are reached, not only their 401s (logout is
left out: it would revoke that token).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from synapse_async.runtime import Runtime
from synapse_async.sandbox import SANDBOX_FIRST_MEMBER_ID, SANDBOX_GUILD_ID
from tests.api_support import base
from tests.support import make_runtime, wait_for

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    )
)


@pytest.fixture(scope="module")
async def runtime(fresh_database: str) -> AsyncIterator[Runtime]:
    rt = make_runtime(fresh_database, PUBLIC_RATE_LIMIT_PER_MINUTE="0", HTTP_DB_WAIT_SECONDS="10")
    await rt.start()
    cache = rt.components.cache
    assert cache is not None
    await wait_for(lambda: SANDBOX_GUILD_ID in cache.known_guild_ids())
    yield rt
    await rt.shutdown()


async def test_schemathesis_finds_no_server_error_and_no_schema_violation(runtime: Runtime, tmp_path: Path) -> None:
    assert runtime.api is not None and runtime.simulator is not None and runtime.pipeline is not None
    sim = runtime.simulator
    await sim.message(SANDBOX_FIRST_MEMBER_ID, sim.channel_id("general"), "a first message so the profile exists")
    await runtime.pipeline.wait_idle()
    token = runtime.api.codec.issue_service("fuzz", [SANDBOX_GUILD_ID], ttl=3600, now=runtime.api.now())
    # The operations' own ids: the sandbox guild and one of its members (random ids would only reach 404s).
    config = f"""
[auth.openapi.bearer]
bearer = "{token}"

[parameters]
guild_id = "{SANDBOX_GUILD_ID}"
user_id = "{SANDBOX_FIRST_MEMBER_ID}"
"""
    (tmp_path / "schemathesis.toml").write_text(config)
    cli = Path(sys.executable).with_name("schemathesis")
    proc = await asyncio.create_subprocess_exec(
        str(cli),
        "run",
        base(runtime) + "/api/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        "25",
        "--seed",
        "20261203",
        "--workers",
        "1",
        "--request-timeout",
        "20",
        # Logout would revoke the run's own token; it is tested on its own (tests/integration/test_api_auth.py).
        "--exclude-path",
        "/api/auth/logout",
        "--report",
        "ndjson",
        "--report-dir",
        str(tmp_path),
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    output, _ = await proc.communicate()
    text = output.decode(errors="replace")
    summary = text[text.find("FAILURES") :] if "FAILURES" in text else text
    assert proc.returncode == 0, summary[:8000]
