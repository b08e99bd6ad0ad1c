"""Vectorized Internet checksums (RFC 1071) for IPv4, TCP, UDP and ICMP over a whole Traffic.

Every function works on all packets at once: headers as ``[N, W]`` byte matrices, payloads as the
ragged buffer of :class:`~netdiffusion.Traffic`. Payload bytes are summed without a per-byte
packet index: two running sums (bytes at even and at odd positions of the buffer) give each
packet's high-byte and low-byte sums from its start offset's parity.

An L4 checksum can only be computed when the packet holds its whole payload
(``held_payload_len == payload_len``) and is a whole, unfragmented TCP/UDP/ICMP datagram;
:func:`l4_checksums` returns that mask beside the values, and :func:`fill_checksums` leaves the
other packets' L4 checksum fields as they are.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import PROTO_ICMP, PROTO_TCP, PROTO_UDP, Traffic

__all__ = [
    "checksum_ok",
    "fill_checksums",
    "fold",
    "ipv4_header_checksums",
    "l4_checksums",
    "ones_complement_rows",
]


def fold(total: NDArray[np.integer]) -> NDArray[np.uint16]:
    """Fold sums of 16-bit words into a 16-bit one's-complement sum (not complemented)."""
    s = np.asarray(total).astype(np.uint64)
    for _ in range(4):  # 64 -> 16 bits: each fold at least halves the carry width
        s = (s & np.uint64(0xFFFF)) + (s >> np.uint64(16))
    return s.astype(np.uint16)


def _swap16(v: NDArray[np.uint16]) -> NDArray[np.uint16]:
    """Byte-swap 16-bit values (the one's-complement sum commutes with byte swapping)."""
    v = v.astype(np.uint16)
    return ((v >> 8) | (v << 8)).astype(np.uint16)


def _rows_le(data: NDArray[np.uint8], nwords: NDArray[np.int64]) -> NDArray[np.uint64]:
    """Unfolded sums of each row's first ``nwords`` little-endian 16-bit words (even row width)."""
    data = np.ascontiguousarray(data, dtype=np.uint8)
    words = data.view("<u2")
    keep = np.arange(words.shape[1])[None, :] < nwords[:, None]
    return (words * keep).sum(axis=1, dtype=np.uint64)


def _row_word_sums(data: NDArray[np.uint8], lengths: NDArray[np.integer]) -> NDArray[np.uint64]:
    """Unfolded sum of the big-endian 16-bit words of each row's first ``lengths[i]`` bytes."""
    data = np.asarray(data, dtype=np.uint8)
    n, w = data.shape
    if w % 2:
        data = np.concatenate([data, np.zeros((n, 1), np.uint8)], axis=1)
        w += 1
    lengths = np.clip(np.asarray(lengths, dtype=np.int64), 0, w)
    masked = np.where(np.arange(w)[None, :] < lengths[:, None], data, 0).astype(np.uint64)
    words = (masked[:, 0::2] << np.uint64(8)) | masked[:, 1::2]
    return words.sum(axis=1, dtype=np.uint64)


def ones_complement_rows(
    data: NDArray[np.uint8], lengths: NDArray[np.integer]
) -> NDArray[np.uint16]:
    """Internet checksum (complemented one's-complement sum) of each row's first ``lengths`` bytes.

    Odd lengths are padded with a zero byte, as RFC 1071 prescribes.
    """
    return ~fold(_row_word_sums(data, lengths))


def _payload_le(buf: NDArray[np.uint8], off: NDArray[np.int64]) -> NDArray[np.uint64]:
    """Folded little-endian word sums of each ragged row, each row read from an even position.

    The buffer is viewed as little-endian words on its own (global) grid and summed per row with
    one ``np.add.reduceat``; a row starting at an odd position is thereby summed big-endian on its
    own grid, and swapped back. Words split between two rows are corrected with their low byte.
    """
    n = len(off) - 1
    out = np.zeros(n, np.uint64)
    if n == 0:
        return out
    off = np.asarray(off, dtype=np.int64)
    end = int(off[-1])
    buf = buf[:end]
    nw = end // 2
    a, b = off[:-1], off[1:]
    wa, wb = a >> 1, b >> 1
    total = np.zeros(n, np.int64)
    if nw:
        words = buf[: 2 * nw].view("<u2")
        acc = np.uint64 if int((b - a).max()) > 131070 else np.uint32
        has = np.flatnonzero(wa < nw)  # rows starting past the last whole word hold no word
        sums = np.add.reduceat(words, wa[has], dtype=acc)
        total[has] += np.where(wa[has] < wb[has], sums, 0).astype(np.int64)
    a_odd = (a & 1) == 1
    b_odd = (b & 1) == 1
    ia = np.flatnonzero(a_odd)
    total[ia] -= buf[a[ia] - 1]
    ib = np.flatnonzero(b_odd)
    total[ib] += buf[b[ib] - 1]
    folded = fold(total)
    return np.where(a_odd, _swap16(folded), folded).astype(np.uint64)


def ipv4_header_checksums(ip: NDArray[np.uint8]) -> NDArray[np.uint16]:
    """Correct header checksum of each IPv4 header row (over IHL*4 bytes, checksum field as 0)."""
    ip = np.ascontiguousarray(ip, dtype=np.uint8)
    nwords = (ip[:, 0] & 0x0F).astype(np.int64) * 2
    total = _rows_le(ip, nwords)
    field = ip[:, 10:12].copy().view("<u2")[:, 0]
    total = total + np.uint64(0xFFFF) - field  # subtract the field (one's complement: add ~field)
    return _swap16(~fold(total))


def _l4_raw_sums(
    traffic: Traffic, zero_field: bool
) -> tuple[NDArray[np.uint64], NDArray[np.bool_]]:
    """Little-endian unfolded L4 sums (pseudo-header + header + payload) and the computable mask."""
    ip = np.ascontiguousarray(traffic.ip)
    l4 = np.ascontiguousarray(traffic.l4)
    proto = ip[:, 9]
    is_tcp = proto == PROTO_TCP
    is_udp = proto == PROTO_UDP
    is_icmp = proto == PROTO_ICMP
    hdr_len = traffic.l4_hdr_len
    payload_len = traffic.payload_len.astype(np.int64)
    frag = ((ip[:, 6].astype(np.int64) & 0x3F) << 8 | ip[:, 7]) != 0  # MF or offset set
    ok = (
        (is_tcp | is_udp | is_icmp)
        & ~frag
        & (traffic.held_payload_len == payload_len)
        & (hdr_len >= 8)
        & ((ip[:, 0] >> 4) == 4)
    )
    total = _rows_le(l4, hdr_len // 2)
    if zero_field:
        wl4 = l4.view("<u2")
        col = np.where(is_tcp, 8, np.where(is_udp, 3, 1))
        field = wl4[np.arange(len(col)), col].astype(np.uint64)
        total += np.where(is_tcp | is_udp | is_icmp, np.uint64(0xFFFF) - field, np.uint64(0))
    total += _payload_le(traffic.payload, traffic.payload_off)
    # Pseudo-header: source and destination addresses, protocol, L4 length (little-endian words).
    pseudo = ip[:, 12:20].copy().view("<u2").sum(axis=1, dtype=np.uint64)
    seg_len = (hdr_len + payload_len).astype(np.uint64)
    seg_words = (seg_len & np.uint64(0xFFFF)) + (seg_len >> np.uint64(16))
    pseudo += _swap16(fold(seg_words)).astype(np.uint64) + (proto.astype(np.uint64) << np.uint64(8))
    total += np.where(is_icmp, np.uint64(0), pseudo)
    return total, ok


def l4_checksums(traffic: Traffic) -> tuple[NDArray[np.uint16], NDArray[np.bool_]]:
    """Correct TCP/UDP/ICMP checksum of every packet, and the mask of packets it is valid for.

    TCP and UDP sums cover the pseudo-header (addresses, protocol, L4 length = L4 header length
    + ``payload_len``), the L4 header with its checksum field taken as zero and the payload; ICMP
    covers header and payload only. A UDP result of 0 is sent as 0xFFFF (RFC 768). The mask is
    False where the value cannot be computed: not TCP/UDP/ICMP, an IP fragment, or a packet that
    holds fewer payload bytes than ``payload_len``; the value there is meaningless.
    """
    total, ok = _l4_raw_sums(traffic, zero_field=True)
    csum = _swap16(~fold(total))
    csum[(csum == 0) & (traffic.ip[:, 9] == PROTO_UDP)] = 0xFFFF
    return csum, ok


def _l4_field(traffic: Traffic) -> NDArray[np.uint16]:
    """The checksum field of each packet's L4 header as on the wire (0 for other protocols)."""
    proto = traffic.ip[:, 9]
    col = np.where(proto == PROTO_TCP, 16, np.where(proto == PROTO_UDP, 6, 2))
    rows = np.arange(len(proto))
    hi = traffic.l4[rows, col].astype(np.uint16)
    lo = traffic.l4[rows, col + 1].astype(np.uint16)
    return (hi << 8) | lo


def fill_checksums(traffic: Traffic, *, copy: bool = True) -> Traffic:
    """Traffic with every IPv4 header checksum and every computable L4 checksum set correctly.

    ``copy=False`` writes into ``traffic.ip`` and ``traffic.l4`` (for callers that own them).
    """
    ip = traffic.ip.copy() if copy else traffic.ip
    ipc = ipv4_header_checksums(ip)
    ip[:, 10] = ipc >> 8
    ip[:, 11] = ipc & 0xFF
    out = replace(traffic, ip=ip, l4=traffic.l4.copy() if copy else traffic.l4)
    csum, ok = l4_checksums(out)
    proto = ip[:, 9]
    for p, col in ((PROTO_TCP, 16), (PROTO_UDP, 6), (PROTO_ICMP, 2)):
        rows = np.flatnonzero(ok & (proto == p))
        out.l4[rows, col] = csum[rows] >> 8
        out.l4[rows, col + 1] = csum[rows] & 0xFF
    return out


def checksum_ok(traffic: Traffic) -> dict[str, NDArray[np.bool_]]:
    """Checksum verdicts as boolean masks.

    - ``ip``: the IPv4 header checksum verifies.
    - ``l4``: the L4 checksum verifies, or is absent (UDP checksum 0), or cannot be computed.
    - ``l4_checked``: the L4 checksum could be computed (see :func:`l4_checksums`).
    """
    n = traffic.n_packets
    if n == 0:
        empty = np.zeros(0, np.bool_)
        return {"ip": empty, "l4": empty, "l4_checked": empty}
    ip = traffic.ip
    ip_sum = fold(_rows_le(np.ascontiguousarray(ip), (ip[:, 0] & 0x0F).astype(np.int64) * 2))
    total, checked = _l4_raw_sums(traffic, zero_field=False)
    l4_good = fold(total) == 0xFFFF
    udp_absent = (ip[:, 9] == PROTO_UDP) & (_l4_field(traffic) == 0)
    return {
        "ip": ip_sum == 0xFFFF,
        "l4": ~checked | l4_good | udp_absent,
        "l4_checked": checked,
    }
