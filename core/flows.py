"""Flow assembly: bidirectional 5-tuple flows over all packets at once.

A flow is keyed by capture file, IP protocol and the unordered pair of endpoints (address and
port; for ICMP the port is replaced by the echo identifier for query/reply types and by the type
for the others). Within one key, a flow ends after an idle gap longer than Zeek's default
inactivity timeout for its protocol (TCP 5 min, UDP and ICMP 1 min), and a TCP flow also ends when
a fresh SYN arrives after a FIN or RST. The originator is the sender of the first pure SYN, else
the receiver of the first SYN-ACK, else (UDP, ICMP, TCP joined mid-stream) the first sender, and
for ICMP queries the sender of the first request.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import PROTO_ICMP, PROTO_TCP, PROTO_UDP, Traffic

__all__ = [
    "ICMP_QUERY_REQUEST_TYPES",
    "ICMP_QUERY_TYPES",
    "IDLE_TIMEOUT_NS",
    "FlowKeys",
    "assemble_flows",
    "cap_flows",
    "flow_keys",
    "rank_in_flow",
]

SECOND_NS = 1_000_000_000
#: Zeek's default inactivity timeouts (tcp_inactivity_timeout, udp_..., icmp_...), per IP protocol.
IDLE_TIMEOUT_NS = {
    PROTO_TCP: 300 * SECOND_NS,
    PROTO_UDP: 60 * SECOND_NS,
    PROTO_ICMP: 60 * SECOND_NS,
}

#: ICMP query types (echo, timestamp, information, address mask): requests and their replies.
ICMP_QUERY_TYPES = np.array([0, 8, 13, 14, 15, 16, 17, 18], np.uint8)
ICMP_QUERY_REQUEST_TYPES = np.array([8, 13, 15, 17], np.uint8)

_SYN, _RST, _FIN, _ACK = 0x02, 0x04, 0x01, 0x10


@dataclass(frozen=True)
class FlowKeys:
    """Per-packet endpoint integers: ``(address << 16) | port`` for source and destination."""

    src: NDArray[np.int64]
    dst: NDArray[np.int64]
    extra: NDArray[np.int64]  # ICMP: echo id or type (+256); 0 for TCP and UDP

    @property
    def lo(self) -> NDArray[np.int64]:
        """The smaller endpoint of each packet."""
        return np.minimum(self.src, self.dst)

    @property
    def hi(self) -> NDArray[np.int64]:
        """The larger endpoint of each packet."""
        return np.maximum(self.src, self.dst)


_TIMEOUT = np.zeros(256, np.int64)  # idle timeout per IP protocol number (0: none)
_TIMEOUT[list(IDLE_TIMEOUT_NS)] = list(IDLE_TIMEOUT_NS.values())
_IS_QUERY = np.zeros(256, np.bool_)
_IS_QUERY[ICMP_QUERY_TYPES] = True
_IS_REQUEST = np.zeros(256, np.bool_)
_IS_REQUEST[ICMP_QUERY_REQUEST_TYPES] = True


def flow_keys(traffic: Traffic) -> FlowKeys:
    """Endpoint keys of every packet (ports are 0 for ICMP, whose identity goes in ``extra``)."""
    return _flow_keys(np.ascontiguousarray(traffic.ip[:, 9]), traffic.ip, traffic.l4)


def _flow_keys(proto: NDArray[np.uint8], ip: NDArray[np.uint8], l4: NDArray[np.uint8]) -> FlowKeys:
    """:func:`flow_keys`, given a contiguous copy of the protocol column."""
    n = len(proto)
    # (address << 16) | port for both ends at once: big-endian 64-bit words laid out as
    # 00 00 | IPv4 address | port, built from the header bytes
    raw = np.zeros((n, 16), np.uint8)
    raw[:, 2:6] = ip[:, 12:16]
    raw[:, 10:14] = ip[:, 16:20]
    raw[:, 6:8] = l4[:, 0:2]
    raw[:, 14:16] = l4[:, 2:4]
    no_ports = np.flatnonzero((proto != PROTO_TCP) & (proto != PROTO_UDP))
    raw[no_ports, 6:8] = 0  # (few rows: a fancy index is slow on many)
    raw[no_ports, 14:16] = 0
    ends = raw.view(">u8").astype(np.int64)
    extra = np.zeros(n, np.int64)
    icmp = np.flatnonzero(proto == PROTO_ICMP)
    if len(icmp):
        icmp_type = l4[icmp, 0]
        ident = (l4[icmp, 4].astype(np.int64) << 8) | l4[icmp, 5]
        extra[icmp] = np.where(_IS_QUERY[icmp_type], ident, 0x10000 + icmp_type.astype(np.int64))
    return FlowKeys(src=ends[:, 0], dst=ends[:, 1], extra=extra)


def _sort_keys(
    file: NDArray[np.int32], proto: NDArray[np.uint8], keys: FlowKeys
) -> list[NDArray[np.int64]]:
    """Integer columns whose lexicographic order is that of (file, protocol, lo, hi, extra).

    Folding keeps the order: ports are 0 where extra is not (ICMP), so ``hi`` has 16 zero low
    bits there, and extra < 2**17; file and protocol are dense-ranked into the bits above
    ``lo`` (48 bits) when they fit.
    """
    lo = keys.lo
    hi_extra = (keys.hi << 1) + keys.extra
    present = np.zeros(256, np.bool_)
    present[proto] = True
    proto_rank = np.cumsum(present) - 1
    n_proto = int(proto_rank[-1]) + 1
    f_lo, f_hi = (int(file.min()), int(file.max())) if len(file) else (0, 0)
    span = (f_hi - f_lo + 1) * n_proto
    if span.bit_length() + 48 <= 63:
        group = (file.astype(np.int64) - f_lo) * n_proto + proto_rank[proto]
        return [(group << 48) | lo, hi_extra]
    file_proto = ((file.astype(np.int64) - f_lo) << 8) | proto
    return [file_proto, lo, hi_extra]


def _segment_starts(sorted_cols: list[NDArray[np.int64]]) -> NDArray[np.bool_]:
    """True where a sorted row differs from the previous one in any column."""
    n = len(sorted_cols[0])
    starts = np.zeros(n, np.bool_)
    if n:
        starts[0] = True
    for col in sorted_cols:
        starts[1:] |= col[1:] != col[:-1]
    return starts


def _segment_ids(starts: NDArray[np.bool_]) -> NDArray[np.int64]:
    return np.cumsum(starts, dtype=np.int64) - 1


def _first_in_segment(
    mask: NDArray[np.bool_], seg: NDArray[np.int64], n_seg: int
) -> NDArray[np.int64]:
    """Index (in sorted order) of the first row with ``mask`` set per segment, or -1."""
    first = np.full(n_seg, -1, np.int64)
    rows = np.flatnonzero(mask)
    # assign in reverse so the earliest row wins
    first[seg[rows[::-1]]] = rows[::-1]
    return first


def assemble_flows(traffic: Traffic) -> Traffic:
    """Assign every packet a flow index and a direction; flows are numbered by start time.

    Packets keep their order. Per-flow labels start unlabelled (``-1``).
    """
    n = traffic.n_packets
    if n == 0:
        return replace(traffic, flow_label=np.zeros(0, np.int32))
    proto8 = np.ascontiguousarray(traffic.ip[:, 9])
    keys = _flow_keys(proto8, traffic.ip, traffic.l4)
    ts = traffic.ts_ns
    group = _sort_keys(traffic.file, proto8, keys)
    order = np.lexsort((ts, *group[::-1]))
    s_ts = ts[order]
    s_proto = proto8[order]
    starts = _segment_starts([g[order] for g in group])

    # idle timeout splits
    gap = np.zeros(n, np.int64)
    gap[1:] = s_ts[1:] - s_ts[:-1]
    starts |= gap > _TIMEOUT[s_proto]

    # a pure SYN after a FIN or RST (since the previous pure SYN) starts a new TCP flow
    flags = np.ascontiguousarray(traffic.l4[:, 13])[order]
    is_tcp = s_proto == PROTO_TCP
    pure_syn = is_tcp & ((flags & (_SYN | _ACK)) == _SYN)
    fin_rst = is_tcp & ((flags & (_FIN | _RST)) != 0)
    cum_end = np.cumsum(fin_rst, dtype=np.int64)
    seg = _segment_ids(starts)
    # index of the previous pure SYN in the same key segment
    syn_pos = np.where(pure_syn, np.arange(n), -1)
    prev_syn = np.maximum.accumulate(syn_pos)
    prev_syn_shift = np.full(n, -1, np.int64)
    prev_syn_shift[1:] = prev_syn[:-1]
    seg_start_idx = np.flatnonzero(starts)[seg]
    has_prev = prev_syn_shift >= seg_start_idx
    # FIN/RST rows strictly before this one and after the previous pure SYN (or the key start)
    cum_before = cum_end - fin_rst
    base = np.where(has_prev, cum_end[np.maximum(prev_syn_shift, 0)], cum_before[seg_start_idx])
    restart = pure_syn & (cum_before - base > 0)
    starts |= restart
    seg = _segment_ids(starts)
    n_flows = int(seg[-1]) + 1

    # originator endpoint
    s_src, s_dst = keys.src[order], keys.dst[order]
    syn_ack = is_tcp & ((flags & (_SYN | _ACK)) == (_SYN | _ACK))
    icmp_request = s_proto == PROTO_ICMP
    if icmp_request.any():
        icmp_request &= _IS_REQUEST[np.ascontiguousarray(traffic.l4[:, 0])[order]]
    first_row = np.flatnonzero(starts)
    orig = s_src[first_row].copy()
    first_syn = _first_in_segment(pure_syn, seg, n_flows)
    first_synack = _first_in_segment(syn_ack, seg, n_flows)
    first_req = _first_in_segment(icmp_request, seg, n_flows)
    use_req = first_req >= 0
    orig[use_req] = s_src[first_req[use_req]]
    use_synack = (first_synack >= 0) & (first_syn < 0)
    orig[use_synack] = s_dst[first_synack[use_synack]]
    use_syn = first_syn >= 0
    orig[use_syn] = s_src[first_syn[use_syn]]
    # when src == dst endpoint (self-talk), direction by equality would be ambiguous: keep 0
    s_dir = (s_src != orig[seg]).astype(np.int8)

    # number flows by their first packet's time (stable), then scatter back to packet order
    flow_start = s_ts[first_row]
    renumber = np.empty(n_flows, np.int64)
    renumber[np.argsort(flow_start, kind="stable")] = np.arange(n_flows)
    flow = np.empty(n, np.int64)
    direction = np.empty(n, np.int8)
    flow[order] = renumber[seg]
    direction[order] = s_dir
    return replace(
        traffic,
        flow=flow,
        direction=direction,
        flow_label=np.full(n_flows, -1, np.int32),
    )


def rank_in_flow(
    flow: NDArray[np.int64], ts_ns: NDArray[np.int64], rows: NDArray[np.int64] | None = None
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Packets ``rows`` (default: all) sorted by (flow, time, index), and each one's position
    in its flow in that order (0 for a flow's first packet)."""
    rows = np.arange(len(flow)) if rows is None else rows
    order = rows[np.lexsort((rows, ts_ns[rows], flow[rows]))]
    s_flow = flow[order]
    starts = np.ones(len(order), np.bool_)
    starts[1:] = s_flow[1:] != s_flow[:-1]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    return order, np.arange(len(order)) - first


def cap_flows(traffic: Traffic, max_packets: int) -> tuple[Traffic, int]:
    """Keep each flow's first ``max_packets`` packets (by time); returns the traffic and how many
    flows were truncated."""
    if max_packets < 1:
        raise ValueError(f"max_packets must be at least 1, got {max_packets}")
    order, rank = rank_in_flow(traffic.flow, traffic.ts_ns)
    s_flow = traffic.flow[order]
    keep_sorted = rank < max_packets
    truncated = int(np.unique(s_flow[~keep_sorted]).size)
    keep = np.zeros(traffic.n_packets, np.bool_)
    keep[order[keep_sorted]] = True
    return traffic.take(keep), truncated
