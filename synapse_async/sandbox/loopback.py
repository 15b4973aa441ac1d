"""What counts as "this machine" for the sandbox's unauthenticated pages (SPEC §3.5).

Shared by the simulator's OAuth page and the app's `/sandbox/*` control endpoints, so both refuse the same
things: a `Host` (or `Origin`) naming anything but localhost or a loopback address (DNS rebinding: a web page
whose own name resolves to 127.0.0.1), and a socket peer that is not a loopback address.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from synapse_async.domain.peers import transport_peer

_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def is_loopback_host(host: str) -> bool:
    """`localhost`, `127.0.0.0/8` or `::1` (with or without a port), as in a `Host` header or an origin."""
    if host.startswith("["):
        name = host[1:].partition("]")[0]
    else:
        name = host.rpartition(":")[0] if host.count(":") == 1 else host
    if name.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def peer_is_loopback(request: web.Request) -> bool:
    """Whether the socket peer is a loopback address (a Unix socket or a closed transport is not)."""
    address = transport_peer(request.transport)
    return address is not None and address.is_loopback
