"""Hardening of the HTTP surface (issue 14; SPEC §3.5, §18, §21.4, §24.1, §27 item 9).

No input yields a 500, whatever path parameter or body it arrives in; the sandbox endpoints answer only local
clients that addressed them as local; refused configurations do not start; the public limit is enforced per IP.
One sandbox runtime serves the module (real PostgreSQL, simulator, hikari); the app-level tests run the real
aiohttp application on a real socket without a database, where the database plays no part in what is checked.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from synapse_async.api.app import build_app
from synapse_async.api.dbgate import HttpDatabaseGate
from synapse_async.components import Components, Lifecycle
from synapse_async.config import load_config
from synapse_async.runtime import Runtime, StartupError
from tests.pipeline_support import ALICE, GUILD
from tests.support import running

# Ids that `str.isdigit()` accepted and `int()` then refused (a 500), or that are not Discord ids at all.
BAD_IDS = ["²", "١٢٣", "1" * 5000, "9" * 21, "99999999999999999999", str(2**63), "0", "-5", "1e5", "%20"]


@pytest.fixture(scope="module")
async def runtime(fresh_database: str) -> AsyncIterator[Runtime]:
    # The admin mutation limit runs before validation (§21.3): this module probes validation with hundreds of writes.
    async with running(fresh_database, PUBLIC_RATE_LIMIT_PER_MINUTE="0", ADMIN_RATE_LIMIT_PER_MINUTE="100000") as rt:
        yield rt


def _base(rt: Runtime) -> str:
    return f"http://127.0.0.1:{rt.http_port}"


async def _request(method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.request(method, url, **kw) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if text else None


def _id_routes(rt: Runtime) -> list[tuple[str, str, list[str]]]:
    """Every JSON route of the running app with `*_id` path parameters: (method, template, parameter names)."""
    assert rt._runner is not None
    app = rt._runner.app
    out = []
    for route in app.router.routes():
        template = route.resource.canonical if route.resource is not None else ""
        params = re.findall(r"\{(\w+)\}", template)
        # The member pages (`/g/…`) and the console (`/admin/…`) are HTML: a bad id there is a 404 or 400 page
        # (tests/integration/test_web_http.py, test_console_*.py).
        html = template.startswith(("/g/", "/admin/"))
        if route.method != "HEAD" and any(p.endswith("_id") for p in params) and not html:
            out.append((route.method, template, params))
    return out


async def test_every_id_path_parameter_refuses_unicode_digits_and_overlong_ids(runtime: Runtime) -> None:
    routes = _id_routes(runtime)
    assert routes, "the app has routes with id parameters"
    assert runtime.api is not None  # admin routes authenticate first; a valid token reaches path validation
    token = runtime.api.codec.issue_service("hardening", [GUILD], ttl=600, now=runtime.api.now())
    auth = {"Authorization": f"Bearer {token}"}
    for method, template, params in routes:
        for bad in BAD_IDS:
            for target in params:
                path = template
                for p in params:
                    path = path.replace("{" + p + "}", bad if p == target else str(GUILD))
                status, body = await _request(method, _base(runtime) + path, json={}, headers=auth)
                assert status == 400, (method, path, status, body)
                assert body["error"]["code"] == "validation_error"
                # other path parameters hold the guild id, which a non-id one (`event_type`) refuses as well
                assert target in {d["field"] for d in body["error"]["details"]}, (method, path, body)


async def _post_message(rt: Runtime, data: bytes, content_type: str = "application/json") -> tuple[int, Any]:
    return await _request("POST", _base(rt) + "/sandbox/messages", data=data, headers={"Content-Type": content_type})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "²", "channel_id": "1"}, "user_id"),
        ({"user_id": "1" * 5000, "channel_id": "1"}, "user_id"),
        ({"user_id": str(ALICE), "channel_id": "٣"}, "channel_id"),
        ({"user_id": str(ALICE), "channel_id": "1", "reply_to": "9" * 30}, "reply_to"),
        ({"user_id": 2**64 + 1, "channel_id": "1"}, "user_id"),
    ],
)
async def test_sandbox_body_ids_are_parsed_strictly(runtime: Runtime, body: dict[str, Any], field: str) -> None:
    status, answer = await _post_message(runtime, json.dumps(body).encode())
    assert status == 400, answer
    assert answer["error"]["code"] == "validation_error"
    assert field in {d["field"] for d in answer["error"]["details"]}


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b'{"user_id": ' + b"1" * 5000 + b', "channel_id": "1"}', "application/json"),  # int() limit: 4,300 digits
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),  # RecursionError in the stdlib parser
        (b'{"user_id": "1", "channel_id": "1", "content": "\\ud800"}', "application/json"),  # lone surrogate
        (b'{"user_id": NaN, "channel_id": "1"}', "application/json"),
        (b'{"a": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}", "application/json"),
        ('{"user_id": "1", "channel_id": "1"}'.encode("utf-16"), "application/json"),
        (b'{"user_id": "1", "channel_id": "1"}', "application/json; charset=x-no-such-charset"),
        (b'{"user_id": "1", "channel_id": "1"}', "application/json; charset=latin-1"),
    ],
    ids=["huge-int", "deep-nesting", "lone-surrogate", "nan", "depth-over-32", "utf16", "unknown-charset", "latin1"],
)
async def test_hostile_bodies_are_400_never_500(runtime: Runtime, data: bytes, content_type: str) -> None:
    status, answer = await _post_message(runtime, data, content_type)
    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_json"


async def test_sandbox_refuses_a_body_that_is_not_declared_json(runtime: Runtime) -> None:
    assert runtime.simulator is not None
    before = runtime.simulator.state()
    body = json.dumps({"user_id": str(ALICE), "channel_id": str(runtime.simulator.channel_id("general"))})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        status, answer = await _post_message(runtime, body.encode(), content_type)
        assert status == 400 and answer["error"]["code"] == "invalid_json", (content_type, answer)
    assert runtime.simulator.state() == before  # nothing was injected
    status, answer = await _post_message(runtime, body.encode())
    assert status == 202, answer


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "attacker.example"},  # DNS rebinding: the page's own name, resolved to 127.0.0.1
        {"Host": "attacker.example:8080"},
        {"Host": "127.0.0.1.attacker.example"},
        {"Origin": "http://attacker.example"},
        {"X-Forwarded-For": "203.0.113.9"},  # a reverse proxy on this host
        {"Forwarded": "for=203.0.113.9"},
    ],
)
async def test_sandbox_refuses_foreign_hosts_origins_and_proxied_requests(
    runtime: Runtime, headers: dict[str, str]
) -> None:
    status, answer = await _request("GET", _base(runtime) + "/sandbox/state", headers=headers)
    assert status == 403 and answer["error"]["code"] == "forbidden", answer
    assert "guilds" not in answer
    body = {"user_id": str(ALICE), "channel_id": "1"}
    status, answer = await _request("POST", _base(runtime) + "/sandbox/messages", json=body, headers=headers)
    assert status == 403, answer


async def test_sandbox_accepts_loopback_names(runtime: Runtime) -> None:
    for host in ("localhost", f"localhost:{runtime.http_port}", "127.0.0.1", "[::1]:80", "127.5.6.7"):
        status, answer = await _request(
            "GET", _base(runtime) + "/sandbox/state", headers={"Host": host, "Origin": f"http://{host}"}
        )
        assert status == 200, (host, answer)


async def test_sandbox_refuses_a_connection_without_a_peer_address(runtime: Runtime, tmp_path: Path) -> None:
    """A Unix-socket peer has no address: it is not proof of a loopback client (it used to count as one)."""
    assert runtime._runner is not None
    path = str(tmp_path / "api.sock")
    site = web.UnixSite(runtime._runner, path)
    await site.start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as http:
            async with http.get("http://localhost/sandbox/state") as resp:
                assert resp.status == 403
            async with http.get("http://localhost/health") as resp:
                assert resp.status == 200
    finally:
        await site.stop()


# --- the application without a database ---------------------------------------------------------------------


@pytest.fixture
async def app_server(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The real aiohttp app on a real socket, configured by the test's `env` marker-free parameter."""
    env: dict[str, str] = getattr(request, "param", {})
    config = load_config({"HTTP_PORT": "0", **env})
    runner = web.AppRunner(build_app(config, Components(Lifecycle(api_open=True)), HttpDatabaseGate(1, 0.1)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "app_server", [{"DISCORD_TOKEN": "a.b.c", "JWT_SECRET": secrets.token_urlsafe(48)}], indirect=True
)
async def test_sandbox_endpoints_do_not_exist_outside_sandbox_mode(app_server: str) -> None:
    for method, path in (("GET", "/sandbox/state"), ("POST", "/sandbox/messages"), ("POST", "/sandbox/members")):
        status, answer = await _request(method, app_server + path, json={"user_id": "1", "action": "join"})
        assert status in (404, 405) and answer["error"]["code"] in ("not_found", "method_not_allowed")


@pytest.mark.parametrize("app_server", [{"PUBLIC_RATE_LIMIT_PER_MINUTE": "3"}], indirect=True)
async def test_public_rate_limit_is_enforced_per_client_ip(app_server: str) -> None:
    url = f"{app_server}/api/guilds/{GUILD}/metrics"
    async with aiohttp.ClientSession() as http:
        for remaining in (2, 1, 0):
            # A client cannot pick another bucket by claiming to be someone else: no proxy is trusted.
            async with http.get(url, headers={"X-Forwarded-For": f"198.51.100.{remaining}"}) as resp:
                assert resp.status == 503  # no database in this app: the limiter still counts the request
                assert resp.headers["X-RateLimit-Limit"] == "3"
                assert resp.headers["X-RateLimit-Remaining"] == str(remaining)
        async with http.get(url) as resp:
            assert resp.status == 429
            body = await resp.json()
            assert body["error"]["code"] == "rate_limited"
            retry_after = body["error"]["details"]["retry_after"]
            assert 1 <= retry_after <= 120 and resp.headers["Retry-After"] == str(retry_after)
        async with http.get(f"{app_server}/health") as resp:  # probes are never limited
            assert resp.status == 200


@pytest.mark.parametrize(
    "app_server", [{"PUBLIC_RATE_LIMIT_PER_MINUTE": "1", "TRUSTED_PROXIES": "127.0.0.0/8"}], indirect=True
)
async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(app_server: str) -> None:
    url = f"{app_server}/api/guilds/{GUILD}/settings"
    async with aiohttp.ClientSession() as http:
        for client in ("198.51.100.1", "198.51.100.2"):
            async with http.get(url, headers={"X-Forwarded-For": f"10.9.9.9, {client}"}) as resp:
                assert resp.status == 503 and resp.headers["X-RateLimit-Remaining"] == "0"
        async with http.get(url, headers={"X-Forwarded-For": "198.51.100.1"}) as resp:
            assert resp.status == 429


# --- refused configurations ----------------------------------------------------------------------------------


async def test_sandbox_mode_refuses_an_external_database_unless_allowed(fresh_database: str) -> None:
    rt = Runtime(load_config({"DATABASE_URL": fresh_database, "HTTP_PORT": "0"}))
    with pytest.raises(StartupError) as refused:
        await rt.start()
    assert refused.value.exit_code == 2
    assert "DATABASE_URL" in str(refused.value) and "SANDBOX_ALLOW_EXTERNAL_DATABASE" in str(refused.value)
    assert rt.http_port is None and rt.components.db is None  # refused before anything started


async def test_embedded_data_directory_of_another_major_is_refused_with_advice(tmp_path: Path) -> None:
    from synapse_async.db.embedded import server_major

    server = server_major()
    assert server is not None  # the wheel ships its headers: the check can never silently do nothing
    data_dir = tmp_path / "pg"
    data_dir.mkdir()
    older = str(int(server) - 2)
    (data_dir / "PG_VERSION").write_text(older + "\n", encoding="ascii")
    rt = Runtime(load_config({"EMBEDDED_PG_DIR": str(data_dir), "HTTP_PORT": "0"}))
    with pytest.raises(StartupError) as refused:
        await rt.start()
    message = str(refused.value)
    assert refused.value.exit_code == 2
    assert f"PostgreSQL {older} data directory" in message and f"PostgreSQL {server}" in message
    assert "EMBEDDED_PG_DIR" in message and "pg_dumpall" in message
    assert sorted(p.name for p in data_dir.iterdir()) == ["PG_VERSION"]  # nothing was touched
