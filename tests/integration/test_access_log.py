"""The HTTP access log (SPEC §24.3): principal and client IP, with `TRUSTED_PROXIES` honoured for the latter.

Requests go over real loopback HTTP to the real aiohttp application; the log is the real JSON pipeline writing
into a StringIO.
"""

from __future__ import annotations

import io
import ipaddress
import json
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from synapse_async.api.app import build_app
from synapse_async.api.dbgate import HttpDatabaseGate
from synapse_async.api.middleware import PRINCIPAL, request_context
from synapse_async.components import Components, Lifecycle
from synapse_async.config import load_config
from synapse_async.obs import clear_context, configure_logging, reset_logging

NETS = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=stream)
    clear_context()
    yield stream
    clear_context()
    reset_logging()


def _access_lines(stream: io.StringIO) -> list[dict[str, object]]:
    entries = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [e for e in entries if e.get("event") == "http_request"]


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[TestServer]:
    app: web.Application = request.param
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    yield srv
    await srv.close()


async def _whoami(request: web.Request) -> web.Response:
    request[PRINCIPAL] = "svc:ci"  # what authentication does once it has identified the caller
    return web.json_response({"ok": True})


def _authenticated_app() -> web.Application:
    app = web.Application(middlewares=[request_context(NETS)])
    app.router.add_get("/api/guilds/{guild_id}/whoami", _whoami)
    return app


@pytest.mark.parametrize("server", [_authenticated_app()], indirect=True)
async def test_the_access_log_records_principal_route_and_forwarded_client(
    server: TestServer, log_stream: io.StringIO
) -> None:
    async with aiohttp.ClientSession() as http:
        url = server.make_url("/api/guilds/1/whoami")
        async with http.get(url, headers={"X-Forwarded-For": "198.51.100.7", "X-Request-ID": "req-1"}) as resp:
            assert resp.status == 200
    (line,) = _access_lines(log_stream)
    assert line["principal"] == "svc:ci" and line["client_ip"] == "198.51.100.7"
    assert (line["route"], line["status"], line["request_id"]) == ("/api/guilds/{guild_id}/whoami", 200, "req-1")


def _product_app() -> web.Application:
    config = load_config({"TRUSTED_PROXIES": "127.0.0.1/32", "HTTP_PORT": "0"})
    return build_app(config, Components(Lifecycle()), HttpDatabaseGate(1, 0.1))


@pytest.mark.parametrize("server", [_product_app()], indirect=True)
async def test_the_application_uses_trusted_proxies_and_logs_anonymous_callers(
    server: TestServer, log_stream: io.StringIO
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(server.make_url("/nowhere"), headers={"X-Forwarded-For": "198.51.100.8"}) as resp:
            assert resp.status == 404
    (line,) = _access_lines(log_stream)
    assert line["client_ip"] == "198.51.100.8" and line["principal"] is None
