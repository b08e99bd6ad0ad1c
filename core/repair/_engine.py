"""The repair passes, vectorized over all packets and stateful per flow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import PROTO_ICMP, PROTO_TCP, PROTO_UDP, Traffic, ragged_take
from netdiffusion.checksum import (
    fill_checksums,
    ipv4_header_checksums,
    verify_checksums,
)
from netdiffusion.repair._model import PORT_SNAP_BITS, RepairError, RepairReport, RepairStats
from netdiffusion.repair._options import parse_ip_options, parse_tcp_options
from netdiffusion.repair._segments import Segments, get_be, group_mode, mix, set_be

I64 = NDArray[np.int64]
Mask = NDArray[np.bool_]

M32 = 0xFFFFFFFF
MIN_TTL = 5
MIN_RTT_NS = 10_000  # SYN -> SYN-ACK gap at least this (10 us)
#: Initial retransmission timeouts of an unanswered SYN (RFC 6298: 1 s; older stacks: 3 s).
SYN_RTO_NS = np.array([1_000_000_000, 3_000_000_000], np.float64)
SYN_BACKOFF_DOUBLINGS = 6  # Linux gives up after 6 SYN retries
TS_TICK_NS = 1_000_000  # TCP timestamp clock: 1 ms
_FLIP_PASSES = 3  # passes turning redundant pure ACKs into the peer's ACKs
# TCP flag bits
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
# ICMP types the repair generates, and the highest valid code of each
ICMP_ECHO_REPLY, ICMP_UNREACH, ICMP_ECHO, ICMP_TIMX = 0, 3, 8, 11
ICMP_MAX_CODE = {ICMP_UNREACH: 15, ICMP_TIMX: 1}
ICMP_ERR_MIN, ICMP_ERR_MAX = 28, 548  # quoted inner IPv4 header + 8 bytes; RFC 1812 576 - 28


def repair(
    traffic: Traffic,
    *,
    synthetic: bool,
    stats: RepairStats | None = None,
    mtu: int = 1500,
    seed: int = 0,
) -> tuple[Traffic, RepairReport]:
    """Make ``traffic`` protocol-valid; returns the repaired traffic and what was changed.

    ``traffic`` must have its flows assembled (``flow >= 0`` everywhere; ``direction`` 0 for the
    originator). ``synthetic=True`` rebuilds generated traffic: one transport protocol and port
    pair per flow, TCP handshakes and state, options, lengths, IP ids and TTLs, timing, payload
    bytes and checksums; its output is sorted by time (stably) and may drop pure ACKs with
    nothing new to acknowledge after their side's FIN. ``synthetic=False`` repairs a real
    capture in place (order kept): checksums, lengths and malformed options are fixed,
    everything else passes through byte-identical.
    """
    n = traffic.n_packets
    if not 68 <= mtu <= 65535:
        raise RepairError(f"repair: MTU {mtu} is outside 68..65535")
    if n and int(traffic.flow.min()) < 0:
        raise RepairError("repair: some packets have no flow (flow == -1); assemble flows first")
    if n and not np.isin(traffic.direction, (0, 1)).all():
        raise RepairError("repair: direction must be 0 (originator) or 1 (responder)")
    if n == 0:
        return traffic.copy(), RepairReport()
    if synthetic:
        return _repair_synthetic(traffic, stats, mtu, seed)
    return _repair_real(traffic)


# -- counting ---------------------------------------------------------------------------------


_IP_FIELDS = (
    ("ip_version_ihl", 0, 1),
    ("ip_total_length", 2, 4),
    ("ip_id", 4, 6),
    ("ip_flags_offset", 6, 8),
    ("ip_ttl", 8, 9),
    ("ip_protocol", 9, 10),
    ("ip_checksum", 10, 12),
    ("ip_address", 12, 20),
    ("ip_options", 20, 60),
)
_L4_FIELDS = {
    PROTO_TCP: (
        ("tcp_port", 0, 4),
        ("tcp_seq", 4, 8),
        ("tcp_ack", 8, 12),
        ("tcp_offset_reserved", 12, 13),
        ("tcp_flags", 13, 14),
        ("tcp_window", 14, 16),
        ("tcp_checksum", 16, 18),
        ("tcp_urgent", 18, 20),
        ("tcp_options", 20, 60),
    ),
    PROTO_UDP: (
        ("udp_port", 0, 4),
        ("udp_length", 4, 6),
        ("udp_checksum", 6, 8),
        ("udp_header", 8, 60),
    ),
    PROTO_ICMP: (
        ("icmp_type_code", 0, 2),
        ("icmp_checksum", 2, 4),
        ("icmp_id_seq", 4, 8),
        ("icmp_header", 8, 60),
    ),
}


def _count_changes(
    fixed: dict[str, int],
    ip_before: NDArray[np.uint8],
    l4_before: NDArray[np.uint8],
    ip_after: NDArray[np.uint8],
    l4_after: NDArray[np.uint8],
    rows: I64 | None = None,
) -> None:
    """Add the number of packets whose each header field changed to ``fixed``.

    Row ``i`` of the ``after`` arrays is compared with row ``rows[i]`` of the ``before`` arrays
    (row ``i`` when ``rows`` is None), in chunks of rows that keep the comparisons in cache.
    """
    n = len(ip_after)
    for s in range(0, n, _COUNT_CHUNK):
        e = min(n, s + _COUNT_CHUNK)
        r = slice(s, e) if rows is None else rows[s:e]
        _count_chunk(fixed, ip_before[r], l4_before[r], ip_after[s:e], l4_after[s:e])


_COUNT_CHUNK = 32768


def _count_chunk(
    fixed: dict[str, int],
    ip_before: NDArray[np.uint8],
    l4_before: NDArray[np.uint8],
    ip_after: NDArray[np.uint8],
    l4_after: NDArray[np.uint8],
) -> None:
    """:func:`_count_changes` for rows compared one to one."""
    if len(ip_after) == 0:
        return
    ip_bits = _diff_bits(ip_before, ip_after)
    for name, a, b in _IP_FIELDS:
        _add(fixed, name, int(np.count_nonzero(ip_bits & _field_mask(a, b))))
    l4_bits = _diff_bits(l4_before, l4_after)
    proto = ip_after[:, 9]
    for p, fields in _L4_FIELDS.items():
        sel = proto == p
        if not sel.any():
            continue
        bits = l4_bits[sel]
        for name, a, b in fields:
            _add(fixed, name, int(np.count_nonzero(bits & _field_mask(a, b))))


def _diff_bits(before: NDArray[np.uint8], after: NDArray[np.uint8]) -> NDArray[np.uint64]:
    """Per row, a 64-bit mask of the (up to 64) byte columns that differ; column 0 is the MSB."""
    packed = np.packbits(before != after, axis=1)
    out = np.zeros((len(packed), 8), np.uint8)
    out[:, : packed.shape[1]] = packed
    return out.view(">u8")[:, 0].astype(np.uint64)


def _field_mask(a: int, b: int) -> np.uint64:
    """Bit mask of byte columns ``[a, b)`` in :func:`_diff_bits` order."""
    return np.uint64(((1 << (b - a)) - 1) << (64 - b))


def _add(fixed: dict[str, int], name: str, count: int) -> None:
    if count:
        fixed[name] = fixed.get(name, 0) + count


# -- real captures ----------------------------------------------------------------------------


def _repair_real(traffic: Traffic) -> tuple[Traffic, RepairReport]:
    """Fix a real capture's defects; leave valid fields (and packet order) untouched.

    Payload bytes a snapped capture did not keep are filled (counted as ``payload_filled``) so
    that every packet is complete and its checksum can be made right. Work is done where it is
    needed: options are walked only in headers that have them, checksums are summed once, and
    only the packets changed are compared for the report.
    """
    n = traffic.n_packets
    report = RepairReport(packets_in=n, packets_out=n)
    held = traffic.held_payload_len
    missing = int(np.count_nonzero(held < traffic.payload_len))
    if missing:
        traffic, report.payload_filler = _fill_rows(traffic, held, missing)
        _add(report.fixed, "payload_filled", missing)
    ip = traffic.ip.copy()
    l4 = traffic.l4.copy()
    proto = ip[:, 9]
    ihl = (ip[:, 0] & 0x0F).astype(np.int64)
    version_ok = (ip[:, 0] >> 4) == 4
    frag = (get_be(ip, 6, 2) & 0x3FFF) != 0
    plen = traffic.payload_len.astype(np.int64)
    touched = np.zeros(n, np.bool_)  # packets this pass may have changed

    # Malformed IPv4 options: overwrite from the first bad option to the header end with NOPs.
    opt_rows = np.flatnonzero(ihl > 5)
    if opt_rows.size:
        bad_ip, _ = parse_ip_options(ip[opt_rows], strict=False)
        sub = ip[opt_rows]
        _nop_fill(sub, bad_ip, ihl[opt_rows] * 4)
        ip[opt_rows] = sub
        touched[opt_rows[bad_ip >= 0]] = True
    # Malformed TCP options, likewise.
    is_tcp = proto == PROTO_TCP
    tcp_hl = (l4[:, 12] >> 4).astype(np.int64) * 4
    tcp_rows = np.flatnonzero(is_tcp & (tcp_hl > 20))
    if tcp_rows.size:
        opts = parse_tcp_options(l4[tcp_rows], tcp_hl[tcp_rows], values=False)
        bad = opts.bad_at >= 0
        if bad.any():
            rows = tcp_rows[bad]
            sub = l4[rows]
            _nop_fill(sub, opts.bad_at[bad], tcp_hl[rows])
            l4[rows] = sub
            touched[rows] = True

    # Lengths of whole, known datagrams.
    known = version_ok & (ihl >= 5) & ~frag & np.isin(proto, (PROTO_TCP, PROTO_UDP, PROTO_ICMP))
    known &= ~(is_tcp & (tcp_hl < 20))
    l4_hl = np.where(is_tcp, tcp_hl, 8)
    want_total = ihl * 4 + l4_hl + plen
    rows = np.flatnonzero(known & (get_be(ip, 2, 2) != want_total) & (want_total <= 0xFFFF))
    set_be(ip, rows, 2, 2, want_total[rows])
    touched[rows] = True
    is_udp = known & (proto == PROTO_UDP)
    want_udp = 8 + plen
    rows = np.flatnonzero(is_udp & (get_be(l4, 4, 2) != want_udp) & (want_udp <= 0xFFFF))
    set_be(l4, rows, 4, 2, want_udp[rows])
    touched[rows] = True

    # Checksums where they are wrong (an absent UDP checksum is valid and stays absent); the
    # bytes are summed once for both the verdicts and the correct L4 values.
    verdict, l4_csum = verify_checksums(replace(traffic, ip=ip, l4=l4))
    rows = np.flatnonzero(~verdict["ip"] & version_ok & (ihl >= 5))
    if rows.size:
        csum = ipv4_header_checksums(ip[rows])
        set_be(ip, rows, 10, 2, csum)
        touched[rows] = True
    bad_l4 = np.flatnonzero(~verdict["l4"] & known)
    if bad_l4.size:
        ok = verdict["l4_checked"]
        for p, col in ((PROTO_TCP, 16), (PROTO_UDP, 6), (PROTO_ICMP, 2)):
            r = bad_l4[(proto[bad_l4] == p) & ok[bad_l4]]
            set_be(l4, r, col, 2, l4_csum[r])
            touched[r] = True

    t_rows = np.flatnonzero(touched)
    _count_changes(report.fixed, traffic.ip[t_rows], traffic.l4[t_rows], ip[t_rows], l4[t_rows])
    # Defects left alone: a real capture's timing and unverifiable checksums are what they are.
    seg_order = np.argsort(traffic.flow, kind="stable")
    fl = traffic.flow[seg_order]
    ts = traffic.ts_ns[seg_order]
    _add(report.unfixed, "ts_backwards", int(((np.diff(ts) < 0) & (fl[1:] == fl[:-1])).sum()))
    _add(report.unfixed, "l4_unverifiable", int((~verdict["l4_checked"] & known).sum()))
    _add(report.unfixed, "ip_fragment", int(frag.sum()))
    return replace(traffic, ip=ip, l4=l4), report


def _fill_rows(traffic: Traffic, held: I64, missing: int) -> tuple[Traffic, str]:
    """:func:`_fill_payloads` run on the packets that need it only, spliced back in place.

    Packets holding more than ``payload_len`` bytes (not produced by the reader) take the
    whole-traffic path, which also cuts them.
    """
    plen = traffic.payload_len.astype(np.int64)
    rows = np.flatnonzero(held != plen)
    if (held[rows] > plen[rows]).any():
        return _fill_payloads(traffic, missing)
    sub, name = _fill_payloads(traffic.take(rows), missing)
    buf, off = _splice_rows(
        traffic.payload, traffic.payload_off, rows, sub.payload, sub.payload_off
    )
    return replace(traffic, payload=buf, payload_off=off), name


def _splice_rows(
    buf: NDArray[np.uint8], off: I64, rows: I64, sub_buf: NDArray[np.uint8], sub_off: I64
) -> tuple[NDArray[np.uint8], I64]:
    """The ragged array ``(buf, off)`` with rows ``rows`` (ascending) replaced by the rows of
    ``(sub_buf, sub_off)``, each at least as long as the row it replaces.

    The other rows' bytes move as contiguous runs: one slice copy up to the first replaced row,
    one masked copy after it (no per-byte index over the whole buffer).
    """
    old_len = np.diff(off)
    sub_len = np.diff(sub_off)
    new_len = old_len.copy()
    new_len[rows] = sub_len
    new_off = np.zeros(len(old_len) + 1, np.int64)
    np.cumsum(new_len, out=new_off[1:])
    out = np.empty(int(new_off[-1]), np.uint8)
    base = int(off[0])
    old = buf[base : int(off[-1])]
    extra = sub_len - old_len[rows]
    if rows.size:
        # bytes of the other rows: a prefix slice, then everything but the inserted positions
        p0 = int(off[rows[0] + 1]) - base
        out[:p0] = old[:p0]
        keep = np.ones(len(out) - p0, np.bool_)
        at = np.repeat(off[rows + 1] - base - p0, extra)
        keep[at + np.arange(len(at))] = False
        out[p0:][keep] = old[p0:]
        # the replaced rows, whole
        total = int(sub_len.sum())
        within = np.arange(total) - np.repeat(np.cumsum(sub_len) - sub_len, sub_len)
        out[np.repeat(new_off[rows], sub_len) + within] = sub_buf[sub_off[0] : sub_off[-1]]
    else:
        out[:] = old
    return out, new_off


def _nop_fill(hdr: NDArray[np.uint8], bad_at: I64, hlen: I64) -> None:
    """Overwrite bytes ``[bad_at, hlen)`` of each row with NOP (1), where ``bad_at >= 0``."""
    rows = np.flatnonzero(bad_at >= 0)
    if rows.size == 0:
        return
    cols = np.arange(hdr.shape[1])[None, :]
    m = (cols >= bad_at[rows, None]) & (cols < hlen[rows, None])
    sub = hdr[rows]
    sub[m] = 1
    hdr[rows] = sub


# -- generated traffic ------------------------------------------------------------------------


def _repair_synthetic(
    traffic: Traffic, stats: RepairStats | None, mtu: int, seed: int
) -> tuple[Traffic, RepairReport]:
    """Rebuild generated traffic into valid flows (see :func:`repair`)."""
    report = RepairReport(packets_in=traffic.n_packets)
    fl, tsi = traffic.flow, traffic.ts_ns
    grouped = bool(((fl[1:] > fl[:-1]) | ((fl[1:] == fl[:-1]) & (tsi[1:] >= tsi[:-1]))).all())
    # a decoder emits flows in (flow, time) order already: no copy then
    order = None if grouped else np.lexsort((np.arange(traffic.n_packets), tsi, fl))
    t = traffic if order is None else traffic.take(order)
    rows = np.arange(t.n_packets, dtype=np.int64)  # current packet -> row of ``t``
    S = Segments(t.flow)
    F = S.count
    seg, pos = S.seg, S.pos
    fid = t.flow[S.starts]  # flow ids, for deterministic per-flow fallbacks
    ip = t.ip.copy()
    l4 = t.l4  # generated L4 headers (read only); rebuilt into ``l4_out``
    mac = t.mac.copy()
    ts = t.ts_ns.copy()
    dir_in = t.direction.astype(np.int64)
    plen = np.clip(t.payload_len.astype(np.int64), 0, 0xFFFF)

    # -- one transport protocol per flow (majority of valid values; ties: TCP, UDP, ICMP) ----
    p_in = ip[:, 9].astype(np.int64)
    cat = np.select([p_in == PROTO_TCP, p_in == PROTO_UDP, p_in == PROTO_ICMP], [0, 1, 2], 3)
    counts = np.bincount(seg * 4 + cat, minlength=4 * F).reshape(F, 4)
    f_proto = np.array([PROTO_TCP, PROTO_UDP, PROTO_ICMP])[np.argmax(counts[:, :3], axis=1)]
    f_tcp = f_proto == PROTO_TCP
    f_icmp = f_proto == PROTO_ICMP
    proto = f_proto[seg]
    is_tcp = proto == PROTO_TCP
    is_udp = proto == PROTO_UDP
    is_icmp = proto == PROTO_ICMP

    # -- ports: the responder's (service) port and the originator's port, modes per flow -----
    sport, dport = get_be(l4, 0, 2), get_be(l4, 2, 2)
    had_ports = np.flatnonzero((p_in == PROTO_TCP) | (p_in == PROTO_UDP))
    svc_val = np.where(dir_in == 0, dport, sport)[had_ports]
    cli_val = np.where(dir_in == 0, sport, dport)[had_ports]
    svc = group_mode(seg[had_ports], svc_val, F)
    cli = group_mode(seg[had_ports], cli_val, F)
    if stats is not None and stats.service_ports:
        svc, snapped = _snap_ports(svc, f_proto, t, S, stats)
        _add(report.fixed, "service_port_snapped", int(S.length[snapped].sum()))
    h = mix(seed, fid, np.full(F, 1))
    svc = np.where(svc > 0, svc, 1024 + (h % np.uint64(48000)).astype(np.int64))
    cli = np.where(cli > 0, cli, 49152 + ((h >> np.uint64(20)) % np.uint64(16384)).astype(np.int64))
    udp_len = np.where(is_udp, np.minimum(plen, mtu - 28), 0)
    least = -S.seg_max(np.where(udp_len > 0, -udp_len, -0xFFFF))  # shortest UDP payload
    svc, cli, moved = _port_policy(f_proto, svc, cli, least)
    _add(report.fixed, "service_port_unfillable", int(S.length[moved].sum()))

    # -- ICMP flow kind: echo (default), destination unreachable or time exceeded -------------
    itype = l4[:, 0].astype(np.int64)
    icat = np.where(
        p_in == PROTO_ICMP,
        np.select([np.isin(itype, (0, 8)), itype == 3, itype == 11], [0, 1, 2], 3),
        3,
    )
    icounts = np.bincount(seg * 4 + icat, minlength=4 * F).reshape(F, 4)
    f_ikind = np.argmax(icounts[:, :3], axis=1)
    f_echo = f_icmp & (f_ikind == 0)
    is_echo = f_echo[seg]
    is_err = is_icmp & ~is_echo

    # -- unanswered connection attempts: a TCP flow with no responder packet is a SYN and its
    # retransmissions (Zeek's S0), as real clients retry a silent server -------------------
    f_attempt = f_tcp & (S.seg_max(dir_in) == 0)
    attempt = f_attempt[seg]

    # -- directions: TCP handshake order, ICMP echo request/reply alternation ---------------
    dirn = dir_in.copy()
    hs = is_tcp & (pos < 3) & ~attempt
    dirn[hs] = pos[hs] & 1
    f_has_resp = S.seg_max(dir_in) > 0
    dirn[is_echo] = np.where(f_has_resp[seg[is_echo]], pos[is_echo] & 1, 0)
    # addresses of each flow's originator and responder, from the generated directions
    f0 = S.first_where(dir_in == 0)
    f1 = S.first_where(dir_in == 1)
    src, dst = ip[:, 12:16], ip[:, 16:20]
    orig = np.where((f0 >= 0)[:, None], src[np.maximum(f0, 0)], dst[np.maximum(f1, 0)])
    resp = np.where((f0 >= 0)[:, None], dst[np.maximum(f0, 0)], src[np.maximum(f1, 0)])
    d0 = (dirn == 0)[:, None]
    ip[:, 12:16] = np.where(d0, orig[seg], resp[seg])
    ip[:, 16:20] = np.where(d0, resp[seg], orig[seg])
    flipped = dirn != dir_in
    mac[flipped] = np.concatenate([mac[flipped, 6:12], mac[flipped, 0:6]], axis=1)
    _add(report.fixed, "direction", int(flipped.sum()))
    cli, reused = _distinct_client_ports(cli, svc, f_proto, orig, resp)
    _add(report.fixed, "client_port_reused", int(S.length[reused].sum()))

    # -- IPv4 header length: keep well-formed options only -----------------------------------
    ihl_in = (ip[:, 0] & 0x0F).astype(np.int64)
    bad_ip = np.full(len(ip), -1, np.int64)
    opt_rows = np.flatnonzero(ihl_in > 5)  # only headers with options are walked
    if opt_rows.size:
        bad_ip[opt_rows] = parse_ip_options(ip[opt_rows], strict=True)[0]
    ihl = np.where((bad_ip < 0) & (ihl_in >= 5), ihl_in, 5)
    ip[:, 0] = 0x40 | ihl
    for h in np.flatnonzero(np.bincount(ihl, minlength=16)):  # zero beyond each header length
        ip[ihl == h, 4 * h :] = 0
    ihl_b = ihl * 4

    # -- TCP option choices per flow (from the generated SYN and SYN-ACK) -------------------
    opts = parse_tcp_options(l4, (l4[:, 12] >> 4).astype(np.int64) * 4, only=is_tcp)
    p0 = S.starts
    p1 = np.where(S.length > 1, S.starts + 1, S.starts)
    has1 = S.length > 1
    mss_on = np.ones(F, np.bool_)  # tshark warns on a SYN without MSS; real SYNs carry it
    ws_on = opts.has_ws[p0] | (opts.has_ws[p1] & has1)
    sack_on = opts.has_sackp[p0] | (opts.has_sackp[p1] & has1)
    ts_on = S.seg_sum(opts.has_ts & is_tcp) * 2 >= S.length
    mss_max = mtu - 40
    mss_val = np.stack([opts.mss[p0], opts.mss[p1]], axis=1)
    mss_has = np.stack([opts.has_mss[p0], opts.has_mss[p1] & has1], axis=1)
    mss_val = np.where(mss_has, mss_val, np.where(mss_has[:, ::-1], mss_val[:, ::-1], mss_max))
    mss_val = np.minimum(np.maximum(mss_val, 536), mss_max)
    ws_has = np.stack([opts.has_ws[p0], opts.has_ws[p1] & has1], axis=1)
    ws_val = np.where(ws_has, np.minimum(np.stack([opts.ws[p0], opts.ws[p1]], axis=1), 14), 7)
    syn_pkt = is_tcp & ((pos < 2) | attempt)
    hl_data = 20 + 12 * ts_on.astype(np.int64)

    # -- payload lengths: fit the MTU; none on SYNs; ICMP errors quote >= 28 bytes -----------
    l4_hl = np.where(is_tcp, hl_data[seg], 8)
    max_pay = np.maximum(mtu - ihl_b - l4_hl, 0)
    plen = np.minimum(plen, max_pay)
    plen[syn_pkt] = 0
    plen[is_err] = np.clip(plen[is_err], ICMP_ERR_MIN, np.minimum(ICMP_ERR_MAX, max_pay[is_err]))
    # an empty datagram to a templated service (DNS, NTP, ...) is no message: the shortest one
    empty = np.flatnonzero(is_udp & (plen == 0))
    if empty.size:
        least_msg = _udp_message_min(svc[seg[empty]])
        plen[empty] = np.minimum(least_msg, max_pay[empty])
        _add(report.fixed, "udp_empty_message", int(np.count_nonzero(least_msg)))

    # -- TCP flags: handshake, data ACKs, a FIN per direction at most, RST only last ---------
    fl_in = l4[:, 13].astype(np.int64)
    rst = is_tcp & S.is_last & (pos >= 3) & ((fl_in & RST) != 0) & ~attempt
    plen[rst] = 0
    last_data = [S.last_where(is_tcp & (dirn == d) & (plen > 0)) for d in (0, 1)]
    ld = np.where(dirn == 0, last_data[0][seg], last_data[1][seg])
    cand = is_tcp & (pos >= 3) & ((fl_in & FIN) != 0) & ~rst & (S.index >= ld) & ~attempt
    earlier = [S.excl_cumsum(cand & (dirn == d)) for d in (0, 1)]
    fin = cand & (np.where(dirn == 0, earlier[0], earlier[1]) == 0)
    flags = np.where((pos == 0) | attempt, SYN, np.where(pos == 1, SYN | ACK, ACK))
    flags |= np.where((pos >= 2) & ((fl_in & PSH) != 0) & (plen > 0), PSH, 0)
    flags |= np.where(fin, FIN, 0) | np.where(rst, RST, 0)

    # -- redundant pure ACKs (nothing new from the peer since this side's last packet): sent by
    # the other side when that makes them acknowledge something, else later or with a byte ----
    syn_f = syn_pkt.astype(np.int64)
    consumed = np.where(is_tcp, plen + syn_f + fin, 0)
    pure = is_tcp & (pos >= 3) & (plen == 0) & ~fin & ~rst & ~attempt
    dup, C, acked = _redundant_acks(S, dirn, consumed, pure)
    for _ in range(_FLIP_PASSES):  # a flip can make a later ACK redundant: a few passes
        if not dup.any():
            break
        own_c = np.where(dirn == 0, C[0], C[1])
        prev_other = np.where(dirn == 0, S.last_before(dirn == 1), S.last_before(dirn == 0))
        flip = dup & (prev_other >= 0) & (own_c > acked[np.maximum(prev_other, 0)])
        if not flip.any():
            break
        dirn = np.where(flip, dirn ^ 1, dirn)
        ip[flip, 12:20] = np.concatenate([ip[flip, 16:20], ip[flip, 12:16]], axis=1)
        mac[flip] = np.concatenate([mac[flip, 6:12], mac[flip, 0:6]], axis=1)
        _add(report.fixed, "direction", int(flip.sum()))
        dup, C, acked = _redundant_acks(S, dirn, consumed, pure)
    if dup.any():
        # an ACK that would acknowledge the peer's next data is sent just after that data (as
        # a delayed ACK is); the others, and the second of two ACKs waiting for the same data,
        # carry a byte of data (a segment of its own: the flow keeps its packets), except
        # after their side's FIN, where nothing more may be sent: those are dropped
        ts, moved = _delay_acks(S, dirn, consumed, dup, ts)
        order = np.lexsort((S.index, ts, seg)) if moved.any() else S.index
        redundant = _redundant_acks(S, dirn[order], consumed[order], pure[order])[0]
        fin_o, dirn_o = fin[order], dirn[order]
        fins_before = [S.excl_cumsum(fin_o & (dirn_o == d)) for d in (0, 1)]
        closed = np.where(dirn_o == 0, fins_before[0], fins_before[1]) > 0
        given = order[redundant & ~closed]
        plen[given] = consumed[given] = 1
        pure[given] = False
        _add(report.fixed, "tcp_ack_given_a_byte", len(given))
        dup = redundant & closed
        k = order[~dup]
        _add(report.fixed, "tcp_ack_delayed", int((moved[order] & ~redundant).sum()))
        _add(report.fixed, "tcp_dup_ack_dropped", int(dup.sum()))
        rows, ip, l4, mac, ts, dirn, plen = (a[k] for a in (rows, ip, l4, mac, ts, dirn, plen))
        flags, fin, rst, syn_pkt, is_tcp, is_udp, is_icmp, is_echo, is_err, ihl_b = (
            a[k]
            for a in (flags, fin, rst, syn_pkt, is_tcp, is_udp, is_icmp, is_echo, is_err, ihl_b)
        )
        opts = type(opts)(*(getattr(opts, f)[k] for f in opts.__dataclass_fields__))
        S = Segments(t.flow[rows])
        seg, pos = S.seg, S.pos
        attempt = f_attempt[seg]
        consumed, pure = consumed[k], pure[k]
        _, C, acked = _redundant_acks(S, dirn, consumed, pure)  # of the packets kept
    # -- handshake timing: SYN -> SYN-ACK is the RTT, SYN-ACK -> ACK at most half of it ------
    st = S.starts
    hs2 = np.flatnonzero(f_tcp & ~f_attempt & (S.length >= 2))
    g1 = ts[st[hs2] + 1] - ts[st[hs2]]
    shift = np.zeros(F, np.int64)
    shift[hs2] = np.maximum(g1, MIN_RTT_NS) - g1
    ts += np.where(pos >= 1, shift[seg], 0)
    hs3 = np.flatnonzero(f_tcp & ~f_attempt & (S.length >= 3))
    g1 = ts[st[hs3] + 1] - ts[st[hs3]]
    g2 = ts[st[hs3] + 2] - ts[st[hs3] + 1]
    ts[st[hs3] + 2] = ts[st[hs3] + 1] + np.minimum(g2, g1 // 2)
    ts = _syn_backoff(ts, S, f_attempt, seed, fid)

    # -- sequence and acknowledgement numbers from each direction's ISN ----------------------
    first = [S.first_where(dirn == d) for d in (0, 1)]
    seq_in = get_be(l4, 4, 4)
    isn = [np.where(first[d] >= 0, seq_in[np.maximum(first[d], 0)], 0) for d in (0, 1)]
    own_c = np.where(dirn == 0, C[0], C[1])
    seq = (np.where(dirn == 0, isn[0][seg], isn[1][seg]) + own_c) & M32
    ack = (np.where(dirn == 0, isn[1][seg], isn[0][seg]) + acked) & M32
    ack = np.where((pos == 0) | attempt, 0, ack)
    seq = np.where(attempt, isn[0][seg] & M32, seq)  # a retransmitted SYN repeats the ISN

    # -- windows: every advertised window exceeds the peer's bytes in flight -----------------
    last_other = np.where(dirn == 0, S.last_before(dirn == 1), S.last_before(dirn == 0))
    jo = np.maximum(last_other, 0)
    inflight = np.where(is_tcp & (pos >= 2) & (last_other >= 0), own_c + consumed - acked[jo], 0)
    need = np.stack([S.seg_max(np.where(dirn == d, inflight, 0)) for d in (0, 1)], axis=1)
    req = need[:, ::-1] + 1  # required scaled window advertised by each direction
    limits = 65535 << np.arange(15, dtype=np.int64)
    ws_need = np.minimum(np.searchsorted(limits, req), 14)
    ws_on = f_tcp & (ws_on | (req.max(axis=1) > 65535))
    ws_val = np.where(ws_has, ws_val, np.where(ws_has[:, ::-1], 7, 0))
    ws_val = np.where(ws_on[:, None], np.maximum(ws_val, ws_need), 0)
    win_in = get_be(l4, 14, 2)
    d_i = dirn
    req_i = req[seg, d_i]
    shift_i = ws_val[seg, d_i]
    win_data = -(-req_i // (1 << shift_i))
    win = np.where(
        syn_pkt, np.maximum(win_in, np.minimum(req_i, 65535)), np.maximum(win_in, win_data)
    )
    win = np.clip(win, 1, 65535)
    # a retransmitted SYN is the first one again: same window (and options, seq)
    win = np.where(attempt, win[S.starts][seg], win)

    # -- TCP timestamps: TSval on a 1 ms clock per direction, TSecr echoes the peer ----------
    tick = ts // TS_TICK_NS
    tsval = np.zeros(S.n, np.int64)
    ts_rows = is_tcp & ts_on[seg]
    for d in (0, 1):
        ref = S.first_where(opts.has_ts & ts_rows & (dirn == d))
        fb = first[d]
        hd = (mix(seed, fid, np.full(F, 2 + d)) & np.uint64(M32)).astype(np.int64)
        base = np.where(
            ref >= 0,
            opts.tsval[np.maximum(ref, 0)] - tick[np.maximum(ref, 0)],
            hd - tick[np.maximum(fb, 0)],
        )
        sel = dirn == d
        tsval[sel] = (base[seg[sel]] + tick[sel]) & M32
    tsecr = np.where(last_other >= 0, tsval[jo], 0)

    # -- build the TCP headers -------------------------------------------------------------
    hl_syn = (
        20 + 4 * mss_on + np.where(ts_on, 12, np.where(sack_on, 4, 0)) + 4 * ws_on.astype(np.int64)
    )
    hl = np.where(syn_pkt, hl_syn[seg], hl_data[seg])
    l4_out = np.zeros_like(l4)
    tr = np.flatnonzero(is_tcp)
    ds = dirn[tr]
    set_be(l4_out, tr, 0, 2, np.where(ds == 0, cli[seg[tr]], svc[seg[tr]]))
    set_be(l4_out, tr, 2, 2, np.where(ds == 0, svc[seg[tr]], cli[seg[tr]]))
    set_be(l4_out, tr, 4, 4, seq[tr])
    set_be(l4_out, tr, 8, 4, ack[tr])
    l4_out[tr, 12] = (hl[tr] // 4) << 4
    l4_out[tr, 13] = flags[tr]
    set_be(l4_out, tr, 14, 2, win[tr])
    _write_tcp_options(
        l4_out, tr, syn_pkt[tr], mss_on[seg[tr]], sack_on[seg[tr]], ts_on[seg[tr]],
        ws_on[seg[tr]], mss_val[seg[tr], ds], ws_val[seg[tr], ds], tsval[tr], tsecr[tr],
    )  # fmt: skip

    # -- UDP headers -------------------------------------------------------------------------
    ur = np.flatnonzero(is_udp)
    du = dirn[ur]
    set_be(l4_out, ur, 0, 2, np.where(du == 0, cli[seg[ur]], svc[seg[ur]]))
    set_be(l4_out, ur, 2, 2, np.where(du == 0, svc[seg[ur]], cli[seg[ur]]))
    set_be(l4_out, ur, 4, 2, 8 + plen[ur])

    # -- ICMP headers ------------------------------------------------------------------------
    payload_prefix = _icmp_headers(S, l4, l4_out, ip, dirn, plen, is_echo, is_err, f_ikind, mtu)
    plen = np.minimum(plen, np.maximum(mtu - ihl_b - np.where(is_tcp, hl, 8), 0))

    # -- IPv4 header fields ------------------------------------------------------------------
    l4_hl = np.where(is_tcp, hl, 8)
    set_be(ip, slice(None), 2, 2, ihl_b + l4_hl + plen)
    id_in = get_be(ip, 4, 2)
    ip_id = np.zeros(S.n, np.int64)
    for d in (0, 1):
        sel = dirn == d
        rank = S.excl_cumsum(sel)
        base = id_in[np.maximum(first[d], 0)]
        ip_id[sel] = (base[seg[sel]] + rank[sel]) & 0xFFFF
    set_be(ip, slice(None), 4, 2, ip_id)
    key = seg * 2 + dirn
    df_in = (ip[:, 6] >> 6) & 1
    dfc = np.bincount(key * 2 + df_in, minlength=4 * F).reshape(2 * F, 2)
    ip[:, 6] = np.where(dfc[key, 1] >= dfc[key, 0], 0x40, 0)
    ip[:, 7] = 0
    ttl = group_mode(key, ip[:, 8], 2 * F, default=64)[key]
    ttl = np.where(ttl < MIN_TTL, 64, ttl)  # tshark warns below 5; such TTLs are noise
    if stats is not None and stats.ttl_modes:
        ttl = _snap_ttl(ttl, t, S, stats)
    ip[:, 8] = ttl
    ip[:, 9] = np.where(is_tcp, PROTO_TCP, np.where(is_udp, PROTO_UDP, PROTO_ICMP))

    # -- payload bytes: keep held bytes that fit, fill the rest, then checksums --------------
    held_buf, held_off = ragged_take(t.payload, t.payload_off, rows)
    held_buf, held_off = _truncate(held_buf, held_off, plen)
    if payload_prefix is not None:
        prows, prefix = payload_prefix
        held_buf, held_off = _set_prefix(held_buf, held_off, prows, prefix)
    out = replace(
        t,
        ts_ns=ts,
        ip=ip,
        l4=l4_out,
        payload_len=plen.astype(np.int32),
        payload=held_buf,
        payload_off=held_off,
        mac=mac,
        flow=t.flow[rows],
        direction=dirn.astype(np.int8),
        file=t.file[rows],
    )
    # global time order now, while payloads are still short (the filler runs on sorted rows)
    order = np.argsort(ts, kind="stable")
    out = out.take(order)
    rows, plen = rows[order], plen[order]
    missing = int((plen - np.diff(out.payload_off)).sum())
    out, report.payload_filler = _fill_payloads(out, missing)
    _add(report.fixed, "payload_bytes_filled", missing)
    out = fill_checksums(out, copy=False)  # ip/l4 are this call's own arrays (from take)

    _count_changes(report.fixed, t.ip, t.l4, out.ip, out.l4, rows)
    _add(report.fixed, "payload_length", int((plen != t.payload_len[rows]).sum()))
    _add(report.fixed, "timestamp", int((out.ts_ns != t.ts_ns[rows]).sum()))
    report.packets_out = out.n_packets
    return out, report


def _distinct_client_ports(
    cli: I64, svc: I64, f_proto: I64, orig: NDArray[np.uint8], resp: NDArray[np.uint8]
) -> tuple[I64, Mask]:
    """Distinct ephemeral client ports for the flows between the same two hosts to the same
    service (a real stack hands them out in turn; tshark flags a reused TCP 4-tuple and Zeek
    would merge such UDP flows): in each such group, the first flow's port, then the next ones.
    Returns the ports and which flows changed."""
    ported = (f_proto == PROTO_TCP) | (f_proto == PROTO_UDP)
    idx = np.flatnonzero(ported & (cli >= 49152) & (cli != svc))
    if len(idx) < 2:
        return cli, np.zeros(len(cli), np.bool_)
    from netdiffusion.emit.payload import ephemeral_ports

    w = np.array([1 << 24, 1 << 16, 1 << 8, 1], np.int64)
    a, b = orig.astype(np.int64) @ w, resp.astype(np.int64) @ w
    order = idx[np.lexsort((idx, svc[idx], f_proto[idx], b[idx], a[idx]))]
    key = np.stack([a[order], b[order], f_proto[order], svc[order]], axis=1)
    head = np.ones(len(order), np.bool_)
    head[1:] = (key[1:] != key[:-1]).any(axis=1)
    gid = np.cumsum(head) - 1
    start = np.flatnonzero(head)
    rank = np.arange(len(order)) - start[gid]
    multi = np.bincount(gid)[gid] > 1
    out = cli.copy()
    rows = order[multi]
    out[rows] = ephemeral_ports(cli[order[start]][gid][multi] + rank[multi])
    clash = rows[out[rows] == svc[rows]]
    out[clash] = ephemeral_ports(out[clash] + 16383)  # the one before, never the next flow's
    return out, out != cli


def _port_policy(f_proto: I64, svc: I64, cli: I64, least: I64) -> tuple[I64, I64, Mask]:
    """Per flow: the service and client ports synthetic output uses, and which services moved.

    The service port is the model's, unless the payload filler cannot fill it so that tshark
    accepts it (``netdiffusion.emit.payload.UNFILLABLE_TCP`` / ``UNFILLABLE_UDP``, or a
    templated UDP port whose flow's shortest payload ``least`` is below the template's
    minimum, ``UDP_TEMPLATE_MIN``): such a flow moves to the next fillable port (counted as
    ``service_port_unfillable``). The client port is ephemeral (49152-65535, one no dissector
    claims, derived from the model's value), so only the service port selects a dissector; kept
    as generated where it equals the service port (mDNS 5353, NTP 123, ...) or is DHCP's 68.
    """
    try:
        from netdiffusion.emit.payload import ephemeral_ports, safe_service_ports
    except ImportError:  # no emitter installed: ports as generated
        return svc, cli, np.zeros(len(svc), np.bool_)
    ported = (f_proto == PROTO_TCP) | (f_proto == PROTO_UDP)
    new_svc, moved = safe_service_ports(f_proto, svc, least)
    moved &= ported
    keep = ported & ~moved & ((cli == svc) | ((f_proto == PROTO_UDP) & (svc == 67) & (cli == 68)))
    new_cli = np.where(keep | ~ported, cli, ephemeral_ports(cli))
    clash = ported & ~keep & (new_cli == new_svc)
    new_cli[clash] = ephemeral_ports(new_cli[clash] + 1)
    return np.where(ported, new_svc, svc), new_cli, moved


def _write_tcp_options(
    l4: NDArray[np.uint8],
    rows: I64,
    syn: Mask,
    mss_on: Mask,
    sack_on: Mask,
    ts_on: Mask,
    ws_on: Mask,
    mss: I64,
    ws: I64,
    tsval: I64,
    tsecr: I64,
) -> None:
    """Write the canonical option layout (all blocks 4-byte aligned) into rows ``rows``.

    SYNs: MSS, then SACK-permitted/timestamps, then NOP + window scale; other segments: NOP NOP
    timestamps when the flow uses timestamps.
    """
    off = np.full(len(rows), 20, np.int64)

    def put(sel: Mask, byte_values: list[I64 | int]) -> None:
        r, o = rows[sel], off[sel]
        for k, v in enumerate(byte_values):
            l4[r, o + k] = v[sel] if isinstance(v, np.ndarray) else v
        off[sel] += len(byte_values)

    def be(v: I64, nbytes: int) -> list[I64 | int]:
        return [(v >> (8 * (nbytes - 1 - k))) & 0xFF for k in range(nbytes)]

    put(syn & mss_on, [2, 4, *be(mss, 2)])
    both = syn & ts_on & sack_on
    put(both, [4, 2, 8, 10, *be(tsval, 4), *be(tsecr, 4)])
    only_ts = ts_on & ~both
    put(only_ts, [1, 1, 8, 10, *be(tsval, 4), *be(tsecr, 4)])
    put(syn & sack_on & ~ts_on, [1, 1, 4, 2])
    put(syn & ws_on, [1, 3, 3, ws])


def _icmp_headers(
    S: Segments,
    l4: NDArray[np.uint8],
    out: NDArray[np.uint8],
    ip: NDArray[np.uint8],
    dirn: I64,
    plen: I64,
    is_echo: Mask,
    is_err: Mask,
    f_ikind: I64,
    mtu: int,
) -> tuple[I64, NDArray[np.uint8]] | None:
    """ICMP headers from ``l4`` into ``out``; returns the quoted payload prefix of errors."""
    seg = S.seg
    er = np.flatnonzero(is_echo)
    if er.size:
        ident = group_mode(seg[er], get_be(l4, 4, 2)[er], S.count, default=0)
        req = is_echo & (dirn == 0)
        seq_in = get_be(l4, 6, 2)
        first_req = S.first_where(req)
        seq0 = seq_in[np.maximum(first_req, 0)]
        req_seq = (seq0[seg] + S.excl_cumsum(req)) & 0xFFFF
        last_req = S.last_before(req)
        rep = is_echo & (dirn == 1) & (last_req >= 0)
        seq = np.where(rep, req_seq[np.maximum(last_req, 0)], req_seq)
        plen[rep] = plen[last_req[rep]]
        out[er, 0] = np.where(dirn[er] == 0, ICMP_ECHO, ICMP_ECHO_REPLY)
        set_be(out, er, 4, 2, ident[seg[er]])
        set_be(out, er, 6, 2, seq[er])
    xr = np.flatnonzero(is_err)
    if xr.size == 0:
        return None
    f_type = np.where(f_ikind == 2, ICMP_TIMX, ICMP_UNREACH)
    ty = f_type[seg[xr]]
    code_in = l4[xr, 1].astype(np.int64)
    valid = (l4[xr, 0] == ty) & (code_in <= np.where(ty == ICMP_TIMX, 1, 15))
    code = group_mode(seg[xr][valid], code_in[valid], S.count, default=0)[seg[xr]]
    # quoted datagram: inner IPv4 header (from the packet's destination back to its source)
    # + 8 bytes of UDP; inner ports come from a quoted header already held, else defaults
    n = len(xr)
    pre = np.zeros((n, ICMP_ERR_MIN), np.uint8)
    pre[:, 0] = 0x45
    set_be(pre, slice(None), 2, 2, plen[xr])
    pre[:, 8] = np.where(ty == ICMP_TIMX, 1, 64)
    pre[:, 9] = PROTO_UDP
    pre[:, 12:16] = ip[xr, 16:20]
    pre[:, 16:20] = ip[xr, 12:16]
    set_be(pre, slice(None), 10, 2, ipv4_header_checksums(np.pad(pre[:, :20], ((0, 0), (0, 40)))))
    set_be(pre, slice(None), 20, 2, np.full(n, 33434))
    set_be(pre, slice(None), 22, 2, np.full(n, 33434))
    set_be(pre, slice(None), 24, 2, plen[xr] - 20)
    out[xr, 0] = ty
    out[xr, 1] = code
    frag_needed = (ty == ICMP_UNREACH) & (code == 4)
    set_be(out, xr[frag_needed], 6, 2, np.full(int(frag_needed.sum()), mtu))
    return xr, pre


def _snap_ttl(ttl: I64, t: Traffic, S: Segments, stats: RepairStats) -> I64:
    """Snap each flow's TTL to the nearest learned mode of its class (when known)."""
    table = stats.ttl_table(t.classes)
    if not table or t.n_flows == 0:
        return ttl
    width = max(len(v) for v in table.values())
    modes = np.full((len(t.classes) + 1, width), -1000, np.int64)
    for c, vals in table.items():
        modes[c, : len(vals)] = vals
    flows = t.flow[S.starts]
    label = np.where(flows < t.n_flows, t.flow_label[np.minimum(flows, t.n_flows - 1)], -1)
    label = np.where(label >= 0, label, len(t.classes))[S.seg]
    m = modes[label]
    best = m[np.arange(len(ttl)), np.argmin(np.abs(m - ttl[:, None]), axis=1)]
    return np.where(best >= 1, best, ttl)


def _udp_message_min(svc: I64) -> I64:
    """The shortest payload a UDP message to each service port can have (0: any)."""
    try:
        from netdiffusion.emit.payload import udp_template_min
    except ImportError:  # no emitter installed: datagrams as generated
        return np.zeros(len(svc), np.int64)
    return udp_template_min(svc)


def _consumed_before(S: Segments, dirn: I64, consumed: I64) -> list[I64]:
    """Per direction, the sequence space it consumed before each packet of the flow."""
    return [S.excl_cumsum(np.where(dirn == d, consumed, 0)) for d in (0, 1)]


def _delay_acks(S: Segments, dirn: I64, consumed: I64, dup: Mask, ts: I64) -> tuple[I64, Mask]:
    """Times for redundant ACKs (``dup``) that the peer's next data or FIN in the flow would make
    meaningful: just after that packet, by the ACK's own generated gap, at most half way to the
    packet after it. Returns the times and which ACKs moved."""
    moved = np.zeros(len(ts), np.bool_)
    new_ts = ts.copy()
    gap = np.r_[0, np.diff(ts)]
    for d in (0, 1):
        rows = np.flatnonzero(dup & (dirn == d))
        data = np.flatnonzero((dirn != d) & (consumed > 0))
        if not len(rows) or not len(data):
            continue
        at = np.searchsorted(data, rows, side="right")
        ok = at < len(data)
        j = data[np.minimum(at, len(data) - 1)]
        ok &= S.seg[j] == S.seg[rows]
        rows, j = rows[ok], j[ok]
        after = np.where(S.is_last[j], np.iinfo(np.int64).max, ts[np.minimum(j + 1, len(ts) - 1)])
        room = np.maximum((after - ts[j]) // 2, 0)
        new_ts[rows] = ts[j] + np.minimum(np.maximum(gap[rows], 1), room)
        moved[rows] = True
    return new_ts, moved


def _syn_backoff(ts: I64, S: Segments, f_attempt: Mask, seed: int, fid: I64) -> I64:
    """Retries of an unanswered SYN on the retransmission timer: the first after the initial
    timeout (RFC 6298's 1 s, or the 3 s of older stacks: whichever the generated first wait is
    nearer, when it is within a factor of 2 of one), each later one after twice the previous
    wait (at most :data:`SYN_BACKOFF_DOUBLINGS` doublings), every wait 0-1 % late as timers fire
    (by a hash of ``seed``, the flow id ``fid`` and the packet's place). Attempts whose first wait
    is near neither keep their times."""
    st, pos, seg = S.starts, S.pos, S.seg
    idx = np.flatnonzero(f_attempt & (S.length >= 2))
    if not len(idx):
        return ts
    g1 = np.maximum(ts[st[idx] + 1] - ts[st[idx]], 1).astype(np.float64)
    ratio = np.abs(np.log2(g1[:, None] / SYN_RTO_NS[None, :]))
    k = np.argmin(ratio, axis=1)
    rto = np.zeros(S.count, np.int64)
    rto[idx] = np.where(ratio[np.arange(len(idx)), k] < 1.0, SYN_RTO_NS[k], 0)
    rows = np.flatnonzero((pos >= 1) & (rto[seg] > 0))
    if not len(rows):
        return ts
    r_seg, r_pos = seg[rows], pos[rows]
    noise = mix(seed, fid[r_seg], r_pos, np.full(len(rows), 7))
    late = 1.0 + (noise % np.uint64(10_000)).astype(np.float64) / 1e6  # 0 to 1 % late
    due = rto[r_seg] * 2.0 ** np.minimum(r_pos - 1, SYN_BACKOFF_DOUBLINGS)
    now = ts[rows] - ts[rows - 1]
    on_time = (now >= due) & (now <= due * 1.01)  # already on the timer: kept (idempotent)
    wait = np.zeros(len(ts), np.int64)
    wait[rows] = np.where(on_time, now, (due * late).astype(np.int64))
    out = ts.copy()
    out[rows] = ts[st[r_seg]] + (S.excl_cumsum(wait) + wait)[rows]
    return out


def _redundant_acks(
    S: Segments, dirn: I64, consumed: I64, pure: Mask
) -> tuple[Mask, list[I64], I64]:
    """Pure ACKs that acknowledge nothing new (the same as the same side's previous packet), each
    direction's sequence space consumed before every packet (``[C0, C1]``) and what each packet
    acknowledges of its peer's sequence space (:func:`_acked_peer`)."""
    C = _consumed_before(S, dirn, consumed)
    acked = _acked_peer(S, dirn, consumed, pure, C)
    prev_same = np.where(dirn == 0, S.last_before(dirn == 0), S.last_before(dirn == 1))
    return pure & (prev_same >= 0) & (acked == acked[np.maximum(prev_same, 0)]), C, acked


def _acked_peer(S: Segments, dirn: I64, consumed: I64, pure: Mask, C: list[I64]) -> I64:
    """Per packet, the peer's sequence space it acknowledges: the end of one of the peer's
    segments sent before it, never less than its side's previous packet acknowledged. ACKs may
    lag, as delayed ACKs do, so that every pure ACK acknowledges at least one peer segment more
    than the packet before it whenever the peer has sent enough segments for that (fewest pure
    ACKs left redundant); within that, each packet acknowledges as much as it can (the last
    of a side all the peer sent), and the handshake's SYN-ACK and ACK all of it. A pure ACK
    left redundant has its side's previous ack."""
    out = np.where(dirn == 0, C[1], C[0])  # all the peer has sent
    for d in (0, 1):
        rows = np.flatnonzero(dirn == d)
        peer_cons = (dirn != d) & (consumed > 0)
        if len(rows) < 2 or not peer_cons.any():
            continue
        R = Segments(S.seg[rows])
        avail = S.excl_cumsum(peer_cons)[rows]  # peer segments sent before each packet
        is_pure = pure[rows]
        # fewest redundant: acknowledge as little as possible, a segment more at each pure ACK
        # (x_j = min(x_{j-1} + step_j, avail_j), x_{-1} = 0; the handshake steps to all)
        step = np.where(S.pos[rows] <= 2, int(avail.max()) + 1, is_pure.astype(np.int64))
        csum = R.excl_cumsum(step) + step
        low = csum + np.minimum(R.cummin(avail - csum), 0)
        prev_low = np.where(R.pos > 0, np.r_[0, low[:-1]], 0)
        gain = (is_pure & (low > prev_low)).astype(np.int64)
        # then as much as possible: h_j = min(avail_j, h_{j+1} - gain_{j+1})
        gsum = R.excl_cumsum(gain) + gain
        high = gsum + R.cummin(avail - gsum, reverse=True)
        # segment count -> sequence space: the end of the peer's high-th segment in the flow
        cons_rows = np.flatnonzero(peer_cons)
        ends = np.where(dirn[cons_rows] == 0, C[0][cons_rows], C[1][cons_rows])
        ends = ends + consumed[cons_rows]
        flow_first = np.searchsorted(S.seg[cons_rows], S.seg[rows])
        at = np.clip(flow_first + high - 1, 0, len(cons_rows) - 1)
        out[rows] = np.where(high > 0, ends[at], 0)
    return out


def _snap_ports(
    svc: I64, f_proto: I64, t: Traffic, S: Segments, stats: RepairStats
) -> tuple[I64, Mask]:
    """Each flow's service port snapped to its class's nearest learned port of the same protocol
    (Hamming distance over the 16 bits, at most ``PORT_SNAP_BITS``; ties to the more frequent);
    returns the ports and which flows changed."""
    table = stats.port_table(t.classes)
    if not table or t.n_flows == 0:
        return svc, np.zeros(len(svc), np.bool_)
    width = max(len(v) for v in table.values())
    n_cls = len(t.classes) + 1
    cand = np.full((n_cls, 2, width), -1, np.int64)  # [class, TCP/UDP, rank] -> port
    for c, rows in table.items():
        for k, p in enumerate((PROTO_TCP, PROTO_UDP)):
            ports = [port for proto, port, _n in rows if proto == p][:width]
            cand[c, k, : len(ports)] = ports
    flows = t.flow[S.starts]
    label = np.where(flows < t.n_flows, t.flow_label[np.minimum(flows, t.n_flows - 1)], -1)
    label = np.where(label >= 0, label, n_cls - 1)
    kind = np.where(f_proto == PROTO_UDP, 1, 0)
    m = cand[label, kind]  # [F, width], most frequent first
    x = (m ^ np.maximum(svc, 0)[:, None]).astype(np.uint16)
    dist = np.unpackbits(x.view(np.uint8).reshape(len(svc), width, 2), axis=2).sum(axis=2)
    dist = np.where(m >= 0, dist, 99)
    best = np.argmin(dist, axis=1)  # first minimum: the most frequent of the nearest
    near = dist[np.arange(len(svc)), best]
    use = (near <= PORT_SNAP_BITS) & np.isin(f_proto, (PROTO_TCP, PROTO_UDP))
    out = np.where(use, m[np.arange(len(svc)), best], svc)
    return out, out != svc


def _truncate(buf: NDArray[np.uint8], off: I64, limit: I64) -> tuple[NDArray[np.uint8], I64]:
    """Each ragged row cut to at most ``limit`` bytes."""
    held = np.diff(off)
    keep = np.minimum(held, limit)
    if (keep == held).all():
        return buf, off
    new_off = np.zeros(len(keep) + 1, np.int64)
    np.cumsum(keep, out=new_off[1:])
    gather = np.repeat(off[:-1] - new_off[:-1], keep) + np.arange(int(new_off[-1]))
    return buf[gather], new_off


def _set_prefix(
    buf: NDArray[np.uint8], off: I64, rows: I64, prefix: NDArray[np.uint8]
) -> tuple[NDArray[np.uint8], I64]:
    """Rows ``rows`` of the ragged array start with ``prefix`` (held at least that long)."""
    held = np.diff(off)
    new_len = held.copy()
    new_len[rows] = np.maximum(held[rows], prefix.shape[1])
    new_off = np.zeros(len(held) + 1, np.int64)
    np.cumsum(new_len, out=new_off[1:])
    out = np.zeros(int(new_off[-1]), np.uint8)
    total_old = int(held.sum())
    if total_old:
        dest = np.repeat(new_off[:-1] - off[:-1], held) + np.arange(off[0], off[0] + total_old)
        out[dest] = buf[off[0] : off[0] + total_old]
    cols = new_off[rows][:, None] + np.arange(prefix.shape[1])[None, :]
    out[cols] = prefix
    return out, new_off


def _zero_fill(traffic: Traffic) -> Traffic:
    """Fallback payload filler: missing bytes are zeros (held bytes kept)."""
    plen = traffic.payload_len.astype(np.int64)
    off = traffic.payload_off
    held = np.diff(off)
    new_off = np.zeros(len(plen) + 1, np.int64)
    np.cumsum(plen, out=new_off[1:])
    out = np.zeros(int(new_off[-1]), np.uint8)
    total = int(held.sum())
    if total:
        dest = np.repeat(new_off[:-1] - off[:-1], held) + np.arange(off[0], off[0] + total)
        out[dest] = traffic.payload[off[0] : off[0] + total]
    return replace(traffic, payload=out, payload_off=new_off)


def _payload_filler() -> tuple[str, Callable[[Traffic], Traffic]]:
    """The emitter's protocol-aware filler when it is installed, else the zero-byte fallback."""
    try:
        from netdiffusion.emit.payload import fill_payloads
    except ImportError:
        return "zeros", _zero_fill
    return "fill_payloads", fill_payloads


def _fill_payloads(traffic: Traffic, missing: int) -> tuple[Traffic, str]:
    if missing == 0:
        return traffic, ""
    name, filler = _payload_filler()
    out = filler(traffic)
    if (np.diff(out.payload_off) != out.payload_len).any():  # a filler must fill completely
        out = _zero_fill(out)
    return out, name
