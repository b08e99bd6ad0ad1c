"""Flow identities: a 64-bit fingerprint of what the generator learns of a flow.

A flow's identity is the sequence, over its packets in time order, of (direction, IP protocol,
IPv4 total length, TOS, TTL, flags and fragment offset word, TCP flags, TCP window, TCP data
offset, ICMP type and code, and the gap since the flow's previous packet in whole microseconds,
the resolution of a pcap record) plus the flow's service port (the responder's port; none for
ICMP) and packet count. Left out, because the generator does not learn them or repair
re-derives them: IPv4 addresses, the client port, IP ID, checksums, TCP sequence and
acknowledgement numbers, TCP option contents (timestamps) and payload bytes.

Two flows with equal identities are exact copies of each other: the evaluation suite counts
generated flows whose identity is a training flow's (``privacy.exact_copies``), and a model
directory keeps the identities of its one-off training flows so that generation never emits
one (:mod:`netdiffusion.model.copies`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import PROTO_ICMP, PROTO_TCP, Traffic

__all__ = ["flow_identity"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """A 64-bit finaliser (splitmix64): every input bit moves every output bit."""
    with np.errstate(over="ignore"):
        x = x.astype(np.uint64)
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def _combine(h: NDArray[np.uint64], v: NDArray[np.integer]) -> NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        return _mix(h * np.uint64(0x100000001B3) + np.asarray(v).astype(np.uint64))


def flow_identity(t: Traffic, *, timing: bool = True) -> NDArray[np.uint64]:
    """A 64-bit identity per flow (see the module docstring); equal flows, equal identities.
    ``timing=False``: header fields only (the gaps left out)."""
    keep = np.flatnonzero(t.flow >= 0)
    order = keep[np.lexsort((keep, t.ts_ns[keep], t.flow[keep]))]
    flow = t.flow[order]
    ip, l4 = t.ip[order], t.l4[order]
    proto = ip[:, 9]
    tcp = proto == PROTO_TCP
    icmp = proto == PROTO_ICMP
    d = t.direction[order].astype(np.int64)
    ts = t.ts_ns[order].astype(np.int64)
    gap_us = np.zeros(len(order), np.int64)
    if timing and len(order) > 1:
        same = flow[1:] == flow[:-1]
        gap_us[1:] = np.where(same, (ts[1:] - ts[:-1] + 500) // 1000, 0)
    h = np.zeros(len(order), np.uint64)
    for col in (
        gap_us,
        d,
        proto,
        (ip[:, 2].astype(np.int64) << 8) | ip[:, 3],
        ip[:, 1],
        ip[:, 8],
        (ip[:, 6].astype(np.int64) << 8) | ip[:, 7],
        np.where(tcp, l4[:, 13], 0),
        np.where(tcp, (l4[:, 14].astype(np.int64) << 8) | l4[:, 15], 0),
        np.where(tcp, l4[:, 12] >> 4, 0),
        np.where(icmp, (l4[:, 0].astype(np.int64) << 8) | l4[:, 1], 0),
    ):
        h = _combine(h, col)
    start = np.ones(len(order), np.bool_)
    start[1:] = flow[1:] != flow[:-1]
    first = np.maximum.accumulate(np.where(start, np.arange(len(order)), 0))
    rank = (np.arange(len(order)) - first).astype(np.uint64)
    with np.errstate(over="ignore"):
        per_packet = _mix(h ^ _mix(rank + np.uint64(1)))
    out = np.zeros(t.n_flows, np.uint64)
    np.add.at(out, flow, per_packet)  # wraps modulo 2^64
    svc = np.where(d == 0, (l4[:, 2].astype(np.int64) << 8) | l4[:, 3],
                     (l4[:, 0].astype(np.int64) << 8) | l4[:, 1])  # fmt: skip
    port = np.zeros(t.n_flows, np.int64)
    port[flow[start]] = np.where(icmp[start], -1, svc[start])
    count = np.bincount(flow, minlength=t.n_flows)
    return _combine(_combine(out, port & 0xFFFFFFFF), count)
