"""The socket peer rule shared by rate limits, the connection cap and the sandbox's loopback checks."""

from __future__ import annotations

import ipaddress

import pytest

from synapse_async.domain.peers import transport_peer


class _Transport:
    def __init__(self, peername: object) -> None:
        self.peername = peername

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.peername if name == "peername" else default


@pytest.mark.parametrize(
    ("peername", "expected"),
    [
        (("203.0.113.7", 5000), "203.0.113.7"),
        (("::ffff:127.0.0.1", 5000, 0, 0), "127.0.0.1"),  # IPv4-mapped: one client, one address
        (("fe80::1%eth0", 5000, 0, 2), "fe80::1"),  # the zone is dropped
        (("::1", 5000, 0, 0), "::1"),
        ("/run/app.sock", None),  # a Unix socket has no IP peer
        (None, None),  # a closed transport
        (("not-an-ip", 1), None),
    ],
)
def test_peer_address(peername: object, expected: str | None) -> None:
    got = transport_peer(_Transport(peername))
    assert got == (None if expected is None else ipaddress.ip_address(expected))


def test_no_transport() -> None:
    assert transport_peer(None) is None
