"""`/ready` 200 means every route answers (SPEC §24.2, §3.2 steps 4–10).

A fresh process is polled on `/ready` as fast as the loop allows while it starts; the instant `/ready` says 200,
several endpoints (the OpenAPI document, public metrics, the admin guild list with a service token, a public
settings read) are asked at once: none may answer 503 "starting up". Several fresh starts are made, because the
window between "all checks pass" and "the API is open" is short and the first start of a process differs from
later ones (imports, the simulator's first boot).
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from synapse_async.sandbox import SANDBOX_GUILD_ID
from tests.support import make_runtime, wait_for

STARTS = 4


async def _first_ready(http: aiohttp.ClientSession, url: str, startup: asyncio.Task[None]) -> dict[str, object]:
    """Poll `/ready` back to back until it is 200 (or startup failed); its body then."""
    while True:
        if startup.done():
            startup.result()  # a startup error fails the test with its own message
        async with http.get(url + "/ready") as resp:
            if resp.status == 200:
                body: dict[str, object] = await resp.json()
                return body
            assert resp.status == 503, resp.status


@pytest.mark.parametrize("start", range(STARTS))
async def test_every_route_answers_the_instant_ready_is_200(fresh_database: str, start: int) -> None:
    rt = make_runtime(fresh_database, PUBLIC_RATE_LIMIT_PER_MINUTE="0")
    startup = asyncio.create_task(rt.start())
    try:
        await wait_for(lambda: (rt.http_port is not None and rt.api is not None) or startup.done(), interval=0.001)
        assert rt.api is not None and rt.http_port is not None, "the HTTP server starts first (SPEC §3.2 step 4)"
        url = f"http://127.0.0.1:{rt.http_port}"
        token = rt.api.codec.issue_service("ready", [SANDBOX_GUILD_ID], ttl=600, now=rt.api.now())
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            assert await _first_ready(http, url, startup) == {"ready": True}

            async def ask(path: str, **headers: str) -> tuple[str, int, str]:
                async with http.get(url + path, headers=headers) as resp:
                    return path, resp.status, await resp.text()

            answers = await asyncio.gather(
                ask("/api/openapi.json"),
                ask(f"/api/guilds/{SANDBOX_GUILD_ID}/metrics"),
                ask(f"/api/guilds/{SANDBOX_GUILD_ID}/settings"),
                ask("/api/admin/guilds", Authorization=f"Bearer {token}"),
            )
        starting = [(path, body[:200]) for path, status, body in answers if status == 503]
        assert not starting, f"start {start}: 503 right after /ready said 200: {starting}"
        statuses = {path: status for path, status, _ in answers}
        assert statuses["/api/openapi.json"] == 200 and statuses["/api/admin/guilds"] == 200, statuses
        await startup
    finally:
        if not startup.done():
            startup.cancel()
            await asyncio.gather(startup, return_exceptions=True)
        await rt.shutdown()
