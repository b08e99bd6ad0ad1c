"""Vectorized parsing of IPv4 and TCP options: a walk over option positions, all packets at once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from netdiffusion.repair._segments import get_be

I64 = NDArray[np.int64]
Mask = NDArray[np.bool_]

# TCP option kinds
TCP_EOL, TCP_NOP, TCP_MSS, TCP_WS, TCP_SACKP, TCP_SACK, TCP_TS = 0, 1, 2, 3, 4, 5, 8
# Fixed lengths of TCP options the repair knows (others: any length >= 2 that fits).
_TCP_FIXED = {TCP_MSS: 4, TCP_WS: 3, TCP_SACKP: 2, TCP_TS: 10, 19: 18, 28: 4}
# Fixed lengths of IPv4 options (RFC 791 and later); RR/LSRR/SSRR are 3 + 4k.
_IP_FIXED = {136: 4, 148: 4}
_IP_ROUTE = (7, 131, 137)


@dataclass
class TcpOptions:
    """Per packet: where the options first go wrong, and the values of the well-formed ones."""

    bad_at: I64  # byte offset of the first malformed option, -1 when all are well formed
    has_mss: Mask
    mss: I64
    has_ws: Mask
    ws: I64
    has_sackp: Mask
    has_ts: Mask
    tsval: I64
    tsecr: I64
    other: Mask  # any option besides NOP/EOL/MSS/WS/SACK-permitted/timestamps


def _walk(
    hdr: NDArray[np.uint8],
    hlen: I64,
    visit: object | None,
    fixed: dict[int, int],
    routes: tuple[int, ...] = (),
    sack: bool = False,
) -> I64:
    """Walk options from byte 20 to ``hlen``; returns the first malformed offset per row (-1)."""
    n = len(hdr)
    pos = np.full(n, 20, np.int64)
    bad_at = np.full(n, -1, np.int64)
    active = pos < hlen
    for _ in range(40):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        p = pos[idx]
        hl = hlen[idx]
        kind = hdr[idx, np.minimum(p, 59)].astype(np.int64)
        eol = kind == 0
        nop = kind == 1
        tlv = ~(eol | nop)
        has_len = p + 1 < hl
        ln = np.where(has_len, hdr[idx, np.minimum(p + 1, 59)], 0).astype(np.int64)
        ok = tlv & (ln >= 2) & (p + ln <= hl)
        for k, want in fixed.items():
            ok &= (kind != k) | (ln == want)
        for k in routes:
            ok &= (kind != k) | ((ln >= 3) & ((ln - 3) % 4 == 0))
        if sack:  # SACK blocks: 2 + 8k bytes, k = 1..4
            ok &= (kind != TCP_SACK) | np.isin(ln, (10, 18, 26, 34))
        bad = tlv & ~ok
        bad_at[idx[bad]] = p[bad]
        good = tlv & ok
        if visit is not None and good.any():
            visit(idx[good], p[good], kind[good], ln[good])  # type: ignore[operator]
        newp = p + np.where(nop, 1, np.where(good, ln, 0))
        pos[idx] = newp
        active[idx] = ~eol & ~bad & (newp < hl)
    return bad_at


def parse_tcp_options(
    l4: NDArray[np.uint8], hlen: I64, *, values: bool = True, only: Mask | None = None
) -> TcpOptions:
    """Parse TCP options of every row (header length ``hlen`` in bytes, clipped to 20..60).

    ``values=False`` finds malformed options only (``bad_at``) and leaves the value columns
    empty; ``only`` parses just those rows (the others read as having no options). Rows in the
    usual data-segment layout (NOP, NOP, timestamps; 32-byte header) are read directly; the
    others are walked option by option.
    """
    n = len(l4)
    hlen = np.clip(hlen, 20, 60)
    z = np.zeros(n, np.int64)
    f = np.zeros(n, np.bool_)
    out = TcpOptions(z.copy(), f.copy(), z.copy(), f.copy(), z.copy(), f.copy(), f.copy(),
                     z.copy(), z.copy(), f.copy())  # fmt: skip
    if n == 0:
        return out
    canon = (hlen == 32) & (l4[:, 20] == TCP_NOP) & (l4[:, 21] == TCP_NOP)
    canon &= (l4[:, 22] == TCP_TS) & (l4[:, 23] == 10)
    if only is not None:
        canon &= only
    walk = np.flatnonzero(~canon if only is None else ~canon & only)
    if walk.size < n:
        if values:
            out.has_ts[canon] = True
            out.tsval[canon] = get_be(l4[canon], 24, 4)
            out.tsecr[canon] = get_be(l4[canon], 28, 4)
        if walk.size == 0:
            out.bad_at[:] = -1
            return out
        hdr, hl = l4[walk], hlen[walk]
    else:
        hdr, hl = l4, hlen

    def be(rows: I64, col: I64, nbytes: int) -> I64:
        v = np.zeros(len(rows), np.int64)
        for k in range(nbytes):
            v = (v << 8) | hdr[rows, np.minimum(col + k, 59)]
        return v

    def visit(rows: I64, p: I64, kind: I64, ln: I64) -> None:
        at = walk[rows] if walk.size < n else rows
        m = kind == TCP_MSS
        out.has_mss[at[m]] = True
        out.mss[at[m]] = be(rows[m], p[m] + 2, 2)
        m = kind == TCP_WS
        out.has_ws[at[m]] = True
        out.ws[at[m]] = hdr[rows[m], np.minimum(p[m] + 2, 59)]
        m = kind == TCP_SACKP
        out.has_sackp[at[m]] = True
        m = kind == TCP_TS
        out.has_ts[at[m]] = True
        out.tsval[at[m]] = be(rows[m], p[m] + 2, 4)
        out.tsecr[at[m]] = be(rows[m], p[m] + 6, 4)
        m = ~np.isin(kind, [TCP_MSS, TCP_WS, TCP_SACKP, TCP_TS])
        out.other[at[m]] = True

    bad_at = _walk(hdr, hl, visit if values else None, _TCP_FIXED, sack=True)
    if walk.size < n:
        out.bad_at[:] = -1
        out.bad_at[walk] = bad_at
    else:
        out.bad_at = bad_at
    return out


def parse_ip_options(ip: NDArray[np.uint8], strict: bool) -> tuple[I64, Mask]:
    """First malformed IPv4 option offset per row (-1: fine), and whether any option is present.

    ``strict`` accepts only NOP, EOL and Router Alert (what generated traffic may carry).
    """
    hlen = np.clip((ip[:, 0] & 0x0F).astype(np.int64) * 4, 20, 60)
    present = np.zeros(len(ip), np.bool_)

    def visit(rows: I64, p: I64, kind: I64, ln: I64) -> None:
        present[rows] = True
        if strict:
            odd = kind != 148
            bad_rows[rows[odd]] = np.minimum(bad_rows[rows[odd]], p[odd])

    bad_rows = np.full(len(ip), 1 << 30, np.int64)
    bad_at = _walk(ip, hlen, visit, _IP_FIXED, _IP_ROUTE)
    if strict:
        sb = np.where(bad_rows < (1 << 30), bad_rows, -1)
        bad_at = np.where(bad_at < 0, sb, np.where(sb >= 0, np.minimum(bad_at, sb), bad_at))
    return bad_at, present
