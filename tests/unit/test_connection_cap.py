"""The per-address connection count behind `HTTP_MAX_CONNECTIONS_PER_IP` (api/serving.py), without sockets."""

from __future__ import annotations

import ipaddress

from synapse_async.api.serving import ConnectionCap


def test_each_address_has_its_own_count_and_released_slots_come_back() -> None:
    cap = ConnectionCap(2)
    assert cap.admit("198.51.100.1") and cap.admit("198.51.100.1")
    assert not cap.admit("198.51.100.1")  # the third is refused and not counted
    assert cap.admit("198.51.100.2")
    cap.release("198.51.100.1")
    assert cap.admit("198.51.100.1") and not cap.admit("198.51.100.1")
    cap.release("198.51.100.2")
    assert "198.51.100.2" not in cap.open  # no entry kept for an address with nothing open


def test_trusted_proxies_and_peers_without_an_address_are_not_capped() -> None:
    cap = ConnectionCap(1, [ipaddress.ip_network("10.0.0.0/8")])
    assert all(cap.admit("10.1.2.3") for _ in range(5))
    assert all(cap.admit(None) for _ in range(5))
    assert cap.open == {}
    cap.release("10.1.2.3")  # releasing what was never counted changes nothing
    assert cap.open == {}
