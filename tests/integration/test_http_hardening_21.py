"""Issue 21 item 6 (the HTTP parts), over the real server: slow and hoarding clients, private answers never
cached, out-of-range query times, the simulated OAuth page (SPEC §3.5, §18, §21.1).

A "tight" runtime (real PostgreSQL, simulator, hikari) runs with short HTTP deadlines and a small per-address
connection cap, so each bound is observed by its effect (the 408, the closed or refused connection), never by
measuring time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest

from synapse_async.runtime import Runtime
from synapse_async.sandbox import SANDBOX_GUILD_ID
from tests.api_support import base, call
from tests.support import running, wait_for

GUILD = SANDBOX_GUILD_ID
SETTINGS = f"/api/admin/guilds/{GUILD}/settings"
CAP = 3
READ_TIMEOUT = 30.0  # only a guard against a hanging test; nothing is asserted about time


@pytest.fixture(scope="module")
async def runtime(fresh_database: str) -> AsyncIterator[Runtime]:
    async with running(
        fresh_database,
        PUBLIC_RATE_LIMIT_PER_MINUTE="0",
        HTTP_BODY_TIMEOUT_SECONDS="0.3",
        HTTP_IDLE_TIMEOUT_SECONDS="0.5",
        HTTP_MAX_CONNECTIONS_PER_IP=str(CAP),
    ) as rt:
        yield rt


def _service_token(rt: Runtime) -> str:
    assert rt.api is not None
    return rt.api.codec.issue_service("hardening", [GUILD], ttl=600, now=int(time.time()))


async def _open(rt: Runtime) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", rt.http_port)


def _status_and_body(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


# --- slow clients -----------------------------------------------------------------------------------------------


async def test_a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_is_closed(runtime: Runtime) -> None:
    reader, writer = await _open(runtime)
    head = (
        f"PATCH {SETTINGS} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {_service_token(runtime)}\r\n"
        "Content-Type: application/json\r\nContent-Length: 64\r\n\r\n"
    )
    writer.write(head.encode() + b'{"values": ')  # and then nothing more
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), READ_TIMEOUT)  # read() returns at EOF: the server closed
    writer.close()
    status, body = _status_and_body(raw)
    assert status == 408 and body["error"]["code"] == "request_timeout"  # type: ignore[index]
    assert b"Connection: close" in raw


async def test_an_idle_connection_is_closed(runtime: Runtime) -> None:
    reader, writer = await _open(runtime)  # never sends a request
    assert await asyncio.wait_for(reader.read(), READ_TIMEOUT) == b""
    writer.close()


async def test_connections_past_the_per_address_cap_are_refused(runtime: Runtime) -> None:
    held = []
    for _ in range(CAP):
        reader, writer = await _open(runtime)
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # served: the connection is in use
        await writer.drain()
        assert (await asyncio.wait_for(reader.readline(), READ_TIMEOUT)).startswith(b"HTTP/1.1 200")
        held.append(writer)
    reader, writer = await _open(runtime)
    raw = await asyncio.wait_for(reader.read(), READ_TIMEOUT)
    writer.close()
    status, body = _status_and_body(raw)
    assert status == 503 and body["error"]["code"] == "unavailable"  # type: ignore[index]
    for writer in held:
        writer.close()

    async def admitted_again() -> bool:
        reply = await call("GET", base(runtime) + "/health")
        return reply.status == 200

    await wait_for(admitted_again)  # closing frees the slots


# --- private answers ----------------------------------------------------------------------------------------------


async def test_authenticated_and_auth_flow_responses_are_not_stored(runtime: Runtime) -> None:
    bearer = {"Authorization": f"Bearer {_service_token(runtime)}"}
    ok = await call("GET", base(runtime) + SETTINGS, headers=bearer)
    other = await call("GET", base(runtime) + f"/api/admin/guilds/{GUILD + 1}/settings", headers=bearer)
    me = await call("GET", base(runtime) + "/api/auth/me", headers=bearer)
    anonymous = await call("GET", base(runtime) + SETTINGS)
    login = await call("GET", base(runtime) + "/api/auth/login")
    assert ok.status == 200 and other.status in (403, 404) and me.status == 200
    assert anonymous.status == 401 and login.status == 302
    for reply in (ok, other, me, anonymous, login):
        assert reply.headers["Cache-Control"] == "no-store"
    public = await call("GET", base(runtime) + f"/api/guilds/{GUILD}/seasons")
    assert public.headers["Cache-Control"] == "public, max-age=10"


# --- query times ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [f"/api/admin/guilds/{GUILD}/audit", f"/api/admin/guilds/{GUILD}/event-lake/events"])
@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
async def test_times_outside_the_representable_range_are_400(runtime: Runtime, path: str, moment: str) -> None:
    bearer = {"Authorization": f"Bearer {_service_token(runtime)}"}
    for name in ("since", "until"):
        reply = await call("GET", base(runtime) + path, headers=bearer, params={name: moment})
        assert reply.status == 400, (name, reply.body)
        assert reply.body["error"]["details"][0]["field"] == name
    edge = await call("GET", base(runtime) + path, headers=bearer, params={"since": "9999-12-31T23:59:59Z"})
    assert edge.status == 200, edge.body


# --- the simulated OAuth page -------------------------------------------------------------------------------------


async def test_the_simulated_authorize_page_answers_only_loopback_and_the_registered_redirect(
    runtime: Runtime,
) -> None:
    sim = runtime.simulator
    assert sim is not None and runtime.api is not None and runtime.api.oauth is not None
    registered = runtime.api.oauth.redirect_uri

    def url(redirect: str) -> str:
        query = {"response_type": "code", "client_id": str(sim.client_id), "redirect_uri": redirect, "state": "s"}
        return f"{sim.oauth_url}/authorize?{urlencode(query)}"

    approved = await call("GET", url(registered))
    assert approved.status == 302 and approved.headers["Location"].startswith(registered + "?code=")
    for foreign in ("attacker.example", "127.0.0.1.attacker.example:80"):
        refused = await call("GET", url(registered), headers={"Host": foreign})
        assert refused.status == 403, foreign
    for redirect in ("https://attacker.example/api/auth/callback", f"{base(runtime)}/elsewhere"):
        refused = await call("GET", url(redirect))
        assert refused.status == 400 and "redirect_uri" in refused.body, redirect
