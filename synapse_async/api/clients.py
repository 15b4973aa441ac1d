"""Who is calling: the TCP peer, and the client IP behind trusted proxies (SPEC §4 `TRUSTED_PROXIES`, §21.4).

The peer comes from the socket itself, never from `request.remote` (which a middleware may have rewritten) or a
header. `X-Forwarded-For` is believed only when the peer is one of `TRUSTED_PROXIES`, and then only as far as the
chain stays inside them: the right-most address that is not a trusted proxy is the client, so a client cannot
choose its own rate-limit bucket by sending the header itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

from synapse_async.domain.peers import IPAddress, transport_peer

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def peer_address(request: web.Request) -> IPAddress | None:
    """The socket peer's IP address, or None when there is none (a Unix socket, a closed transport)."""
    return transport_peer(request.transport)


def _trusted(address: IPAddress, proxies: Sequence[Network]) -> bool:
    return any(address in net for net in proxies)


def client_ip(request: web.Request, proxies: Sequence[Network]) -> str:
    """The client's IP for rate limits and the access log ("unknown" without a peer address)."""
    peer = peer_address(request)
    if peer is None:
        return "unknown"
    if not proxies or not _trusted(peer, proxies):
        return str(peer)
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
    client = peer
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            break  # a malformed entry: stop at the last address we could verify
        client = address
        if not _trusted(address, proxies):
            break
    return str(client)
