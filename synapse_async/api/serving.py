"""The listening socket of the HTTP server, guarded against clients that hold connections (issue 21 item 6).

aiohttp on its own lets one address open as many connections as it likes and keeps an idle one for an hour
(`keepalive_timeout` 3630 s). Three bounds apply here, each configured (`HTTP_*`, SPEC §4):

- a per-address cap on open connections (`HTTP_MAX_CONNECTIONS_PER_IP`): the connection past it gets a short
  `503` and is closed at once, before aiohttp sees it. Peers in `TRUSTED_PROXIES` are exempt: behind a reverse
  proxy every connection comes from the proxy, which enforces the per-client limits itself (`docs/deploy.md`);
- an idle deadline (`HTTP_IDLE_TIMEOUT_SECONDS`), aiohttp's keep-alive timeout, which also closes a connection
  that never sends a request;
- a body deadline (`HTTP_BODY_TIMEOUT_SECONDS`), applied where the API reads a body (`api/contract.py`): 408 and
  the connection closed.

The cap wraps aiohttp's protocol object instead of patching aiohttp: the wrapper counts the connection when it is
made and when it is lost, and forwards every protocol call unchanged.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Final

from aiohttp import web
from typing_extensions import override

from synapse_async.api.clients import Network
from synapse_async.domain.peers import transport_peer
from synapse_async.obs.logging import get_logger

log = get_logger("synapse_async.http")

_REFUSAL_BODY: Final = (
    b'{"error":{"code":"unavailable","message":"Too many connections from this address.","details":null}}'
)
_REFUSAL: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    + f"Content-Length: {len(_REFUSAL_BODY)}\r\n\r\n".encode()
    + _REFUSAL_BODY
)


def _address(transport: asyncio.BaseTransport) -> str | None:
    """The peer's IP as text (IPv4-mapped IPv6 as plain IPv4, so one client has one count), None without one."""
    address = transport_peer(transport)
    return None if address is None else str(address)


class ConnectionCap:
    """Open connections per peer address; `admit` counts one in (False past the cap), `release` counts it out."""

    def __init__(self, per_address: int, exempt: Sequence[Network] = ()) -> None:
        self.per_address = per_address
        self._exempt = tuple(exempt)
        self.open: Counter[str] = Counter()

    def _is_exempt(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._exempt)

    def admit(self, address: str | None) -> bool:
        if address is None or self._is_exempt(address):
            return True
        if self.open[address] >= self.per_address:
            return False
        self.open[address] += 1
        return True

    def release(self, address: str | None) -> None:
        if address is None or address not in self.open:
            return
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]


class _CappedProtocol(asyncio.Protocol):
    """aiohttp's request handler behind the cap: refused connections never reach it."""

    __slots__ = ("_address", "_admitted", "_cap", "_inner")

    def __init__(self, inner: asyncio.Protocol, cap: ConnectionCap) -> None:
        self._inner = inner
        self._cap = cap
        self._address: str | None = None
        self._admitted = False

    @override
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._address = _address(transport)
        if not self._cap.admit(self._address):
            log.warning("http_connection_refused", client_ip=self._address, reason="per_ip_cap")
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(_REFUSAL)
            transport.close()
            return
        self._admitted = True
        self._inner.connection_made(transport)

    @override
    def connection_lost(self, exc: Exception | None) -> None:
        if self._admitted:
            self._cap.release(self._address)
            self._inner.connection_lost(exc)

    @override
    def data_received(self, data: bytes) -> None:
        if self._admitted:
            self._inner.data_received(data)

    @override
    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    @override
    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    @override
    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()


class CappedSite(web.BaseSite):
    """A TCP site whose connections pass the per-address cap before aiohttp handles them."""

    __slots__ = ("_cap", "_host", "_port")

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, cap: ConnectionCap, *, shutdown_timeout: float = 60.0
    ) -> None:
        super().__init__(runner, shutdown_timeout=shutdown_timeout)
        self._host = host
        self._port = port
        self._cap = cap

    @property
    @override
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    @override
    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        factory: Callable[[], asyncio.Protocol] = lambda: _CappedProtocol(server(), self._cap)  # noqa: E731
        self._server = await asyncio.get_running_loop().create_server(factory, self._host, self._port)
