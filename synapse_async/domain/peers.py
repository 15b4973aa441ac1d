"""The IP address of a connection's socket peer: one rule for the rate limits, the per-address connection cap and
the sandbox's loopback checks.

Pure (it reads what the transport reports, nothing else): the peer comes from the socket, never from a header;
a Unix socket or a closed transport has none; an IPv6 zone is dropped; an IPv4-mapped IPv6 address is the IPv4
address, so one client is counted and judged once whichever way its connection arrived.
"""

from __future__ import annotations

import ipaddress
from typing import Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class HasPeer(Protocol):
    """What an asyncio transport offers (`get_extra_info("peername")`)."""

    def get_extra_info(self, name: str, default: object = None) -> object:
        """The transport's extra information by name."""
        ...


def transport_peer(transport: HasPeer | None) -> IPAddress | None:
    """The socket peer's IP address, or None when there is none."""
    peer = transport.get_extra_info("peername") if transport is not None else None
    if not isinstance(peer, tuple | list) or not peer or not isinstance(peer[0], str):
        return None
    try:
        address = ipaddress.ip_address(peer[0].split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
