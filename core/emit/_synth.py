"""Synthetic, protocol-valid flows for tests and benchmarks (a fake of the model + repair engine).

Built vectorized over all packets: TCP flows with handshake, data in alternating directions with
correct sequence and acknowledgement numbers, and FIN teardown; UDP request/response flows; ICMP
echo pairs or ICMP error messages. Payloads are left empty (``payload_len`` only), addresses
zero and checksums unset: run ``assign_addresses``, ``fill_payloads`` and ``fill_checksums``
(or :func:`finish`) to get writable traffic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import PROTO_ICMP, PROTO_TCP, PROTO_UDP, Traffic

__all__ = ["finish", "random_traffic", "synthetic_traffic"]

_SYN_OPTS = np.array([2, 4, 5, 0xB4, 4, 2, 1, 3, 3, 7, 1, 1], np.uint8)  # MSS, SACKOK, WS 7
_SYMMETRIC = {5353: 5353, 137: 137, 138: 138, 67: 68, 68: 67}


def _be(out: NDArray[np.uint8], col: int, values: NDArray[np.integer], width: int) -> None:
    """Write ``values`` big-endian into ``out[:, col:col + width]``."""
    v = np.asarray(values).astype(np.uint64)
    for k in range(width):
        out[:, col + k] = (v >> np.uint64(8 * (width - 1 - k))) & np.uint64(0xFF)


def synthetic_traffic(
    proto: Sequence[int] | NDArray[np.integer],
    service: Sequence[int] | NDArray[np.integer],
    data_lens: Sequence[Sequence[int]],
    *,
    icmp_type: Sequence[int] | NDArray[np.integer] | None = None,
    labels: Sequence[int] | NDArray[np.integer] | None = None,
    classes: Sequence[str] = (),
    seed: int = 0,
    start_ns: int = 1_700_000_000 * 10**9,
    span_ns: int = 10 * 10**9,
) -> Traffic:
    """Flows whose data packets carry ``data_lens[f]`` payload bytes, directions alternating.

    ``proto`` is 6, 17 or 1 per flow; ``service`` the responder's port; ``icmp_type`` per flow
    (8 echo, 3 unreachable, 11 time exceeded; errors are all sent one way). Packets come out in
    time order.
    """
    n_data = np.array([len(x) for x in data_lens], np.int64)
    flat = np.concatenate([np.asarray(x, np.int64) for x in data_lens] + [np.zeros(0, np.int64)])
    return _build(proto, service, n_data, flat, icmp_type, labels, classes, seed, start_ns, span_ns)


def _build(
    proto: Sequence[int] | NDArray[np.integer],
    service: Sequence[int] | NDArray[np.integer],
    n_data: NDArray[np.int64],
    flat: NDArray[np.int64],
    icmp_type: Sequence[int] | NDArray[np.integer] | None,
    labels: Sequence[int] | NDArray[np.integer] | None,
    classes: Sequence[str],
    seed: int,
    start_ns: int,
    span_ns: int,
) -> Traffic:
    """:func:`synthetic_traffic` from data lengths given flat, with a count per flow."""
    rng = np.random.default_rng(seed)
    proto_f = np.asarray(proto, np.int64)
    service_f = np.asarray(service, np.int64)
    n_f = len(proto_f)
    itype_f = np.asarray(icmp_type if icmp_type is not None else np.full(n_f, 8), np.int64)
    tcp_f = proto_f == PROTO_TCP
    extra = np.where(tcp_f, 6, 0)  # 3 handshake + 3 teardown packets
    count = n_data + extra
    n = int(count.sum())
    flow = np.repeat(np.arange(n_f), count)
    start = np.cumsum(count) - count
    pos = np.arange(n) - start[flow]
    pr = proto_f[flow]
    tcp = pr == PROTO_TCP
    hs = np.where(tcp, 3, 0)
    di = pos - hs  # index among data packets
    is_data = (di >= 0) & (di < n_data[flow])
    plen = np.zeros(n, np.int64)
    data_start = np.cumsum(n_data) - n_data
    plen[is_data] = flat[data_start[flow[is_data]] + di[is_data]]
    error = (pr == PROTO_ICMP) & (itype_f[flow] != 8)
    direction = np.where(is_data, di % 2, 0).astype(np.int8)
    direction[error] = 0
    # TCP roles.
    flags = np.zeros(n, np.int64)
    t_pos = np.where(tcp, pos, -1)
    last = count[flow] - 1
    flags[tcp & is_data] = np.where(plen[tcp & is_data] > 0, 0x18, 0x10)
    flags[t_pos == 0] = 0x02
    flags[t_pos == 1] = 0x12
    direction[t_pos == 1] = 1
    flags[t_pos == 2] = 0x10
    fin0 = tcp & (pos == last - 2)
    fin1 = tcp & (pos == last - 1)
    lack = tcp & (pos == last)
    flags[fin0] = 0x11
    flags[fin1] = 0x11
    flags[lack] = 0x10
    direction[fin1] = 1
    direction[fin0 | lack] = 0
    consumed = plen + ((flags & 0x02) > 0) + ((flags & 0x01) > 0)
    sent = np.zeros((n, 2), np.int64)  # bytes consumed per direction before this packet
    for d in (0, 1):
        c = np.where(direction == d, consumed, 0)
        cum = np.cumsum(c) - c
        sent[:, d] = cum - cum[start[flow]]
    isn = rng.integers(0, 2**32, size=(n_f, 2), dtype=np.int64)
    dcol = direction.astype(np.int64)
    seq = (isn[flow, dcol] + sent[np.arange(n), dcol]) % 2**32
    ack = (isn[flow, 1 - dcol] + sent[np.arange(n), 1 - dcol]) % 2**32
    ack[flags == 0x02] = 0

    client_port = rng.integers(32768, 61000, size=n_f)
    for svc, cli in _SYMMETRIC.items():
        client_port[(service_f == svc) & (proto_f == PROTO_UDP)] = cli
    cport = client_port[flow]
    sport = np.where(direction == 0, cport, service_f[flow])
    dport = np.where(direction == 0, service_f[flow], cport)

    t = Traffic.empty(n)
    syn = (flags & 0x02) > 0
    hdr_len = np.where(tcp, np.where(syn, 32, 20), 8)
    ip = t.ip
    ip[:, 0] = 0x45
    _be(ip, 2, 20 + hdr_len + plen, 2)
    ip_id = rng.integers(0, 2**16, size=(n_f, 2))[flow, dcol] + pos
    _be(ip, 4, ip_id % 2**16, 2)
    ip[tcp, 6] = 0x40
    ip[:, 8] = np.where(direction == 0, 64, 57)
    ip[:, 9] = pr
    l4 = t.l4
    udp = pr == PROTO_UDP
    icmp = pr == PROTO_ICMP
    ported = tcp | udp
    ports = np.zeros((n, 4), np.uint8)
    _be(ports, 0, sport, 2)
    _be(ports, 2, dport, 2)
    l4[ported, 0:4] = ports[ported]
    tl4 = np.zeros((n, 20), np.uint8)
    _be(tl4, 4, seq, 4)
    _be(tl4, 8, ack, 4)
    tl4[:, 12] = (hdr_len // 4 << 4).astype(np.uint8)
    tl4[:, 13] = flags
    _be(tl4, 14, np.where(syn, 64240, 502), 2)
    l4[tcp, 4:20] = tl4[tcp, 4:20]
    l4[tcp & syn, 20:32] = _SYN_OPTS
    ulen = np.zeros((n, 2), np.uint8)
    _be(ulen, 0, 8 + plen, 2)
    l4[udp, 4:6] = ulen[udp]
    itype = itype_f[flow]
    echo = icmp & ~error
    l4[echo, 0] = np.where(direction[echo] == 0, 8, 0)
    l4[error, 0] = itype[error]
    l4[error, 1] = np.where(itype[error] == 3, 3, 0)
    idseq = np.zeros((n, 4), np.uint8)
    _be(idseq, 0, flow & 0xFFFF, 2)
    _be(idseq, 2, di // 2 + 1, 2)
    l4[echo, 4:8] = idseq[echo]
    t.payload_len[:] = plen
    t.flow[:] = flow
    t.direction[:] = direction

    # Timing: flows start anywhere in the span; a 20-60 ms RTT for TCP turns, 1-30 ms gaps else.
    f_start = start_ns + rng.integers(0, max(span_ns, 1), size=n_f)
    rtt = rng.integers(20, 60, size=n_f) * 10**6
    gap = rng.integers(1, 30, size=n) * 10**6
    gap = np.where(pos == 0, 0, np.where(direction == 1, rtt[flow] // 2, gap))
    cum = np.cumsum(gap)
    t.ts_ns[:] = f_start[flow] + cum - cum[start[flow]]
    t.flow_label = (
        np.asarray(labels, np.int32) if labels is not None else np.full(n_f, -1, np.int32)
    )
    t.classes = list(classes)
    return t.sorted_by_time()


def finish(traffic: Traffic, *, seed: int = 0) -> Traffic:
    """Addresses, payloads and checksums: what the pipeline does before writing."""
    from netdiffusion.checksum import fill_checksums
    from netdiffusion.emit.addresses import assign_addresses
    from netdiffusion.emit.payload import fill_payloads

    return fill_checksums(fill_payloads(assign_addresses(traffic, seed=seed)))


# Services of a plausible mix: (protocol, port, weight, data packets mean, bytes per packet).
_MIX = (
    (PROTO_TCP, 443, 0.30, 12, 900),
    (PROTO_TCP, 80, 0.08, 6, 700),
    (PROTO_TCP, 8883, 0.04, 8, 120),
    (PROTO_UDP, 53, 0.25, 2, 60),
    (PROTO_UDP, 123, 0.05, 2, 48),
    (PROTO_UDP, 5353, 0.05, 1, 120),
    (PROTO_UDP, 1900, 0.04, 2, 300),
    (PROTO_UDP, 443, 0.08, 10, 1000),
    (PROTO_UDP, 9999, 0.06, 2, 200),
    (PROTO_ICMP, 0, 0.05, 4, 56),
)


def random_traffic(n_packets: int, *, seed: int = 0, n_classes: int = 8) -> Traffic:
    """About ``n_packets`` packets of a realistic service mix (not yet finished)."""
    rng = np.random.default_rng(seed)
    weights = np.array([m[2] for m in _MIX])
    n_flows = max(1, n_packets // 8)
    kind = rng.choice(len(_MIX), size=n_flows, p=weights / weights.sum())
    proto = np.array([m[0] for m in _MIX])[kind]
    service = np.array([m[1] for m in _MIX])[kind]
    mean = np.array([m[3] for m in _MIX])[kind]
    size = np.array([m[4] for m in _MIX])[kind]
    n_data = np.maximum(1, rng.poisson(mean))
    total = int(n_data.sum())
    lens = np.minimum(1400, rng.exponential(1.0, total) * np.repeat(size, n_data)).astype(np.int64)
    lens = np.maximum(lens, np.where(np.repeat(proto, n_data) == PROTO_UDP, 48, 0))
    labels = rng.integers(0, n_classes, size=n_flows)
    classes = [f"class{i}" for i in range(n_classes)]
    span = max(1, n_packets // 1000) * 10**9
    start = 1_700_000_000 * 10**9
    return _build(proto, service, n_data, lens, None, labels, classes, seed, start, span)
