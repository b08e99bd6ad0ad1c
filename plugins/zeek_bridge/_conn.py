"""Zeek's connection semantics over whole packet columns: tracking, states, history, sizes.

Connections are keyed by protocol and the unordered pair of endpoints (for ICMP the ports are the
type and its counterpart type, or the code). A key's packets split into connections where Zeek
would remove one and start another:

- inactivity (TCP 5 min, UDP and ICMP 1 min without a packet);
- TCP's attempt timer (5 s after the originator's first SYN while nothing came back);
- TCP's close delay (5 s after the close completed: both sides closed, a RST, or one side closed
  while the other never sent anything);
- TCP connection reuse (a new SYN after a close or with another initial sequence number; a
  SYN-ACK while the originator is silent with another sequence number);
- a connection that only ever saw packets with bad checksums is dropped 11 s after it started.

State splits are found in rounds: each round computes, for every connection still open, the
first packet that starts a new connection, with segment reductions over all packets at once
(no loop over packets or over state-machine steps). The endpoint states, history letters,
sequence-number sizes and content gaps then follow from first-occurrence indices per endpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ._packets import HEAD, SIG, PacketTable, _in_nets, head_signatures
from ._segments import Segs, one_of, signed32

__all__ = [
    "DEFAULT_LIKELY_SERVER_PORTS",
    "DEFAULT_LOCAL_NETS",
    "ConnOptions",
    "connections",
    "timed_out_connections",
]

_S = 1_000_000_000
_TCP, _UDP, _ICMP = 6, 17, 1
_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
_TIMEOUT = {_TCP: 300 * _S, _UDP: 60 * _S, _ICMP: 60 * _S}
_ATTEMPT = 5 * _S  # tcp_attempt_delay
_CLOSE_DELAY = 5 * _S  # tcp_close_delay / tcp_reset_delay
_DEAD = 11 * _S  # tcp_SYN_timeout + tcp_session_timer: a connection that never saw a valid packet
_TOO_LARGE = 1_048_576

# Endpoint states (Zeek's TCP_ENDPOINT_*).
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)

#: Zeek's ``likely_server_ports`` with its default scripts loaded (``-b`` loads none of them).
DEFAULT_LIKELY_SERVER_PORTS: frozenset[tuple[str, int]] = frozenset(
    [("tcp", p) for p in (21, 22, 23, 25, 53, 80, 81, 88, 110, 139, 143, 389, 443, 445, 502)]
    + [("tcp", p) for p in (563, 585, 587, 614, 631, 636, 989, 990, 992, 993, 995, 1080, 1883)]
    + [("tcp", p) for p in (2811, 3128, 3268, 3306, 3389, 5223, 5432, 6379, 6666, 6667, 6668)]
    + [("tcp", p) for p in (6669, 8000, 8080, 8888, 20000)]
    + [("udp", p) for p in (53, 67, 69, 88, 123, 137, 161, 162, 389, 443, 514, 1812, 1813)]
    + [("udp", p) for p in (2152, 3544, 4789, 5060, 5353, 5355, 6081, 20000)]
)

#: Site::local_nets as Zeek sets it by default (private address space is local), IPv4 part,
#: plus the link-local multicast block that Zeek's baselines show as local.
DEFAULT_LOCAL_NETS: tuple[str, ...] = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/24",
    "240.0.0.0/4",
    "255.255.255.255/32",
)


def parse_nets(nets: tuple[str, ...] | list[str]) -> list[tuple[int, int]]:
    """``"a.b.c.d/len"`` strings to ``(network, prefix_len)`` pairs (ValueError when malformed)."""
    out = []
    for text in nets:
        addr, _, plen = text.partition("/")
        parts = addr.split(".")
        try:
            if len(parts) != 4 or not all(0 <= int(p) <= 255 for p in parts):
                raise ValueError
            length = int(plen) if plen else 32
            if not 0 <= length <= 32:
                raise ValueError
        except ValueError:
            raise ValueError(f"{text!r} is not an IPv4 network (a.b.c.d/len)") from None
        value = 0
        for p in parts:
            value = (value << 8) | int(p)
        out.append((value, length))
    return out


@dataclass(frozen=True)
class ConnOptions:
    """How Zeek was run: checksum handling, bare mode, server ports, local networks."""

    ignore_checksums: bool = False  # zeek -C
    ignore_checksums_nets: tuple[str, ...] = ()
    bare: bool = False  # zeek -b: no default scripts, so no likely server ports
    likely_server_ports: frozenset[tuple[str, int]] | None = None
    local_nets: tuple[str, ...] = DEFAULT_LOCAL_NETS
    _nets: list[tuple[int, int]] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        parse_nets(self.ignore_checksums_nets)
        object.__setattr__(self, "_nets", parse_nets(self.local_nets))

    def server_ports(self, proto: str) -> NDArray[np.int64]:
        """The likely server ports of ``proto`` ("tcp" or "udp")."""
        ports = self.likely_server_ports
        if ports is None:
            ports = frozenset() if self.bare else DEFAULT_LIKELY_SERVER_PORTS
        return np.array(sorted(p for t, p in ports if t == proto), np.int64)


# -- tracking ----------------------------------------------------------------------------------


def _tuples(
    pk: PacketTable, horizon: int | None = None
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Packet order grouped by connection key (time order inside), and connection-start flags.

    With ``horizon`` (ns), only the keys that timed out by then: whose last packet is at least
    the protocol's inactivity timeout before it.
    """
    a = (pk.src << 16) | pk.sport
    b = (pk.dst << 16) | pk.dport
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    # By protocol, low endpoint, high endpoint (endpoints are 48 bits: protocol and low endpoint
    # share one key); lexsort is stable, so time order stays inside a key.
    order = np.lexsort((hi, (pk.proto.astype(np.int64) << 48) | lo))
    p, lo_s, hi_s = pk.proto[order], lo[order], hi[order]
    start = np.ones(pk.n, np.bool_)
    start[1:] = (p[1:] != p[:-1]) | (lo_s[1:] != lo_s[:-1]) | (hi_s[1:] != hi_s[:-1])
    ts = pk.ts[order]
    limit = np.array([_TIMEOUT.get(int(x), 60 * _S) for x in range(256)], np.int64)[p]
    gap = np.zeros(pk.n, np.bool_)
    gap[1:] = (ts[1:] - ts[:-1]) >= limit[1:]
    if horizon is None:
        return order, start | gap
    st = np.flatnonzero(start)
    done = np.maximum.reduceat(ts, st) + limit[st] <= horizon
    rows = np.repeat(done, np.diff(np.append(st, pk.n)))
    return order[rows], (start | gap)[rows]


def _port_table(opts: ConnOptions, proto: str) -> NDArray[np.bool_]:
    """Whether each 16-bit port is a likely server port of ``proto``."""
    table = np.zeros(1 << 16, np.bool_)
    ports = opts.server_ports(proto)
    table[ports[(ports >= 0) & (ports < 1 << 16)]] = True
    return table


def _flip(pk: PacketTable, first: NDArray[np.int64], opts: ConnOptions) -> NDArray[np.bool_]:
    """Zeek's role flip for connections whose first packet is ``first``."""
    proto, sp, dp, fl = pk.proto[first], pk.sport[first], pk.dport[first], pk.flags[first]
    dst = pk.dst[first]
    group = (dst == 0xFFFFFFFF) | ((dst >> 28) == 0xE)  # broadcast / multicast responder
    tcp_ports, udp_ports = _port_table(opts, "tcp"), _port_table(opts, "udp")
    syn = (fl & _SYN) != 0
    partial = ~syn | ((fl & _ACK) != 0)
    s_t, d_t = tcp_ports[sp & 0xFFFF], tcp_ports[dp & 0xFFFF]  # ports and ICMP types: 16 bits
    tcp = partial & s_t & (~d_t | (~syn & (sp < dp)))
    udp = udp_ports[sp & 0xFFFF] & ~udp_ports[dp & 0xFFFF]
    return np.where(proto == _TCP, tcp, np.where(proto == _UDP, udp, False)) & ~group


@dataclass
class _View:
    """Packets of some connections, sorted by connection then time, with per-packet columns."""

    pk: PacketTable
    idx: NDArray[np.int64]  # into pk
    seg: Segs
    flipped: NDArray[np.bool_]
    is_orig: NDArray[np.bool_]
    _cols: dict[str, NDArray] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, pk: PacketTable, idx: NDArray[np.int64], starts: NDArray[np.int64], opts):
        seg = Segs(starts, len(idx))
        first = idx[starts]
        flipped = _flip(pk, first, opts)
        orig_ep = np.where(
            flipped,
            (pk.dst[first] << 16) | pk.dport[first],
            (pk.src[first] << 16) | pk.sport[first],
        )
        src_ep = (pk.src[idx] << 16) | pk.sport[idx]
        return cls(pk, idx, seg, flipped, src_ep == orig_ep[seg.id])

    def col(self, name: str) -> NDArray:
        """Packet column ``name`` in the view's row order (gathered once)."""
        got = self._cols.get(name)
        if got is None:
            got = self._cols[name] = getattr(self.pk, name)[self.idx]
        return got


@dataclass
class _Tcp:
    """First-occurrence indices and endpoint states of TCP connections in a view."""

    v: _View
    valid: NDArray[np.bool_] = field(init=False)

    def __post_init__(self) -> None:
        v, s = self.v, self.v.seg
        self.valid = v.col("valid")
        fl = v.col("flags")
        self.S, self.A = (fl & _SYN) != 0, (fl & _ACK) != 0
        self.F, self.R = (fl & _FIN) != 0, (fl & _RST) != 0
        self.seq, self.ack, self.plen = v.col("seq"), v.col("ack"), v.col("plen")
        self.ts = v.col("ts")
        o, val, S, A, F, R = v.is_orig, self.valid, self.S, self.A, self.F, self.R
        n = s.n
        self.oi = s.first(val & o)
        self.foF, self.foR = s.first(val & o & F), s.first(val & o & R)
        self.frF, self.frR = s.first(val & ~o & F), s.first(val & ~o & R)
        o_syn0 = s.at(self.oi, S, False)
        o_ack0 = s.at(self.oi, A, False)
        self.o_first_synonly = o_syn0 & ~o_ack0
        self.o_first_synack = o_syn0 & o_ack0
        sid = s.id
        # Orig in SYN_SENT before packet i (for the responder's bare ACKs, which Zeek ignores).
        syn_sent_before = (
            (self.oi[sid] < s.pos)
            & self.o_first_synonly[sid]
            & (self.foF[sid] > s.pos)
            & (self.foR[sid] > s.pos)
        )
        ecc = val & ~o & (self.plen == 0) & ~S & ~F & ~R & syn_sent_before
        self.re = s.first(val & ~o & ~ecc)
        self.r_syn0 = s.at(self.re, S, False)
        # Pre-close states.
        oi, re_ = self.oi, self.re
        o_nonsyn = (oi < n) & ~o_syn0
        est_partial_ack = (
            o_nonsyn
            & s.at(oi, A, False)
            & (re_ < oi)
            & self.r_syn0
            & (self.frF > oi)
            & (self.frR > oi)
        )
        o_syn2 = s.first(val & o & S & ~A)
        to_syn_sent = o_nonsyn & ~est_partial_ack & (o_syn2 < n) & (re_ > o_syn2)
        syn_sent = self.o_first_synonly | to_syn_sent
        syn_time = np.where(self.o_first_synonly, oi, o_syn2)
        est_resp_syn = (
            syn_sent
            & (re_ < n)
            & self.r_syn0
            & (re_ > syn_time)
            & (self.foF > re_)
            & (self.foR > re_)
        )
        pre_o = np.full(s.k, PARTIAL, np.int64)
        pre_o[self.o_first_synack] = SYN_ACK_SENT
        pre_o[syn_sent] = SYN_SENT
        pre_o[est_partial_ack | est_resp_syn] = ESTABLISHED
        pre_o[oi >= n] = INACTIVE
        pre_r = np.where(re_ >= n, INACTIVE, np.where(self.r_syn0, ESTABLISHED, PARTIAL))
        r1 = np.minimum(self.foR, self.frR)
        both_fin = (self.foF < r1) & (self.frF < r1)
        reset_o = (self.foR < n) & ~both_fin
        reset_r = (self.frR < n) & ~both_fin
        # A FIN after the peer's FIN+RST turns the peer back to CLOSED (normal termination).
        revert_o = reset_o & (self.foF < self.foR) & (self.frF > self.foR) & (self.frF < self.frR)
        revert_o &= one_of(pre_r, (ESTABLISHED, PARTIAL))
        revert_r = reset_r & (self.frF < self.frR) & (self.foF > self.frR) & (self.foF < self.foR)
        revert_r &= one_of(pre_o, (ESTABLISHED, PARTIAL))
        reset_o &= ~revert_o
        reset_r &= ~revert_r
        self.state_o = np.where(reset_o, RESET, np.where(self.foF < n, CLOSED, pre_o))
        self.state_r = np.where(reset_r, RESET, np.where(self.frF < n, CLOSED, pre_r))
        self.rst_o = np.where(reset_o | revert_o, self.foR, n)  # first RST that took effect
        self.rst_r = np.where(reset_r | revert_r, self.frR, n)
        self.close_o = np.minimum(self.foF, self.rst_o)  # did_close
        self.close_r = np.minimum(self.frF, self.rst_r)

    # -- where Zeek starts a new connection ---------------------------------------------------

    def splits(self) -> NDArray[np.int64]:
        """Per connection, the first packet that belongs to a new connection (else ``n``)."""
        v, s = self.v, self.v.seg
        n, ts, sid, pos = s.n, self.ts, s.id, s.pos
        seg_end = np.append(s.st[1:], n)

        def first_at_or_after(t: NDArray[np.int64]) -> NDArray[np.int64]:
            # First row of each segment with ts >= t (time-sorted inside a segment).
            hit = ts >= t[sid]
            return s.first(hit)

        out = np.full(s.k, n, np.int64)
        # Attempt timer.
        o_syn = s.at(self.oi, self.S, False)
        t_att = s.at(self.oi, ts, 0) + _ATTEMPT
        quiet = (s.at(np.minimum(self.foF, self.foR), ts, np.iinfo(np.int64).max) >= t_att) & (
            s.at(self.re, ts, np.iinfo(np.int64).max) >= t_att
        )
        cand = first_at_or_after(t_att)
        out = np.where(o_syn & quiet & (self.oi < n), np.minimum(out, cand), out)
        # Close delay after the close completed.
        both = np.where(
            (self.close_o < n) & (self.close_r < n), np.maximum(self.close_o, self.close_r), n
        )
        lone_o = np.where(self.close_o < self.re, self.close_o, n)
        lone_r = np.where(self.close_r < self.oi, self.close_r, n)
        done = np.minimum.reduce([both, lone_o, lone_r, self.rst_o, self.rst_r])
        t_done = s.at(done, ts, 0) + _CLOSE_DELAY
        cand = first_at_or_after(t_done)
        out = np.where(done < n, np.minimum(out, cand), out)
        # Nothing valid ever seen: dropped by the expire timer.
        fv = s.first(self.valid)
        t_dead = ts[s.st] + _DEAD
        cand = first_at_or_after(t_dead)
        out = np.where(s.at(fv, ts, np.iinfo(np.int64).max) >= t_dead, np.minimum(out, cand), out)
        # Reuse: a SYN on a closed connection, or one with another initial sequence number.
        closed = (self.close_o[sid] < pos) | (self.close_r[sid] < pos)
        o = v.is_orig
        o_start = (
            np.where(
                s.at(self.oi, self.S, False),
                s.at(self.oi, self.seq, 0),
                s.at(self.oi, self.seq, 1) - 1,
            )
            & 0xFFFFFFFF
        )
        r_ack = self.valid & ~o & self.A
        last_r_ack = s.prev_in_group(r_ack)
        # The latest responder ACK before i initialises the silent originator's start.
        peer_init = np.where(
            last_r_ack >= 0, (self.ack[np.maximum(last_r_ack, 0)] - 1) & 0xFFFFFFFF, 0
        )
        o_start_i = np.where(self.oi[sid] < pos, o_start[sid], peer_init)
        r_start = (
            np.where(
                s.at(self.re, self.S, False),
                s.at(self.re, self.seq, 0),
                s.at(self.re, self.seq, 1) - 1,
            )
            & 0xFFFFFFFF
        )
        r_start_i = np.where(self.re[sid] < pos, r_start[sid], 0)
        not_first = pos != s.st[sid]
        syn_only = self.S & ~self.A & not_first
        syn_ack = self.S & self.A & not_first & (self.oi[sid] >= pos)
        reuse = (syn_only & (closed | (self.seq != o_start_i))) | (
            syn_ack & (closed | (self.seq != r_start_i))
        )
        out = np.minimum(out, s.first(reuse))
        return np.where(out < seg_end, out, n)


def _tcp_connections(pk: PacketTable, idx: NDArray[np.int64], starts: NDArray[np.bool_], opts):
    """Split TCP keys into connections in rounds; returns row order and connection starts."""
    done_idx, done_st = [], []
    st = np.flatnonzero(starts)
    cur_idx = idx
    while len(cur_idx):
        view = _View.build(pk, cur_idx, st, opts)
        split = _Tcp(view).splits()
        seg = view.seg
        ends = np.append(st[1:], len(cur_idx))
        has = split < len(cur_idx)
        # Finished parts: [st, split) where split, else [st, end).
        fin_end = np.where(has, split, ends)
        keep = np.zeros(len(cur_idx), np.bool_)
        lengths = fin_end - st
        keep_rows = np.repeat(st, lengths) + (
            np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        )
        keep[keep_rows] = True
        part = cur_idx[keep]
        part_st = np.cumsum(np.append(0, lengths[:-1]))
        done_idx.append(part)
        done_st.append(part_st + sum(len(p) for p in done_idx[:-1]))
        rest = ~keep
        rest_st_mask = np.zeros(len(cur_idx), np.bool_)
        rest_st_mask[split[has]] = True
        del seg
        cur_idx = cur_idx[rest]
        st = np.flatnonzero(rest_st_mask[rest])
    if not done_idx:
        return idx, np.zeros(0, np.int64)
    return np.concatenate(done_idx), np.concatenate(done_st)


# -- per-connection results ----------------------------------------------------------------------


@dataclass
class _History:
    """History letters as (connection, packet row, sub-order, letter) events."""

    conn: list[NDArray[np.int64]] = field(default_factory=list)
    key: list[NDArray[np.int64]] = field(default_factory=list)
    char: list[NDArray[np.uint8]] = field(default_factory=list)

    def add(self, conn: NDArray[np.int64], row: NDArray[np.int64], sub: int, char) -> None:
        self.conn.append(conn)
        self.key.append(row * 8 + sub)
        self.char.append(np.broadcast_to(np.asarray(char, np.uint8), conn.shape).copy())

    def strings(self, k: int) -> NDArray[np.object_]:
        """Each connection's letters in order as a str (None: no letter)."""
        out = np.full(k, None, object)
        if not self.conn or k == 0:
            return out
        conn = np.concatenate(self.conn)
        key = np.concatenate(self.key)
        char = np.concatenate(self.char)
        order = np.lexsort((key, conn))
        conn, char = conn[order], char[order]
        counts = np.bincount(conn, minlength=k)
        width = max(int(counts.max()), 1)
        letters = np.zeros((k, width), np.uint8)
        letters[conn, np.arange(len(conn)) - (np.cumsum(counts) - counts)[conn]] = char
        text = letters.view(f"S{width}").ravel().astype(f"U{width}").astype(object)
        has = counts > 0
        out[has] = text[has]
        return out


def _case(letter: str, orig: NDArray[np.bool_]) -> NDArray[np.uint8]:
    return np.where(orig, ord(letter.upper()), ord(letter.lower())).astype(np.uint8)


def _scaled(
    h: _History, s: Segs, mask: NDArray[np.bool_], orig: NDArray[np.bool_], letter: str, sub: int
) -> None:
    """Zeek's logarithmic history letters: the 1st, 10th, 100th, ... event per direction."""
    for side in (True, False):
        rows = np.flatnonzero(mask & (orig == side))
        conn = s.id[rows]
        at = np.arange(len(rows))
        new = np.ones(len(rows), np.bool_)
        new[1:] = conn[1:] != conn[:-1]
        rank = at - np.maximum.accumulate(np.where(new, at, 0)) + 1  # 1-based, per connection
        hit = one_of(rank, (1, 10, 100, 1000, 10000, 100000, 1000000))
        h.add(conn[hit], rows[hit], sub, ord(letter.upper() if side else letter.lower()))


def _once(
    h: _History, s: Segs, mask: NDArray[np.bool_], orig: NDArray[np.bool_], letter: str
) -> None:
    for side in (True, False):
        rows = np.flatnonzero(mask & (orig == side))
        conn = s.id[rows]
        first = np.ones(len(rows), np.bool_)
        first[1:] = conn[1:] != conn[:-1]
        h.add(conn[first], rows[first], 0, ord(letter.upper() if side else letter.lower()))


def _tcp_results(view: _View, h: _History, out: dict[str, NDArray]) -> None:
    t = _Tcp(view)
    s, o, n = view.seg, view.is_orig, view.seg.n
    val, S, A, F, R, seq, ack, plen = t.valid, t.S, t.A, t.F, t.R, t.seq, t.ack, t.plen
    sid, pos = s.id, s.pos
    # Sequence space per endpoint: rows regrouped by (connection, side).
    eg = sid * 2 + (~o).astype(np.int64)
    perm = np.argsort(eg, kind="stable")
    eg_p = eg[perm]
    est = np.flatnonzero(np.r_[True, eg_p[1:] != eg_p[:-1]]) if n else np.zeros(0, np.int64)
    es = Segs(est, n)
    eg_id = eg_p[est]  # endpoint group of each endpoint segment
    eff_conn = np.where(eg_id % 2 == 0, t.oi[eg_id // 2], t.re[eg_id // 2])
    syn_first = np.where(
        eg_id % 2 == 0,
        s.first(val & o & S)[eg_id // 2],
        s.first(val & ~o & S)[eg_id // 2],
    )
    start = (
        np.where(syn_first < n, s.at(syn_first, seq, 0), s.at(eff_conn, seq, 1) - 1) & 0xFFFFFFFF
    )
    active = eff_conn < n
    rst_eff = np.where(eg_id % 2 == 0, t.rst_o[eg_id // 2], t.rst_r[eg_id // 2])
    p_seq, p_plen = seq[perm], plen[perm]
    p_S, p_F, p_R, p_val, p_pos = S[perm], F[perm], R[perm], val[perm], pos[perm]
    eff_row = eff_conn[es.id]
    use = p_val & (p_pos >= eff_row) & active[es.id]
    # Unwrapped relative sequence numbers (consecutive differences are signed 32-bit).
    step = signed32(p_seq - np.r_[p_seq[:1], p_seq[:-1]])
    step[est] = signed32(p_seq[est] - start)
    rel = np.cumsum(step)
    rel -= np.repeat(rel[est] - step[est], es.count_rows)
    seg_len = p_plen + p_S + p_F - np.where(p_R, p_plen, 0)
    end = rel + seg_len
    upto = use & (p_pos <= rst_eff[es.id])
    cm = es.cummax(np.where(upto, end, 0), floor=0)
    prev = np.r_[0, cm[:-1]]
    prev[est] = 0
    prev = np.maximum(prev, 1)
    jump = (p_S | p_R) & (np.abs(end - prev) > _TOO_LARGE)
    accepted = upto & ~jump
    last = es.max(np.where(accepted, end, 1), 1)
    rxmt = upto & ~jump & (p_plen > 0) & (end <= prev) & ~p_R
    # Acks from the peer, relative to this endpoint's start.
    peer_rows = np.flatnonzero(val & A & ~R)
    peer_eg = sid[peer_rows] * 2 + o[peer_rows].astype(np.int64)  # the endpoint being acked
    ack_max = np.zeros(len(est), np.int64)
    if len(peer_rows):
        grp = np.searchsorted(eg_id, peer_eg)
        grp = np.minimum(grp, len(eg_id) - 1)
        ok = (eg_id[grp] == peer_eg) & (peer_rows > eff_conn[grp]) & active[grp]
        r_rows, g = peer_rows[ok], grp[ok]
        if len(r_rows):
            d = signed32(ack[r_rows] - start[g])
            base = last[g]  # unwrap acks near the endpoint's own sequence space
            d = d + ((base - d + (1 << 31)) >> 32) * (1 << 32)
            d = np.where((ack[r_rows] == 0) & (d > _TOO_LARGE), 0, d)
            np.maximum.at(ack_max, g, d)
    fin_cnt = es.count(p_F & p_val)
    size = np.maximum(last, ack_max)
    size = np.where(size > 0, size - 1, 0)
    size = np.where((fin_cnt > 0) & (size > 0), size - 1, 0 + size)
    size = np.where(active, size, 0)
    # Content gaps: acked or later data never seen.
    fin_pos = es.max(np.where(use & p_F, rel + p_S + p_plen, -1), -1)
    top_ack = np.where(fin_pos >= 0, np.minimum(ack_max, fin_pos), ack_max)
    data = use & (p_plen > 0) & ~p_R
    d_start = rel + p_S
    d_end = d_start + p_plen
    data_end = es.max(np.where(data, d_end, 1), 1)
    top = np.maximum(top_ack, data_end)
    lo_ds = int(d_start.min()) if n else 0
    span = int(d_start.max()) - lo_ds + 1 if n else 1
    if span * (es.k + 1) < 1 << 62:  # one key; nearly sorted already, so a stable sort is fast
        order = np.argsort(es.id * span + (d_start - lo_ds), kind="stable")
    else:
        order = np.lexsort((d_start, es.id))
    dm = data[order]
    ds, de, gid = d_start[order], d_end[order], es.id[order]
    run = es.cummax(np.where(dm, de, 1), floor=1)  # in the (id, start) order: ids equal es.id
    run_prev = np.r_[1, run[:-1]]
    run_prev[est] = 1
    gap_start = np.where(dm & (ds > run_prev), run_prev, np.iinfo(np.int64).max)
    first_hole = np.minimum(np.minimum.reduceat(gap_start, est), data_end) if n else data_end
    covered = es.sum(
        np.where(dm, np.maximum(0, np.minimum(de, top[gid]) - np.maximum(ds, run_prev)), 0)
    )
    missed = np.where(active, np.maximum(0, top - 1 - covered), 0)
    del gid
    # Results per connection.
    side = eg_id % 2
    conn_of = eg_id // 2
    for name, arr in (("orig_bytes", size), ("missed", missed)):
        per = np.zeros(s.k, np.int64)
        if name == "orig_bytes":
            out_o, out_r = np.zeros(s.k, np.int64), np.zeros(s.k, np.int64)
            out_o[conn_of[side == 0]] = arr[side == 0]
            out_r[conn_of[side == 1]] = arr[side == 1]
            out["orig_bytes"], out["resp_bytes"] = out_o, out_r
        else:
            np.add.at(per, conn_of, arr)
            out["missed_bytes"] = per
    out["state_o"], out["state_r"] = t.state_o, t.state_r
    both = np.where((t.close_o < n) & (t.close_r < n), np.maximum(t.close_o, t.close_r), n)
    out["last_row"] = s.last(val & (pos <= both[sid]))
    out["partial"] = ~(t.o_first_synonly & ((t.re >= n) | t.r_syn0))
    # History letters.
    bits = S.astype(np.int64) + F + R
    single = val & (bits == 1)
    _once(h, s, val & (bits > 1) & F & R, o, "I")
    _once(h, s, val & (bits > 1) & ~(F & R), o, "Q")
    _once(h, s, val & (bits == 0) & (plen > 0), o, "D")
    _once(h, s, val & (bits == 0) & (plen == 0) & A, o, "A")
    for flag, key in ((S, seq), (F, (seq + plen) & 0xFFFFFFFF), (R, seq)):
        for side_o in (True, False):
            rows = np.flatnonzero(single & flag & (o == side_o))
            # Emitted unless the previous such packet of the connection had the same key.
            emit = np.ones(len(rows), np.bool_)
            emit[1:] = (sid[rows[1:]] != sid[rows[:-1]]) | (key[rows[1:]] != key[rows[:-1]])
            rows = rows[emit]
            if flag is S:
                letters = np.where(A[rows], ord("H"), ord("S"))
            else:
                letters = np.full(len(rows), ord("F") if flag is F else ord("R"))
            letters = letters if side_o else letters + 32
            h.add(sid[rows], rows, 0, letters)
    _scaled(h, s, ~val, o, "C", 0)
    inv = np.empty(n, np.int64)
    inv[perm] = np.arange(n)
    rx_rows = np.zeros(n, np.bool_)
    rx_rows[perm[rxmt]] = True
    _scaled(h, s, rx_rows, o, "T", 2)
    win = view.col("win")
    peer_fin = np.where(o, t.frF[sid], t.foF[sid]) < pos
    own_rst = np.where(o, t.rst_o[sid], t.rst_r[sid]) < pos
    _scaled(h, s, val & (win == 0) & ~R & ~peer_fin & ~own_rst, o, "W", 1)
    # Gap letter: the first peer ack past the first hole (not in a FIN or RST packet).
    gap_eps = np.flatnonzero(missed > 0)
    if len(gap_eps):
        need = np.full(len(est), np.iinfo(np.int64).max)
        need[gap_eps] = first_hole[gap_eps]
        ack_rows = np.flatnonzero(val & A & ~R & ~F)
        a_eg = sid[ack_rows] * 2 + o[ack_rows].astype(np.int64)
        g = np.minimum(np.searchsorted(eg_id, a_eg), len(eg_id) - 1)
        ok = (eg_id[g] == a_eg) & (missed[g] > 0) & (ack_rows > eff_conn[g])
        ack_rows, g = ack_rows[ok], g[ok]
        d = signed32(ack[ack_rows] - start[g])
        capped = np.where(fin_pos[g] >= 0, np.minimum(d, fin_pos[g]), d)
        hit = capped > need[g]
        rows, g = ack_rows[hit], g[hit]
        first_rows = np.full(len(est), n, np.int64)
        np.minimum.at(first_rows, g, rows)
        has = first_rows < n
        gap_side = side[has]
        h.add(conn_of[has], first_rows[has], 3, np.where(gap_side == 0, ord("G"), ord("g")))


def _conn_state(proto, so, sr, ob, rb, hist: NDArray[np.object_]) -> NDArray[np.object_]:
    """Zeek's conn_state from endpoint states (TCP) or activity (UDP)."""
    k = len(proto)
    state = np.full(k, "OTH", object)
    tcp = proto == _TCP
    o_in = one_of(so, (INACTIVE, PARTIAL))
    r_in = one_of(sr, (INACTIVE, PARTIAL))
    rules = [
        (
            tcp
            & (sr == RESET)
            & (one_of(so, (SYN_SENT, SYN_ACK_SENT)) | ((so == RESET) & (ob == 0) & (rb == 0))),
            "REJ",
        ),
        (tcp & (sr == RESET) & o_in, "RSTRH"),
        (tcp & (sr == RESET), "RSTR"),
        (tcp & (so == RESET) & r_in, "OTH-RSTOS0"),
        (tcp & (so == RESET), "RSTO"),
        (tcp & (sr == CLOSED) & (so == CLOSED), "SF"),
        (tcp & (so == CLOSED) & r_in, "SH"),
        (tcp & (so == CLOSED), "S2"),
        (tcp & (sr == CLOSED) & o_in, "SHR"),
        (tcp & (sr == CLOSED), "S3"),
        (tcp & (so == SYN_SENT) & (sr == INACTIVE), "S0"),
        (tcp & (so == ESTABLISHED) & (sr == ESTABLISHED), "S1"),
    ]
    chosen = np.zeros(k, np.bool_)
    for mask, name in rules:
        m = mask & ~chosen
        state[m] = name
        chosen |= m
    pat = re.compile(r"\^?S[^HAFGIQ]*R.*")
    for i in np.flatnonzero(state == "OTH-RSTOS0"):
        text = hist[i]
        state[i] = "RSTOS0" if text is not None and pat.fullmatch(text) else "OTH"
    udp = proto == _UDP
    state[udp] = np.where(
        so[udp] > 0, np.where(sr[udp] > 0, "SF", "S0"), np.where(sr[udp] > 0, "SHR", "OTH")
    )
    return state


def _stream_heads(view: _View, mask: NDArray[np.bool_]) -> tuple[NDArray, NDArray, NDArray]:
    """First HEAD bytes of each connection's byte stream over the ``mask`` packets (time order)."""
    s = view.seg
    out = np.zeros((s.k, HEAD), np.uint8)
    rows = np.flatnonzero(mask)
    if len(rows) == 0:
        return out, np.zeros(s.k, np.int64), np.zeros(s.k, np.int64)
    pk_rows = view.idx[rows]
    conn = s.id[rows]
    h = view.pk.held[pk_rows]
    # Sums per connection (float sums are exact far beyond any capture's byte count).
    size = np.bincount(conn, view.pk.plen[pk_rows], minlength=s.k).astype(np.int64)
    got = np.bincount(conn, h, minlength=s.k).astype(np.int64)
    csum = np.cumsum(h)
    grp_start = np.r_[True, conn[1:] != conn[:-1]]
    base = np.repeat(
        csum[grp_start] - h[grp_start], np.diff(np.r_[np.flatnonzero(grp_start), len(rows)])
    )
    before = csum - h - base
    early = np.flatnonzero(before < HEAD)  # only a stream's first bytes are kept
    conn, h, before, pk_rows = conn[early], h[early], before[early], pk_rows[early]
    j = np.arange(HEAD)
    at = before[:, None] + j[None, :]
    ok = (j[None, :] < h[:, None]) & (at < HEAD)
    r_i, c_i = np.nonzero(ok)
    out[conn[r_i], at[r_i, c_i]] = view.pk.head[pk_rows[r_i], c_i]
    return out, np.minimum(got, HEAD), size


def _services(view: _View, out: dict[str, NDArray]) -> NDArray[np.object_]:
    s, o = view.seg, view.is_orig
    val, plen, sig, proto = view.col("valid"), view.col("plen"), view.col("sig"), view.col("proto")
    fl = view.col("flags")
    data = val & (plen > 0) & ((fl & _RST) == 0)
    cproto = proto[s.st]
    is_tcp = cproto == _TCP
    sigs: list[NDArray[np.int64]] = []
    for side in (o, ~o):
        first_sig = s.at(s.first(data & side), sig, 0)  # UDP: the first datagram alone
        h, got, size = _stream_heads(view, data & side & (proto == _TCP))
        stream = np.zeros(s.k, np.int64)
        some = np.flatnonzero(is_tcp & (got > 0))  # no stream bytes: no signature
        stream[some] = head_signatures(
            h[some], got[some], size[some], is_tcp[some], np.zeros(len(some), np.bool_)
        )
        sigs.append(np.where(is_tcp, stream, first_sig))
    osig, rsig = sigs
    anys = np.zeros(s.k, np.int64)
    for side, name in ((o, "auth_tls"), (~o, "r234")):
        rows = np.flatnonzero(side & val & ((sig & SIG[name]) != 0))
        anys[s.id[rows]] |= SIG[name]
    cproto = proto[s.st]
    svc = np.full(s.k, None, object)

    def has(x: NDArray[np.int64], name: str) -> NDArray[np.bool_]:
        return (x & SIG[name]) != 0

    tcp = (cproto == _TCP) & ~out.get("partial", np.zeros(s.k, np.bool_))
    udp = cproto == _UDP
    either = osig | rsig
    rules = [
        (tcp & has(osig, "http_req") & has(rsig, "http_resp"), "http"),
        (tcp & has(osig, "ssh") & has(rsig, "ssh"), "ssh"),
        (tcp & has(osig, "tls_hello") & has(rsig, "tls_rec"), "ssl"),
        (
            tcp
            & has(rsig, "r220")
            & has(osig, "ftp_cmd")
            & has(anys, "auth_tls")
            & has(anys, "r234"),
            "ftp,ssl",
        ),
        (tcp & has(rsig, "r220") & has(osig, "ftp_cmd"), "ftp"),
        (tcp & has(rsig, "r220") & has(osig, "smtp_cmd"), "smtp"),
        (tcp & has(rsig, "pop_ok") & has(osig, "pop_cmd"), "pop3"),
        (tcp & has(rsig, "imap_ok"), "imap"),
        (tcp & has(either, "dns_tcp"), "dns"),
        (udp & has(either, "dhcp"), "dhcp"),
        (udp & has(either, "ntp"), "ntp"),
        (udp & has(either, "dns"), "dns"),
    ]
    for mask, name in rules:
        svc[mask & (svc == None)] = name  # noqa: E711
    return svc


def timed_out_connections(
    pk: PacketTable, opts: ConnOptions, horizon: int
) -> tuple[dict[str, NDArray], NDArray[np.bool_]]:
    """:func:`connections` of the keys (protocol and endpoint pair) that timed out by ``horizon``
    (ns): whose last packet came at least the protocol's inactivity timeout before it, so no
    later packet can continue them. Also returns the mask of those keys' packets."""
    used = np.zeros(pk.n, np.bool_)
    if pk.n == 0:
        return {}, used
    order, starts = _tuples(pk, horizon)
    used[order] = True
    return _connections(pk, opts, order, starts), used


def connections(pk: PacketTable, opts: ConnOptions) -> dict[str, NDArray]:
    """conn.log columns (no uid) of every connection in ``pk`` (time-sorted), by start time."""
    if pk.n == 0:
        return {}
    return _connections(pk, opts, *_tuples(pk))


def _connections(
    pk: PacketTable, opts: ConnOptions, order: NDArray[np.int64], starts: NDArray[np.bool_]
) -> dict[str, NDArray]:
    """:func:`connections` of the packets ``order`` (grouped by :func:`_tuples`)."""
    if len(order) == 0:
        return {}
    tcp_rows = pk.proto[order] == _TCP
    parts_idx, parts_st = [], []
    # UDP / ICMP keys: only inactivity splits them.
    other = order[~tcp_rows]
    other_st = np.flatnonzero(starts[~tcp_rows])
    parts_idx.append(other)
    parts_st.append(other_st)
    if tcp_rows.any():
        t_idx, t_st = _tcp_connections(pk, order[tcp_rows], starts[tcp_rows], opts)
        parts_st.append(t_st + len(other))
        parts_idx.append(t_idx)
    idx = np.concatenate(parts_idx)
    st = np.concatenate(parts_st)
    view = _View.build(pk, idx, st, opts)
    s, o = view.seg, view.is_orig
    k = s.k
    val = view.col("valid")
    proto = view.col("proto")[s.st]
    first = idx[s.st]
    out: dict[str, NDArray] = {}
    h = _History()
    flipped_rows = np.flatnonzero(view.flipped)
    h.add(flipped_rows, s.st[flipped_rows], 0, ord("^"))
    out["orig_bytes"] = np.zeros(k, np.int64)
    out["resp_bytes"] = np.zeros(k, np.int64)
    out["missed_bytes"] = np.zeros(k, np.int64)
    out["state_o"] = np.zeros(k, np.int64)
    out["state_r"] = np.zeros(k, np.int64)
    out["last_row"] = s.last(val)
    out["partial"] = np.ones(k, np.bool_)
    tcp_conn = proto == _TCP
    if tcp_conn.any():
        tc = np.flatnonzero(tcp_conn)
        lo_t, cnt = s.st[tc], s.count_rows[tc]
        rows = np.repeat(lo_t, cnt) + (np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt))
        sub = _View.build(pk, idx[rows], np.cumsum(np.append(0, cnt[:-1])), opts)
        sub_h = _History()
        sub_out: dict[str, NDArray] = {}
        _tcp_results(sub, sub_h, sub_out)
        for name in ("orig_bytes", "resp_bytes", "missed_bytes", "state_o", "state_r", "partial"):
            out[name][tc] = sub_out[name]
        lr = sub_out["last_row"]
        out["last_row"][tc] = np.where(lr >= 0, rows[np.maximum(lr, 0)], -1)
        for c, key, ch in zip(sub_h.conn, sub_h.key, sub_h.char, strict=True):
            h.conn.append(tc[c])
            h.key.append(rows[key // 8] * 8 + key % 8)
            h.char.append(ch)
    # UDP and ICMP sizes, states and letters.
    plen = view.col("plen")
    nontcp = ~tcp_conn[s.id]
    udp_rows = (proto == _UDP)[s.id]
    for side, name in ((True, "orig_bytes"), (False, "resp_bytes")):
        m = nontcp & val & (o == side)
        out[name] = np.where(tcp_conn, out[name], s.sum(np.where(m, plen, 0)))
        st_name = "state_o" if side else "state_r"
        out[st_name] = np.where(tcp_conn, out[st_name], (s.count(m) > 0).astype(np.int64))
    _once(h, s, udp_rows & val, o, "D")
    _scaled(h, s, udp_rows & ~val, o, "C", 0)
    hist = h.strings(k)
    ts = view.col("ts")
    start = ts[s.st]
    last = np.where(out["last_row"] >= 0, ts[np.maximum(out["last_row"], 0)], start)
    duration = np.maximum(last - start, 0)
    ip_len = view.col("ip_len")
    res: dict[str, NDArray] = {
        "ts": start,
        "orig_h": np.where(view.flipped, pk.dst[first], pk.src[first]),
        "orig_p": np.where(view.flipped, pk.dport[first], pk.sport[first]),
        "resp_h": np.where(view.flipped, pk.src[first], pk.dst[first]),
        "resp_p": np.where(view.flipped, pk.sport[first], pk.dport[first]),
        "proto": proto.astype(np.int64),
        "service": _services(view, out),
        "duration": np.where(duration > 0, duration, -1),
        "orig_bytes": np.where(duration > 0, out["orig_bytes"], -1),
        "resp_bytes": np.where(duration > 0, out["resp_bytes"], -1),
        "conn_state": _conn_state(
            proto, out["state_o"], out["state_r"], out["orig_bytes"], out["resp_bytes"], hist
        ),
        "missed_bytes": out["missed_bytes"],
        "history": hist,
        "orig_pkts": s.count(val & o),
        "orig_ip_bytes": s.sum(np.where(val & o, ip_len, 0)),
        "resp_pkts": s.count(val & ~o),
        "resp_ip_bytes": s.sum(np.where(val & ~o, ip_len, 0)),
    }
    nets = opts._nets
    res["local_orig"] = _in_nets(res["orig_h"], nets)
    res["local_resp"] = _in_nets(res["resp_h"], nets)
    order2 = np.argsort(start, kind="stable")
    return {key: v[order2] for key, v in res.items()}
