"""IPv4 addresses for generated traffic, assigned per flow and host from user-chosen subnets.

The model never learns addresses (privacy). :func:`assign_addresses` gives each flow's originator
a client address from ``client_net`` and its responder a server address from ``server_net``, and
writes them into every packet's source/destination fields according to ``direction``. Hosts are
reused the way a small network reuses them:

- clients: ``clients_per_class`` hosts per traffic class (a class is a device or application
  type); each flow of the class picks one of them;
- servers: keyed by transport protocol and service port (the responder's port). Shared
  infrastructure ports (DNS, NTP, DHCP, mDNS, LLMNR, SSDP) get at most two servers for all classes;
  every other service gets its own pool per class, of about ``sqrt(flows)`` hosts (at most 16).

Hosts are distinct addresses drawn from the subnet (never its network or broadcast address),
and everything is a function of ``seed`` and the flows, so the same input and seed give the same
addresses. When two flows would share a whole 5-tuple, the later one moves to another client of
its class where one is free. Checksums are not updated: run ``fill_checksums`` afterwards.
Packets outside any flow (``flow == -1``) are left unchanged.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import PROTO_TCP, PROTO_UDP, Traffic

__all__ = ["INFRA_PORTS", "assign_addresses", "parse_subnet"]

#: Service ports whose servers are shared by every class (a network has one or two of each).
INFRA_PORTS = frozenset({53, 67, 68, 123, 137, 5353, 5355, 1900})
_MAX_INFRA_SERVERS = 2
_MAX_SERVERS = 16

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64 finaliser: a fixed, well-spread 64-bit hash, elementwise."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, np.uint64) + _GOLD
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def _hash(seed: int, salt: int, *cols: NDArray[np.integer]) -> NDArray[np.uint64]:
    """Hash of integer columns, keyed by ``seed`` and a per-use ``salt``."""
    with np.errstate(over="ignore"):
        h = _mix(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) ^ (np.uint64(salt) * _GOLD))
        for c in cols:
            h = _mix(h ^ np.asarray(c).astype(np.int64).view(np.uint64))
        return np.asarray(h, np.uint64)


def parse_subnet(text: str, what: str) -> tuple[int, int]:
    """``(network address, usable host count)`` of an IPv4 subnet; one-line ValueError if bad.

    At least two usable hosts are required (prefix length 30 or shorter); host bits must be zero.
    """
    try:
        net = ipaddress.IPv4Network(str(text), strict=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what}: {text!r} is not an IPv4 subnet ({exc})") from None
    if net.prefixlen > 30:
        raise ValueError(f"{what}: {text!r} is too small; use a prefix of /30 or shorter")
    return int(net.network_address), net.num_addresses - 2


def _distinct_hosts(rng: np.random.Generator, n_hosts: int, k: int) -> NDArray[np.int64]:
    """``k`` host numbers in ``1..n_hosts``, distinct while the subnet has room."""
    if k == 0:
        return np.zeros(0, np.int64)
    if k <= n_hosts:
        return rng.choice(n_hosts, size=k, replace=False).astype(np.int64) + 1
    return (rng.permutation(k) % n_hosts).astype(np.int64) + 1


def _first_packet(flow: NDArray[np.int64], n_flows: int) -> NDArray[np.int64]:
    """Index of each flow's first packet (``-1`` for flows with no packet)."""
    first = np.full(n_flows, -1, np.int64)
    idx = np.flatnonzero(flow >= 0)
    first[flow[idx[::-1]]] = idx[::-1]  # the last write, i.e. the earliest packet, wins
    return first


def assign_addresses(
    traffic: Traffic,
    *,
    client_net: str = "10.0.0.0/16",
    server_net: str = "198.18.0.0/15",
    seed: int = 0,
    clients_per_class: int = 3,
) -> Traffic:
    """A copy of ``traffic`` with source/destination IPv4 addresses assigned per flow and host.

    Raises ValueError (one line) for a malformed, too small or overlapping subnet.
    """
    c_base, c_hosts = parse_subnet(client_net, "client_net")
    s_base, s_hosts = parse_subnet(server_net, "server_net")
    c_net = ipaddress.IPv4Network(client_net)
    s_net = ipaddress.IPv4Network(server_net)
    if c_net.overlaps(s_net):
        raise ValueError(f"client_net {client_net} and server_net {server_net} overlap")
    if clients_per_class < 1:
        raise ValueError(f"clients_per_class must be at least 1, not {clients_per_class}")
    flow = traffic.flow
    n = traffic.n_packets
    n_flows = max(traffic.n_flows, int(flow.max()) + 1 if n else 0)
    if n == 0 or n_flows == 0:
        return traffic.copy()

    first = _first_packet(flow, n_flows)
    present = first >= 0
    f0 = np.where(present, first, 0)
    proto = traffic.ip[f0, 9].astype(np.int64)
    ported = (proto == PROTO_TCP) | (proto == PROTO_UDP)
    l4 = traffic.l4[f0]
    sport = l4[:, 0].astype(np.int64) << 8 | l4[:, 1]
    dport = l4[:, 2].astype(np.int64) << 8 | l4[:, 3]
    from_resp = traffic.direction[f0] == 1
    service = np.where(ported, np.where(from_resp, sport, dport), 0)
    icmp_id = l4[:, 4].astype(np.int64) << 8 | l4[:, 5]  # tells ICMP echo exchanges apart
    cport = np.where(ported, np.where(from_resp, dport, sport), icmp_id)
    labels = np.full(n_flows, -1, np.int64)
    labels[: traffic.n_flows] = traffic.flow_label
    fid = np.arange(n_flows, dtype=np.int64)

    # Clients: a few per class.
    k = clients_per_class
    cls_vals, cls_idx = np.unique(labels, return_inverse=True)
    slot = (_hash(seed, 1, fid) % np.uint64(k)).astype(np.int64)
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 0x6E64])
    client_hosts = _distinct_hosts(rng, c_hosts, len(cls_vals) * k)

    # Servers: keyed by (protocol, service port), and by class unless infrastructure.
    infra = ported & np.isin(service, np.array(sorted(INFRA_PORTS)))
    key_cls = np.where(infra, -2, labels)
    keys = np.stack([proto, service, key_cls], axis=1)
    _, key_idx, key_count = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    key_idx = key_idx.reshape(-1)
    key_infra = np.zeros(len(key_count), np.bool_)
    key_infra[key_idx] = infra
    pool = np.clip(np.ceil(np.sqrt(key_count)).astype(np.int64), 1, _MAX_SERVERS)
    pool = np.where(key_infra, np.minimum(pool, _MAX_INFRA_SERVERS), pool)
    pool_base = np.cumsum(pool) - pool
    pick = (_hash(seed, 2, fid) % pool[key_idx].astype(np.uint64)).astype(np.int64)
    server_hosts = _distinct_hosts(rng, s_hosts, int(pool.sum()))
    server = s_base + server_hosts[pool_base[key_idx] + pick]

    # Clients, moving a flow whose whole 5-tuple repeats an earlier flow's to another slot.
    for _ in range(k):
        client = c_base + client_hosts[cls_idx * k + slot]
        tup = np.stack([client, server, proto, cport, service], axis=1)
        _, inv = np.unique(tup, axis=0, return_inverse=True)
        order = np.argsort(inv.reshape(-1), kind="stable")
        sorted_inv = inv.reshape(-1)[order]
        dup = np.zeros(n_flows, np.bool_)
        dup[order[1:]] = sorted_inv[1:] == sorted_inv[:-1]
        dup &= present
        if not dup.any():
            break
        slot = np.where(dup, (slot + 1) % k, slot)
    client = c_base + client_hosts[cls_idx * k + slot]

    # Broadcast per packet.
    in_flow = flow >= 0
    pf = np.where(in_flow, flow, 0)
    pdir = traffic.direction
    src = np.where(pdir == 0, client[pf], server[pf]).astype(">u4")
    dst = np.where(pdir == 0, server[pf], client[pf]).astype(">u4")
    ip = traffic.ip.copy()
    rows = np.flatnonzero(in_flow)
    ip[rows, 12:16] = src[rows].view(np.uint8).reshape(-1, 4)
    ip[rows, 16:20] = dst[rows].view(np.uint8).reshape(-1, 4)
    return replace(traffic.copy(), ip=ip)
