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

import itertools
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
    "verify_checksums",
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
    """Unfolded sums of each row's first ``nwords`` little-endian 16-bit words (even row width).

    The value is only meaningful once folded: rows whose word counts are all even (IPv4 and L4
    headers always are) are summed as 32-bit words, one group of equal lengths at a time, which
    folds to the same one's-complement sum (2**16 = 1 modulo 0xFFFF; zero only for zero bytes).
    """
    data = np.ascontiguousarray(data, dtype=np.uint8)
    nwords = np.asarray(nwords, dtype=np.int64)
    n, w = data.shape
    if w % 4 or n == 0 or (nwords & 1).any():
        words = data.view("<u2")
        keep = np.arange(words.shape[1])[None, :] < nwords[:, None]
        return (words * keep).sum(axis=1, dtype=np.uint64)
    d = data.view("<u4")
    n32 = np.clip(nwords >> 1, 0, d.shape[1])
    out = np.zeros(n, np.uint64)
    counts = np.bincount(n32)
    present = np.flatnonzero(counts)
    if len(present) > 1:  # rows grouped by length: a stable radix sort of small integers
        order = np.argsort(n32.astype(np.uint8), kind="stable")
        ends = np.cumsum(counts)
    for v in present.tolist():  # a handful of header lengths
        if v == 0:
            continue
        if len(present) == 1:
            sub = d[:, :v]
        else:
            rows = order[ends[v] - counts[v] : ends[v]]
            sub = data[rows].view("<u4")[:, :v]
        acc = sub[:, 0].astype(np.uint64)
        for k in range(1, v):  # column sums: no cast of the whole block
            acc += sub[:, k]
        if len(present) == 1:
            return acc
        out[rows] = acc
    return out


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


_M48 = np.uint64((1 << 48) - 1)
_S48 = np.uint64(48)
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_CHUNK_WORDS = 1 << 17  # 64-bit words summed per pass (1 MiB: the shifted copy stays in cache)
_LONG_ROW = 1 << 18  # rows longer than this take the 16-bit path (no overflow in 64 bits)


def _r48(v: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """``v`` reduced below 2**49, congruent modulo 0xFFFF, zero only where ``v`` is."""
    return (v & _M48) + (v >> _S48)


def _payload_le(buf: NDArray[np.uint8], off: NDArray[np.int64]) -> NDArray[np.uint64]:
    """Folded little-endian word sums of each ragged row, each row read from an even position.

    The buffer is read as 64-bit little-endian words on its own (global) grid; each such word is
    congruent modulo 0xFFFF to the sum of its four 16-bit words. Per row, the whole words are
    summed with ``np.add.reduceat`` twice (all 64 bits modulo 2**64, and the top 16 bits exactly,
    which together give the exact sum of the low 48 bits), chunk by chunk; the partial words at
    either end are masked to the row's bytes. A row starting at an odd position is thereby
    summed big-endian on its own grid, and swapped back. No 16-bit casts of the whole buffer.
    """
    n = len(off) - 1
    off = np.asarray(off, dtype=np.int64)
    if n == 0 or int(off[-1]) < 8:
        return _payload_le_u16(buf, off)
    a, b = off[:-1], off[1:]
    lens = b - a
    if int(lens.max()) > _LONG_ROW or int(lens.min()) < 0:
        return _payload_le_u16(buf, off)
    end = int(off[-1])
    nw = end // 8
    w64 = buf[: 8 * nw].view("<u8")
    tail_bytes = np.zeros(8, np.uint8)
    tail_bytes[: end - 8 * nw] = buf[8 * nw : end]
    last = tail_bytes.view("<u8")[0]  # the final partial word, zero padded

    def word(i: NDArray[np.int64]) -> NDArray[np.uint64]:
        return np.where(i < nw, w64[np.minimum(i, nw - 1)], last)

    wh, kh = a >> 3, a & 7
    wt, kt = b >> 3, b & 7
    hmask = _ONES << (8 * kh).astype(np.uint64)
    tmask = np.where(kt > 0, (np.uint64(1) << (8 * kt).astype(np.uint64)) - np.uint64(1), _ONES)
    same = (wh == wt) & (kh != 0)  # a row inside one word: head and tail are that word
    head = np.where(kh != 0, word(wh) & hmask & np.where(same, tmask, _ONES), np.uint64(0))
    tail = np.where((kt != 0) & ~same, word(wt) & tmask, np.uint64(0))
    total = _r48(head) + _r48(tail)
    first, stop = wh + (kh != 0), wt  # whole words [first, stop) of each row
    rows = np.flatnonzero(first < stop)
    if rows.size:
        fr, sr = first[rows], stop[rows]
        cuts = np.searchsorted(fr, np.arange(_CHUNK_WORDS, int(sr[-1]), _CHUNK_WORDS))
        bounds = np.concatenate([[0], cuts, [len(rows)]]).tolist()
        mid = np.zeros(len(rows), np.uint64)
        for r0, r1 in itertools.pairwise(bounds):  # chunks of rows, each one pass
            if r0 == r1:
                continue
            lo = int(fr[r0])
            seg = w64[lo : int(sr[r1 - 1])]
            idx = np.empty(2 * (r1 - r0), np.int64)  # [first, stop) pairs; the last runs to the end
            idx[0::2] = fr[r0:r1] - lo
            idx[1::2] = sr[r0:r1] - lo
            idx = idx[:-1]
            s = np.add.reduceat(seg, idx)[0::2]
            top = np.add.reduceat(seg >> _S48, idx)[0::2]
            mid[r0:r1] = _r48(s - (top << _S48)) + top
        total[rows] += mid
    folded = fold(total)
    return np.where((a & 1) == 1, _swap16(folded), folded).astype(np.uint64)


def _payload_le_u16(buf: NDArray[np.uint8], off: NDArray[np.int64]) -> NDArray[np.uint64]:
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


_ROWS_CHUNK = 65536  # packets per pass of the L4 sums: their temporaries stay in cache


def _l4_sums(
    traffic: Traffic,
) -> tuple[NDArray[np.uint64], NDArray[np.bool_], NDArray[np.uint64], NDArray[np.bool_]]:
    """Unfolded L4 sums with the checksum field as on the wire, and what they need.

    Returns the little-endian sums (pseudo-header + header + payload), the computable mask, the
    checksum field as a little-endian word (0 for other protocols) and the TCP/UDP/ICMP mask.
    Large traffic is summed in chunks of packets.
    """
    n = traffic.n_packets
    if n <= _ROWS_CHUNK:
        return _l4_sums_rows(traffic)
    parts = [
        _l4_sums_rows(_rows(traffic, s, min(n, s + _ROWS_CHUNK))) for s in range(0, n, _ROWS_CHUNK)
    ]
    total, ok, field, has_l4 = (np.concatenate(p) for p in zip(*parts, strict=True))
    return total, ok, field, has_l4


def _rows(traffic: Traffic, s: int, e: int) -> Traffic:
    """Packets ``s:e`` as views, for the checksum passes (payload offsets stay absolute)."""
    return replace(
        traffic,
        ip=traffic.ip[s:e],
        l4=traffic.l4[s:e],
        payload_len=traffic.payload_len[s:e],
        payload_off=traffic.payload_off[s : e + 1],
    )


def _l4_sums_rows(
    traffic: Traffic,
) -> tuple[NDArray[np.uint64], NDArray[np.bool_], NDArray[np.uint64], NDArray[np.bool_]]:
    """:func:`_l4_sums` in one pass."""
    ip = np.ascontiguousarray(traffic.ip)
    l4 = np.ascontiguousarray(traffic.l4)
    proto = ip[:, 9]
    is_tcp = proto == PROTO_TCP
    is_udp = proto == PROTO_UDP
    is_icmp = proto == PROTO_ICMP
    has_l4 = is_tcp | is_udp | is_icmp
    hdr_len = traffic.l4_hdr_len
    payload_len = traffic.payload_len.astype(np.int64)
    frag = ((ip[:, 6].astype(np.int64) & 0x3F) << 8 | ip[:, 7]) != 0  # MF or offset set
    ok = (
        has_l4
        & ~frag
        & (traffic.held_payload_len == payload_len)
        & (hdr_len >= 8)
        & ((ip[:, 0] >> 4) == 4)
    )
    wl4 = l4.view("<u2")
    field = np.where(is_tcp, wl4[:, 8], np.where(is_udp, wl4[:, 3], wl4[:, 1]))
    field = np.where(has_l4, field, 0).astype(np.uint64)
    total = _rows_le(l4, hdr_len // 2)
    total += _payload_le(traffic.payload, traffic.payload_off)
    # Pseudo-header: source and destination addresses, protocol, L4 length (little-endian words
    # summed as 32-bit words, as in _rows_le).
    ip32 = ip.view("<u4")
    pseudo = ip32[:, 3].astype(np.uint64) + ip32[:, 4]
    seg_len = (hdr_len + payload_len).astype(np.uint64)
    seg_words = (seg_len & np.uint64(0xFFFF)) + (seg_len >> np.uint64(16))
    pseudo += _swap16(fold(seg_words)).astype(np.uint64) + (proto.astype(np.uint64) << np.uint64(8))
    total += np.where(is_icmp, np.uint64(0), pseudo)
    return total, ok, field, has_l4


def _l4_correct(
    total: NDArray[np.uint64],
    field: NDArray[np.uint64],
    has_l4: NDArray[np.bool_],
    is_udp: NDArray[np.bool_],
) -> NDArray[np.uint16]:
    """Correct checksums from :func:`_l4_sums`' values (the field taken as zero)."""
    csum = _swap16(~fold(total + np.where(has_l4, np.uint64(0xFFFF) - field, np.uint64(0))))
    # A computed 0 means the other words sum to one's-complement zero: then 0xFFFF verifies as
    # well, and it is the only value that does when they are all zero (an all-zero ICMP echo).
    # UDP must send 0xFFFF anyway (0 there means "no checksum", RFC 768).
    csum[(csum == 0) & (has_l4 | is_udp)] = 0xFFFF
    return csum


def l4_checksums(traffic: Traffic) -> tuple[NDArray[np.uint16], NDArray[np.bool_]]:
    """Correct TCP/UDP/ICMP checksum of every packet, and the mask of packets it is valid for.

    TCP and UDP sums cover the pseudo-header (addresses, protocol, L4 length = L4 header length
    + ``payload_len``), the L4 header with its checksum field taken as zero and the payload; ICMP
    covers header and payload only. A UDP result of 0 is sent as 0xFFFF (RFC 768). The mask is
    False where the value cannot be computed: not TCP/UDP/ICMP, an IP fragment, or a packet that
    holds fewer payload bytes than ``payload_len``; the value there is meaningless.
    """
    total, ok, field, has_l4 = _l4_sums(traffic)
    return _l4_correct(total, field, has_l4, traffic.ip[:, 9] == PROTO_UDP), ok


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
    return _verify(traffic, correct=False)[0]


def verify_checksums(
    traffic: Traffic,
) -> tuple[dict[str, NDArray[np.bool_]], NDArray[np.uint16]]:
    """:func:`checksum_ok`'s verdicts and :func:`l4_checksums`' values, summing the bytes once."""
    return _verify(traffic, correct=True)


def _verify(
    traffic: Traffic, correct: bool
) -> tuple[dict[str, NDArray[np.bool_]], NDArray[np.uint16]]:
    n = traffic.n_packets
    if n == 0:
        empty = np.zeros(0, np.bool_)
        return {"ip": empty, "l4": empty, "l4_checked": empty}, np.zeros(0, np.uint16)
    ip = np.ascontiguousarray(traffic.ip)
    ip_sum = fold(_rows_le(ip, (ip[:, 0] & 0x0F).astype(np.int64) * 2))
    total, checked, field, has_l4 = _l4_sums(traffic)
    l4_good = fold(total) == 0xFFFF
    is_udp = ip[:, 9] == PROTO_UDP
    udp_absent = is_udp & (field == 0)
    verdict = {
        "ip": ip_sum == 0xFFFF,
        "l4": ~checked | l4_good | udp_absent,
        "l4_checked": checked,
    }
    if not correct:
        return verdict, np.zeros(0, np.uint16)
    return verdict, _l4_correct(total, field, has_l4, is_udp)
