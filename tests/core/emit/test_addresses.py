"""Address assignment: per flow and host, from the given subnets, deterministic per seed."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from netdiffusion import Traffic
from netdiffusion.emit import assign_addresses
from netdiffusion.emit._synth import random_traffic, synthetic_traffic


def _u32(cols: np.ndarray) -> np.ndarray:
    return cols.astype(np.uint32) @ np.array([1 << 24, 1 << 16, 1 << 8, 1], np.uint32)


def _flow_hosts(t: Traffic) -> tuple[np.ndarray, np.ndarray]:
    """(client, server) per flow, asserting every packet of the flow agrees."""
    src, dst = _u32(t.ip[:, 12:16]), _u32(t.ip[:, 16:20])
    orig = t.direction == 0
    client = np.where(orig, src, dst)
    server = np.where(orig, dst, src)
    c = np.full(t.n_flows, -1, np.int64)
    s = np.full(t.n_flows, -1, np.int64)
    c[t.flow] = client
    s[t.flow] = server
    assert np.array_equal(c[t.flow], client) and np.array_equal(s[t.flow], server)
    return c, s


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    return random_traffic(4000, seed=1)


def test_consistent_per_flow_and_within_subnets(traffic: Traffic) -> None:
    t = assign_addresses(traffic, client_net="192.168.8.0/24", server_net="203.0.113.0/24")
    c, s = _flow_hosts(t)
    cnet = ipaddress.IPv4Network("192.168.8.0/24")
    snet = ipaddress.IPv4Network("203.0.113.0/24")
    for hosts, net in ((c, cnet), (s, snet)):
        lo, hi = int(net.network_address), int(net.broadcast_address)
        assert ((hosts > lo) & (hosts < hi)).all()  # never network or broadcast address
    # Hosts are reused: a few clients per class, servers pooled per service.
    assert len(np.unique(c)) <= 3 * len(traffic.classes)
    assert len(np.unique(s)) < t.n_flows // 4
    # Each 5-tuple names one flow.
    first = np.zeros(t.n_flows, np.int64)
    first[t.flow[::-1]] = np.arange(t.n_packets)[::-1]
    l4 = t.l4[first].astype(np.int64)
    icmp = t.proto[first] == 1
    a = np.where(icmp, l4[:, 4] << 8 | l4[:, 5], l4[:, 0] << 8 | l4[:, 1])  # echo id for ICMP
    b = np.where(icmp, 0, l4[:, 2] << 8 | l4[:, 3])
    tup = np.stack([c, s, t.proto[first], a, b], 1)
    assert len(np.unique(tup, axis=0)) == t.n_flows


def test_clients_per_class_and_infrastructure_servers(traffic: Traffic) -> None:
    t = assign_addresses(traffic, seed=3)
    c, s = _flow_hosts(t)
    first = np.zeros(t.n_flows, np.int64)
    first[t.flow[::-1]] = np.arange(t.n_packets)[::-1]
    svc = np.where(t.direction[first] == 0, t.l4[first, 2], t.l4[first, 0]).astype(np.int64) << 8
    svc |= np.where(t.direction[first] == 0, t.l4[first, 3], t.l4[first, 1])
    for label in range(len(t.classes)):
        assert len(np.unique(c[t.flow_label == label])) <= 3
    dns = (svc == 53) & (t.proto[first] == 17)
    assert dns.sum() > 20 and len(np.unique(s[dns])) <= 2  # DNS servers shared by all classes
    https = svc == 443
    for label in range(len(t.classes)):
        pool = np.unique(s[https & (t.flow_label == label)])
        other = np.unique(s[https & (t.flow_label != label)])
        assert 1 <= len(pool) <= 16 and not np.isin(pool, other).any()


def test_five_tuples_are_unique_when_possible() -> None:
    t = synthetic_traffic([17] * 6, [9999] * 6, [[40]] * 6, labels=[0] * 6, classes=["a"])
    t.l4[:, 0:2] = (0x9C, 0x40)  # every flow from client port 40000: they must differ by host
    t = assign_addresses(t, clients_per_class=8)
    c, s = _flow_hosts(t)
    assert len(set(zip(c.tolist(), s.tolist(), strict=True))) == 6


def test_deterministic_per_seed(traffic: Traffic) -> None:
    a = assign_addresses(traffic, seed=11)
    b = assign_addresses(traffic, seed=11)
    assert np.array_equal(a.ip, b.ip)
    other = assign_addresses(traffic, seed=12)
    assert not np.array_equal(a.ip, other.ip)
    # Only the address fields change.
    kept = np.s_[12:20]
    assert np.array_equal(np.delete(a.ip, kept, axis=1), np.delete(traffic.ip, kept, axis=1))


def test_packets_outside_flows_are_untouched() -> None:
    t = synthetic_traffic([17], [53], [[40, 40]])
    t.flow[1] = -1
    t.ip[1, 12:20] = 7
    out = assign_addresses(t)
    assert (out.ip[1, 12:20] == 7).all() and out.ip[0, 12:20].any()


@pytest.mark.parametrize(
    ("client", "server", "msg"),
    [
        ("10.0.0.0/33", "198.18.0.0/15", "client_net: '10.0.0.0/33' is not an IPv4 subnet"),
        ("10.0.0.1/24", "198.18.0.0/15", "has host bits set"),
        ("bogus", "198.18.0.0/15", "client_net: 'bogus'"),
        ("10.0.0.0/31", "198.18.0.0/15", "too small"),
        ("10.0.0.0/16", "10.0.5.0/24", "overlap"),
        ("10.0.0.0/16", "fe80::/64", "server_net"),
    ],
)
def test_bad_subnets_are_one_line_errors(client: str, server: str, msg: str) -> None:
    t = synthetic_traffic([17], [53], [[40]])
    with pytest.raises(ValueError, match=msg) as exc:
        assign_addresses(t, client_net=client, server_net=server)
    assert "\n" not in str(exc.value)


def test_empty_traffic() -> None:
    assert assign_addresses(Traffic.empty()).n_packets == 0
