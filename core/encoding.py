"""Encoder and decoder between :class:`~netdiffusion.Traffic` and the model's flow tensors.

Per packet, the representation is nPrint's 1088-value bit vector for ``nprint -4 -t -u -i`` (see
:mod:`netdiffusion.nprint`): each header bit as 0 or 1, and -1 where nPrint writes its fill value
(a header the packet does not carry, IPv4/TCP option bytes beyond ``IHL * 4`` or
``data offset * 4``).
Two features nPrint lacks follow it: the direction (+1 sent by the flow's originator, -1 by its
responder) and the inter-arrival time within the flow::

    iat = log1p(gap_us) / iat_scale          gap_us = microseconds since the flow's previous packet

with ``iat_scale`` = :data:`IAT_SCALE` (20, so gaps from 1 us to ~5 days map into [0, 1]); the
first packet of a flow has gap 0. Flows are sequences of up to ``max_packets`` packets in time
order, padded; each has a class label.

Memory: :class:`FlowTensor` keeps the bits as int8 ``[flows, max_packets, 1088]`` (1 byte per
value) beside small per-slot arrays (direction int8, iat float32, mask bool); the float32 model
tensor ``[flows, max_packets, 1090]`` is made only on request, for a batch of flows
(:meth:`FlowTensor.features`). Padding slots hold bits -1 (no header at all), direction 0, iat 0.

Decoding accepts that tensor back, clean or as a model produced it (continuous values): each bit
value is snapped to the nearest of -1, 0, 1 (cuts at -0.5 and 0.5); an IPv4/TCP option word
(32 bits) is present when most of its values are not -1, and the header length follows from the
leading present words; the L4 header is the TCP, UDP or ICMP block whose values are mostly not -1
(the most complete one wins), and the IPv4 protocol field is set to match. For any real capture,
``bits_to_headers(packet_bits(t))`` gives back the IPv4 and L4 header bytes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import (
    IP_HDR_MAX,
    L4_HDR_MAX,
    PROTO_ICMP,
    PROTO_TCP,
    PROTO_UDP,
    Traffic,
)
from netdiffusion.nprint import N_BITS

__all__ = [
    "DIRECTION_FEATURE",
    "IAT_FEATURE",
    "IAT_SCALE",
    "N_FEATURES",
    "EncodingError",
    "FlowTensor",
    "bits_to_headers",
    "decode_flows",
    "encode_flows",
    "iat_from_feature",
    "iat_to_feature",
    "packet_bits",
]

#: Divisor of ``log1p(gap in microseconds)`` in the inter-arrival feature.
IAT_SCALE = 20.0
#: Index of the direction feature (after the 1088 bits).
DIRECTION_FEATURE = N_BITS
#: Index of the inter-arrival-time feature.
IAT_FEATURE = N_BITS + 1
#: Features per packet slot in the model tensor.
N_FEATURES = N_BITS + 2
#: Gaps are capped here when decoding (log1p(us) of ~12 days), so timestamps cannot overflow.
_MAX_LOG_GAP = 30.0
#: Default spacing of flow start times when decoding generated flows without start times.
DEFAULT_FLOW_SPACING_NS = 1_000_000

_ABSENT = 256  # byte code for "nPrint fill value" (eight -1 bits)
_ABSENT16 = np.uint16(_ABSENT)  # as an array scalar, so np.where does not wrap it to uint8
_N_CODES = N_BITS // 8  # 136 byte positions: IPv4 60, TCP 60, UDP 8, ICMP 8


class EncodingError(ValueError):
    """Traffic or a tensor that cannot be encoded or decoded (one-line message)."""


def _bits_lut() -> NDArray[np.int64]:
    lut = np.empty((_ABSENT + 1, 8), np.int8)
    lut[:_ABSENT] = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1)
    lut[_ABSENT] = -1
    return lut.view(np.int64).ravel()  # one int64 = the 8 int8 values of a byte, in memory order


_BITS_LUT64 = _bits_lut()
_POS60 = np.arange(60)
_CHUNK = 8192  # rows per pass in the chunked loops
_POS8 = np.arange(8)


def _byte_codes(
    ip: NDArray[np.uint8], l4: NDArray[np.uint8], mask_addresses: bool
) -> NDArray[np.uint16]:
    """``[N, 136]`` codes: the header byte nPrint writes at each byte position, or 256 (fill)."""
    n = len(ip)
    codes = np.empty((n, _N_CODES), np.uint16)
    ihl = (ip[:, 0] & 0x0F).astype(np.int64) * 4
    np.copyto(codes[:, 0:60], np.where(ihl[:, None] > _POS60, ip[:, :IP_HDR_MAX], _ABSENT16))
    if mask_addresses:
        codes[:, 12:20] = np.where(ihl[:, None] > np.arange(12, 20), 0, _ABSENT16)
    proto = ip[:, 9]
    tcp_len = np.where(proto == PROTO_TCP, (l4[:, 12] >> 4).astype(np.int64) * 4, 0)
    np.copyto(codes[:, 60:120], np.where(tcp_len[:, None] > _POS60, l4[:, :L4_HDR_MAX], _ABSENT16))
    for col, p in ((120, PROTO_UDP), (128, PROTO_ICMP)):
        np.copyto(codes[:, col : col + 8], np.where((proto == p)[:, None], l4[:, :8], _ABSENT16))
    return codes


def _codes_to_bits(codes: NDArray[np.uint16]) -> NDArray[np.int8]:
    return _BITS_LUT64[codes].view(np.int8)


def packet_bits(traffic: Traffic, *, mask_addresses: bool = False) -> NDArray[np.int8]:
    """nPrint's ``-4 -t -u -i`` values of every packet: int8 ``[N, 1088]`` in {-1, 0, 1}.

    With ``mask_addresses`` the IPv4 source and destination bits are 0.
    """
    if traffic.n_packets == 0:
        return np.zeros((0, N_BITS), np.int8)
    return _codes_to_bits(_byte_codes(traffic.ip, traffic.l4, mask_addresses))


# -- flow tensors -----------------------------------------------------------------------------


def iat_to_feature(
    gap_ns: NDArray[np.integer], iat_scale: float = IAT_SCALE
) -> NDArray[np.float32]:
    """The inter-arrival feature of gaps in nanoseconds (negative gaps count as 0)."""
    gap_us = np.maximum(np.asarray(gap_ns, np.float64), 0.0) / 1000.0
    return (np.log1p(gap_us) / iat_scale).astype(np.float32)


def iat_from_feature(
    feature: NDArray[np.floating], iat_scale: float = IAT_SCALE
) -> NDArray[np.int64]:
    """Gaps in nanoseconds from inter-arrival features (clipped to [0, ~12 days])."""
    log_gap = np.clip(np.asarray(feature, np.float64) * iat_scale, 0.0, _MAX_LOG_GAP)
    return np.rint(np.expm1(log_gap) * 1000.0).astype(np.int64)


@dataclass(eq=False)
class FlowTensor:
    """Flows as packet sequences of at most ``max_packets`` (``P``) packets, stored packed.

    Packets are held once, flow after flow in time order (``M`` packets, no padding):
    ``codes`` uint16 ``[M, 136]`` is the header byte nPrint writes at each of its 136 byte
    positions, or 256 where it writes its fill value -1 (a quarter of the memory of the 1088 int8
    values, which :meth:`packet_bits` expands); ``direction`` int8 ``[M]`` (+1 originator, -1
    responder); ``iat`` float32 ``[M]`` (see the module docstring). Flow ``i`` is rows
    ``offsets[i]:offsets[i + 1]``; per flow: ``label`` int32 index into ``classes`` (-1
    unlabelled), ``flow_id`` int64 its index in the source traffic, ``start_ns`` int64 its first
    packet's time. ``truncated`` counts flows that had more than ``P`` packets.

    :meth:`features` / :meth:`dense` make the padded model tensors for a batch of flows.
    """

    codes: NDArray[np.uint16]
    direction: NDArray[np.int8]
    iat: NDArray[np.float32]
    offsets: NDArray[np.int64]
    label: NDArray[np.int32]
    flow_id: NDArray[np.int64]
    start_ns: NDArray[np.int64]
    max_packets: int
    classes: list[str] = field(default_factory=list)
    truncated: int = 0
    iat_scale: float = IAT_SCALE
    masked_addresses: bool = True

    @property
    def n_flows(self) -> int:
        """Number of flows ``F``."""
        return len(self.offsets) - 1

    @property
    def n_packets(self) -> int:
        """Packets held ``M``."""
        return len(self.codes)

    @property
    def lengths(self) -> NDArray[np.int64]:
        """Packets per flow."""
        return np.diff(self.offsets)

    def packet_bits(self) -> NDArray[np.int8]:
        """nPrint values of every held packet, int8 ``[M, 1088]``."""
        return _codes_to_bits(self.codes)

    def _slots(
        self, idx: NDArray[np.integer] | slice | None
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], int]:
        """(packet rows, flow position in the batch, slot) for flows ``idx``; and batch size."""
        flows = np.arange(self.n_flows, dtype=np.int64)
        if idx is not None:
            flows = flows[idx]
        lengths = self.lengths[flows]
        seg = np.repeat(np.arange(len(flows), dtype=np.int64), lengths)
        seg_start = np.cumsum(lengths) - lengths
        slot = np.arange(int(lengths.sum()), dtype=np.int64) - seg_start[seg]
        rows = self.offsets[flows][seg] + slot
        return rows, seg, slot, len(flows)

    def dense(
        self, idx: NDArray[np.integer] | slice | None = None
    ) -> tuple[NDArray[np.int8], NDArray[np.int8], NDArray[np.float32], NDArray[np.bool_]]:
        """Padded ``(bits [f, P, 1088] int8, direction [f, P], iat [f, P], mask [f, P])`` for
        flows ``idx`` (all when None); padding has bits -1, direction 0, iat 0, mask False."""
        rows, seg, slot, f = self._slots(idx)
        p = self.max_packets
        flat = seg * p + slot
        bits64 = np.full((f * p, _N_CODES), _BITS_LUT64[_ABSENT], np.int64)
        bits64[flat] = _BITS_LUT64[self.codes[rows]]
        direction = np.zeros(f * p, np.int8)
        direction[flat] = self.direction[rows]
        iat = np.zeros(f * p, np.float32)
        iat[flat] = self.iat[rows]
        mask = np.zeros(f * p, np.bool_)
        mask[flat] = True
        return (
            bits64.view(np.int8).reshape(f, p, N_BITS),
            direction.reshape(f, p),
            iat.reshape(f, p),
            mask.reshape(f, p),
        )

    def features(self, idx: NDArray[np.integer] | slice | None = None) -> NDArray[np.float32]:
        """The model tensor float32 ``[f, P, 1090]`` for flows ``idx`` (all when None): the 1088
        bit values, then direction, then iat; padding as in :meth:`dense`."""
        bits, direction, iat, _mask = self.dense(idx)
        out = np.empty((*bits.shape[:2], N_FEATURES), np.float32)
        out[..., :N_BITS] = bits
        out[..., DIRECTION_FEATURE] = direction
        out[..., IAT_FEATURE] = iat
        return out


def encode_flows(
    traffic: Traffic,
    *,
    max_packets: int,
    mask_addresses: bool = True,
    iat_scale: float = IAT_SCALE,
) -> FlowTensor:
    """Encode assembled flows (``traffic.flow >= 0`` and ``direction`` set) into a FlowTensor.

    Each flow's packets are taken in time order (ties in packet order), the first
    ``max_packets`` kept. Flows without packets get no row.
    """
    if max_packets < 1:
        raise EncodingError(f"max_packets must be at least 1, got {max_packets}")
    n = traffic.n_packets
    if n and int(traffic.flow.min()) < 0:
        raise EncodingError("traffic has packets without a flow: assemble flows before encoding")
    order = np.lexsort((np.arange(n), traffic.ts_ns, traffic.flow))
    s_flow = traffic.flow[order]
    starts = np.ones(n, np.bool_)
    starts[1:] = s_flow[1:] != s_flow[:-1]
    first = np.flatnonzero(starts)
    row = np.cumsum(starts, dtype=np.int64) - 1
    rank = np.arange(n, dtype=np.int64) - first[row]
    counts = np.diff(np.append(first, n))
    flow_ids = s_flow[first]
    n_flows = len(first)
    keep = rank < max_packets
    kidx, krank = order[keep], rank[keep]
    offsets = np.zeros(n_flows + 1, np.int64)
    np.cumsum(np.minimum(counts, max_packets), out=offsets[1:])

    ts = traffic.ts_ns[kidx]
    gap = np.zeros(len(kidx), np.int64)
    gap[1:] = ts[1:] - ts[:-1]
    gap[krank == 0] = 0
    labels = np.full(n_flows, -1, np.int32)
    known = flow_ids < traffic.n_flows
    labels[known] = traffic.flow_label[flow_ids[known]]
    return FlowTensor(
        codes=_byte_codes(traffic.ip[kidx], traffic.l4[kidx], mask_addresses),
        direction=np.where(traffic.direction[kidx] == 0, 1, -1).astype(np.int8),
        iat=iat_to_feature(gap, iat_scale),
        offsets=offsets,
        label=labels,
        flow_id=flow_ids.astype(np.int64),
        start_ns=traffic.ts_ns[order[first]].astype(np.int64),
        max_packets=int(max_packets),
        classes=list(traffic.classes),
        truncated=int((counts > max_packets).sum()),
        iat_scale=iat_scale,
        masked_addresses=mask_addresses,
    )


# -- decoding ---------------------------------------------------------------------------------


_POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1, dtype=np.uint8)


def _snap_bytes(values: NDArray[np.generic]) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Per byte position ``[M, 136]``: the byte of bits equal to 1, and how many of its 8 values
    are not -1. Works for int8 nPrint values and for continuous model output."""
    m = len(values)
    byte = np.empty((m, _N_CODES), np.uint8)
    count = np.empty((m, _N_CODES), np.uint8)
    hi, lo = (0, -1) if values.dtype.kind in "iu" else (0.5, -0.5)
    for start in range(0, m, _CHUNK):  # chunks keep the temporaries in cache
        v = values[start : start + _CHUNK]
        byte[start : start + len(v)] = np.packbits(v > hi, axis=1)
        np.take(_POPCOUNT, np.packbits(v > lo, axis=1), out=count[start : start + len(v)])
    return byte, count


def _present_words(count: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Leading 32-bit option words that are mostly present, from per-byte counts ``[M, 40]``."""
    words = count.reshape(len(count), -1, 4).sum(axis=2, dtype=np.int64) > 16
    return np.cumprod(words, axis=1).sum(axis=1)


def bits_to_headers(
    values: NDArray[np.generic],
) -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.int32]]:
    """Header bytes from nPrint values ``[M, 1088]`` (int8 or continuous).

    Returns ``(ip [M, 60], l4 [M, 60], payload_len [M])``. IHL and TCP data offset are set from
    the option words present; the IPv4 protocol field is set to the L4 block chosen (left as
    decoded when no L4 block is present); payload_len is the IPv4 total length minus both headers,
    at least 0.
    """
    m = len(values)
    if values.ndim != 2 or values.shape[1] != N_BITS:
        raise EncodingError(f"expected nPrint values [packets, {N_BITS}], got {values.shape}")
    byte, count = _snap_bytes(values)
    ihl = 5 + _present_words(count[:, 20:60])
    ip = np.where((ihl * 4)[:, None] > _POS60, byte[:, 0:60], np.uint8(0))
    ip[:, 0] = (ip[:, 0] & 0xF0) | ihl.astype(np.uint8)

    # which L4 block: the most complete of those mostly present (ties: TCP, UDP, ICMP)
    score = np.stack(
        [
            count[:, 60:80].sum(axis=1, dtype=np.int64) / 160.0,
            count[:, 120:128].sum(axis=1, dtype=np.int64) / 64.0,
            count[:, 128:136].sum(axis=1, dtype=np.int64) / 64.0,
        ],
        axis=1,
    )
    kind = np.where(score.max(axis=1) > 0.5, score.argmax(axis=1), -1)

    l4 = np.zeros((m, L4_HDR_MAX), np.uint8)
    l4_len = np.zeros(m, np.int64)
    rows = np.flatnonzero(kind == 0)
    if len(rows):
        doff = 5 + _present_words(count[rows, 80:120])
        tcp = np.where((doff * 4)[:, None] > _POS60, byte[rows, 60:120], np.uint8(0))
        tcp[:, 12] = (tcp[:, 12] & 0x0F) | (doff.astype(np.uint8) << 4)
        l4[rows] = tcp
        l4_len[rows] = doff * 4
        ip[rows, 9] = PROTO_TCP
    for k, col, proto in ((1, 120, PROTO_UDP), (2, 128, PROTO_ICMP)):
        rows = np.flatnonzero(kind == k)
        if len(rows):
            l4[rows, :8] = byte[rows, col : col + 8]
            l4_len[rows] = 8
            ip[rows, 9] = proto
    total = (ip[:, 2].astype(np.int64) << 8) | ip[:, 3]
    payload_len = np.maximum(total - ihl * 4 - l4_len, 0).astype(np.int32)
    return ip, l4, payload_len


def decode_flows(
    tensor: FlowTensor | NDArray[np.floating],
    *,
    mask: NDArray[np.bool_] | None = None,
    labels: NDArray[np.integer] | None = None,
    classes: list[str] | None = None,
    start_ns: NDArray[np.integer] | None = None,
    flow_spacing_ns: int = DEFAULT_FLOW_SPACING_NS,
    iat_scale: float | None = None,
) -> Traffic:
    """Traffic from a FlowTensor or a model tensor float ``[F, P, 1090]``; padding is dropped.

    For a model tensor the packet slots used are ``mask`` ``[F, P]`` if given, else those whose
    IPv4 fixed header is mostly not -1. Flow ``i`` starts at ``start_ns[i]`` (given, else the
    FlowTensor's, else ``i * flow_spacing_ns``); packets follow at the decoded gaps. Packets come
    out in time order with flow ids ``0..F-1``, direction, labels and classes; no payload bytes.
    """
    if isinstance(tensor, FlowTensor):
        n_flows = tensor.n_flows
        values: NDArray[np.generic] = tensor.packet_bits()
        fi = np.repeat(np.arange(n_flows, dtype=np.int64), tensor.lengths)
        dir_v: NDArray[np.generic] = tensor.direction
        iat_v: NDArray[np.generic] = tensor.iat
        labels = tensor.label if labels is None else labels
        classes = tensor.classes if classes is None else classes
        start_ns = tensor.start_ns if start_ns is None else start_ns
        iat_scale = tensor.iat_scale if iat_scale is None else iat_scale
    else:
        x = np.asarray(tensor)
        if x.ndim != 3 or x.shape[2] != N_FEATURES:
            raise EncodingError(f"expected a tensor [flows, packets, {N_FEATURES}], got {x.shape}")
        n_flows = x.shape[0]
        if mask is None:
            mask = (x[..., :160] > -0.5).sum(axis=2) > 80
        elif mask.shape != x.shape[:2]:
            raise EncodingError(f"mask shape {mask.shape} does not match tensor {x.shape[:2]}")
        fi, pi = np.nonzero(mask)  # flow-major, slots in order
        slots = x[fi, pi]
        values, dir_v, iat_v = slots[:, :N_BITS], slots[:, DIRECTION_FEATURE], slots[:, IAT_FEATURE]
    iat_scale = IAT_SCALE if iat_scale is None else iat_scale

    ip, l4, payload_len = bits_to_headers(values)
    m = len(fi)
    direction = (dir_v < 0).astype(np.int8)
    gap = iat_from_feature(iat_v, iat_scale)
    first = np.ones(m, np.bool_)
    first[1:] = fi[1:] != fi[:-1]
    gap[first] = 0
    csum = np.cumsum(gap)
    seg_first = np.maximum.accumulate(np.where(first, np.arange(m), 0))
    offset = csum - csum[seg_first]
    if start_ns is None:
        starts = np.arange(n_flows, dtype=np.int64) * int(flow_spacing_ns)
    else:
        starts = np.asarray(start_ns, np.int64)
    ts = starts[fi] + offset

    if labels is None:
        flow_label = np.full(n_flows, -1, np.int32)
    else:
        flow_label = np.asarray(labels, np.int32).copy()
    out = Traffic(
        ts_ns=ts,
        ip=ip,
        l4=l4,
        payload_len=payload_len,
        payload=np.zeros(0, np.uint8),
        payload_off=np.zeros(m + 1, np.int64),
        mac=np.zeros((m, 12), np.uint8),
        flow=fi.astype(np.int64),
        direction=direction,
        file=np.full(m, -1, np.int32),
        flow_label=flow_label,
        classes=list(classes or []),
    )
    return out.sorted_by_time()
