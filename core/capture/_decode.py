"""Vectorized decoding of captured records: link layer, VLAN tags, IPv4 and the L4 header.

Every function here works on whole arrays of records at once: a record is described by the
offset of its first captured byte in a byte buffer, its captured length, its timestamp and its
link type. Headers are read from fixed-width windows gathered with one fancy index per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .._traffic import IP_HDR_MAX, L4_HDR_MAX, PROTO_ICMP, PROTO_TCP, PROTO_UDP
from ._report import SKIP_REASONS

__all__ = ["SLACK", "Decoded", "Sink", "decode_records", "link_type_supported", "rows"]

#: Bytes a record's header windows may reach past its data start (link + IPv4 + L4 windows).
SLACK = 256

_W_LINK = 64  # link header window: Ethernet + VLAN tags + PPPoE or MPLS labels, SLL2, ...
_MAX_TAGS = 4

# Network-layer classes a link decoder assigns to every record.
_NET_IPV4 = 0
_R = {name: i + 1 for i, name in enumerate(SKIP_REASONS)}
_NET_IPV6 = _R["ipv6"]
_NET_ARP = _R["arp"]
_NET_NON_IP = _R["non_ip"]
_TRUNC = _R["truncated"]
_BAD = _R["bad_header"]
_FRAG = _R["non_first_fragment"]
_OTHER = _R["ipv4_other_proto"]
_UNSUPPORTED = _R["unsupported_link_type"]
_UNKNOWN_IF = _R["unknown_interface"]

# Link types (tcpdump.org/linktypes.html values, and the BSD DLT values for raw IP).
LT_NULL = 0
LT_ETHERNET = 1
LT_PPP = 9
LT_RAW_BSD = (12, 14)
LT_PPP_HDLC = 50
LT_RAW = 101
LT_CHDLC = 104
LT_LOOP = 108
LT_SLL = 113
LT_IPV4 = 228
LT_IPV6 = 229
LT_SLL2 = 276
_SUPPORTED = frozenset(
    {LT_NULL, LT_ETHERNET, LT_PPP, *LT_RAW_BSD, LT_PPP_HDLC, LT_RAW, LT_CHDLC}
    | {LT_LOOP, LT_SLL, LT_IPV4, LT_IPV6, LT_SLL2}
)

_WORD_COLS = np.arange(IP_HDR_MAX // 4, dtype=np.uint8)  # 32-bit word index of a header row


def rows(buf: NDArray[np.uint8], offsets: NDArray[np.int64], width: int) -> NDArray[np.uint8]:
    """``[len(offsets), width]`` matrix of the bytes of ``buf`` from each offset (a copy).

    Indexes a stride-1 view of ``buf`` whose items are ``width``-byte blocks, so each row is one
    block copy. Every ``offset + width`` must be within ``buf``.
    """
    view = np.ndarray((len(buf) - width + 1,), np.dtype(f"V{width}"), buf, 0, (1,))
    return view[offsets].view(np.uint8).reshape(len(offsets), width)


def _mask_rows(hdr: NDArray[np.uint8], words: NDArray[np.int64]) -> None:
    """Zero each 60-byte header row (C-contiguous) beyond ``4 * words`` bytes, in place."""
    if not len(words):
        return
    low = int(words.min())
    if low == int(words.max()):  # one header length (IHL 5 nearly always): zero one tail
        hdr[:, 4 * low :] = 0
        return
    h32 = hdr.view(np.uint32)  # header lengths count 32-bit words: mask whole words
    np.multiply(h32, words.astype(np.uint8)[:, None] > _WORD_COLS, out=h32)


def link_type_supported(link_type: int) -> bool:
    """Whether records of this link type are decoded (others are counted as skipped)."""
    return link_type in _SUPPORTED


@dataclass
class Decoded:
    """Columns of the kept records of one batch, and how many records each skip reason took."""

    ts_ns: NDArray[np.int64]
    ip: NDArray[np.uint8]
    l4: NDArray[np.uint8]
    payload_len: NDArray[np.int32]
    payload: NDArray[np.uint8]
    payload_off: NDArray[np.int64]
    mac: NDArray[np.uint8]
    rec: NDArray[np.int64]  # batch index of each kept record
    net: NDArray[np.int64]  # per record of the batch: 0 kept, else 1 + index in SKIP_REASONS
    file: NDArray[np.int32] | None = None  # per kept packet, set by the caller

    @property
    def n(self) -> int:
        """Kept records."""
        return len(self.ts_ns)


class Sink:
    """Growable packet columns that decoded batches are written into, one after the other.

    Decoding straight into them saves a copy of every header when batches are joined.
    """

    def __init__(self, capacity: int) -> None:
        self.n = 0
        self.capacity = 0
        self.ts_ns = np.empty(0, np.int64)
        self.ip = np.empty((0, IP_HDR_MAX), np.uint8)
        self.l4 = np.empty((0, L4_HDR_MAX), np.uint8)
        self.mac = np.empty((0, 12), np.uint8)
        self.payload_len = np.empty(0, np.int32)
        self.file = np.empty(0, np.int32)
        self.payloads: list[tuple[NDArray[np.uint8], NDArray[np.int64]]] = []
        self._grow(capacity)

    _COLUMNS = ("ts_ns", "ip", "l4", "mac", "payload_len", "file")

    def _grow(self, capacity: int) -> None:
        for name in self._COLUMNS:
            old = getattr(self, name)
            new = np.empty((capacity, *old.shape[1:]), old.dtype)  # untouched pages cost nothing
            new[: self.n] = old[: self.n]
            setattr(self, name, new)
        self.capacity = capacity

    def reserve(self, k: int) -> int:
        """Room for ``k`` more rows; returns the first one's index (rows are taken)."""
        if self.n + k > self.capacity:
            self._grow(max(2 * self.capacity, self.n + k))
        start = self.n
        self.n += k
        return start

    def ragged(self) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
        """Every batch's payload bytes joined, with offsets for all ``n`` rows."""
        if len(self.payloads) == 1:
            return self.payloads[0]
        off = np.zeros(self.n + 1, np.int64)
        at = base = 0
        for _payload, poff in self.payloads:
            k = len(poff) - 1
            off[at + 1 : at + k + 1] = poff[1:] + base
            at += k
            base += int(poff[-1])
        parts = [b for b, _ in self.payloads]
        payload = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
        return payload, off


def _u16(win: NDArray[np.uint8], col: int | NDArray[np.int64]) -> NDArray[np.int64]:
    """Big-endian 16-bit value at column ``col`` (scalar or per row) of a window."""
    if isinstance(col, int):
        return (win[:, col].astype(np.int64) << 8) | win[:, col + 1]
    idx = np.arange(len(win))
    return (win[idx, col].astype(np.int64) << 8) | win[idx, col + 1]


# Per EtherType: the network class, and what follows (0 the network header, 1 a VLAN tag,
# 2 a PPPoE session header, 3 an MPLS label stack). One table lookup classifies every row.
_ET_NET = np.full(65536, _NET_NON_IP, np.int64)
_ET_NET[0x0800], _ET_NET[0x86DD], _ET_NET[0x0806] = _NET_IPV4, _NET_IPV6, _NET_ARP
_ET_NEXT = np.zeros(65536, np.uint8)
_ET_NEXT[[0x8100, 0x88A8, 0x9100]] = 1
_ET_NEXT[0x8864] = 2
_ET_NEXT[[0x8847, 0x8848]] = 3


def _ethertype_class(et: NDArray[np.int64]) -> NDArray[np.int64]:
    """Network class of an EtherType: IPv4, IPv6, ARP or other."""
    return _ET_NET[et]


def _ethertype_chain(
    win: NDArray[np.uint8], cap: NDArray[np.int64], et: NDArray[np.int64], l3: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """From an EtherType at ``l3 - 2``: follow 802.1Q / 802.1ad / QinQ tags, PPPoE and MPLS."""
    nxt = _ET_NEXT[et]
    if nxt.any():
        for _ in range(_MAX_TAGS):
            sel = np.flatnonzero(nxt == 1)
            if not len(sel):
                break
            pos = l3[sel] + 2
            et[sel] = (win[sel, pos].astype(np.int64) << 8) | win[sel, pos + 1]
            l3[sel] += 4
            nxt[sel] = _ET_NEXT[et[sel]]
    net = _ET_NET[et]
    if not nxt.any():
        net[cap < l3] = _TRUNC
        return net, l3
    net[nxt == 1] = _NET_NON_IP  # more tags than we follow
    pppoe = np.flatnonzero(nxt == 2)  # PPPoE session: 6-byte header, then the PPP protocol
    if len(pppoe):
        pos = l3[pppoe] + 6
        proto = (win[pppoe, pos].astype(np.int64) << 8) | win[pppoe, pos + 1]
        net[pppoe] = np.where(
            proto == 0x0021, _NET_IPV4, np.where(proto == 0x0057, _NET_IPV6, _NET_NON_IP)
        )
        l3[pppoe] += 8
    mpls = np.flatnonzero(nxt == 3)
    if len(mpls):  # pop labels to the bottom of the stack, then read the IP version
        open_ = np.ones(len(mpls), np.bool_)
        for _ in range(_MAX_TAGS):
            pos = np.minimum(l3[mpls], _W_LINK - 4)
            bottom = (win[mpls, pos + 2] & 1) == 1
            l3[mpls] += 4 * open_
            open_ &= ~bottom
            if not open_.any():
                break
        first = win[mpls, np.minimum(l3[mpls], _W_LINK - 1)]
        net[mpls] = np.where(open_, _NET_NON_IP, _version_class(first))
    net[cap < l3] = _TRUNC
    return net, l3


def _link_ethernet(
    win: NDArray[np.uint8], cap: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Ethernet II."""
    return _ethertype_chain(win, cap, _u16(win, 12), np.full(len(win), 14, np.int64))


def _version_class(first: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Network class from the IP version nibble (raw IP link types)."""
    ver = first >> 4
    net = np.full(len(first), _NET_NON_IP, np.int64)
    net[ver == 4] = _NET_IPV4
    net[ver == 6] = _NET_IPV6
    return net


def _link_family(
    win: NDArray[np.uint8], cap: NDArray[np.int64], host_order: bool
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """BSD loopback: a 4-byte address family (host byte order for NULL, network for LOOP)."""
    w = win[:, :4].astype(np.int64)
    be = (w[:, 0] << 24) | (w[:, 1] << 16) | (w[:, 2] << 8) | w[:, 3]
    fams = [be]
    if host_order:  # the writer's byte order is not recorded: accept both
        fams.append((w[:, 3] << 24) | (w[:, 2] << 16) | (w[:, 1] << 8) | w[:, 0])
    net = np.full(len(win), _NET_NON_IP, np.int64)
    for fam in fams:
        net[fam == 2] = _NET_IPV4
        net[(fam == 10) | (fam == 24) | (fam == 28) | (fam == 30)] = _NET_IPV6
    l3 = np.full(len(win), 4, np.int64)
    net[cap < 4] = _TRUNC
    return net, l3


def _link_ppp(
    win: NDArray[np.uint8], cap: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """PPP (with or without the ff 03 HDLC prefix) and Cisco HDLC framing on the PPP link type."""
    b0 = win[:, 0]
    hdlc = (b0 == 0xFF) & (win[:, 1] == 0x03)
    cisco = (b0 == 0x0F) | (b0 == 0x8F)
    l3 = np.where(hdlc | cisco, 4, 2).astype(np.int64)
    proto = _u16(win, l3 - 2)
    net = np.full(len(win), _NET_NON_IP, np.int64)
    ppp = ~cisco
    net[ppp & (proto == 0x0021)] = _NET_IPV4
    net[ppp & (proto == 0x0057)] = _NET_IPV6
    net[cisco] = _ethertype_class(proto[cisco])
    net[cap < l3] = _TRUNC
    return net, l3


def _link(
    lt: int, win: NDArray[np.uint8], cap: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Network class and network-layer offset of every record of one link type."""
    n = len(win)
    if lt == LT_ETHERNET:
        return _link_ethernet(win, cap)
    if lt in (LT_RAW, *LT_RAW_BSD):
        net = _version_class(win[:, 0])
        net[cap < 1] = _TRUNC
        return net, np.zeros(n, np.int64)
    if lt == LT_IPV4:
        return np.full(n, _NET_IPV4, np.int64), np.zeros(n, np.int64)
    if lt == LT_IPV6:
        return np.full(n, _NET_IPV6, np.int64), np.zeros(n, np.int64)
    if lt == LT_SLL:
        net, l3 = _ethertype_chain(win, cap, _u16(win, 14), np.full(n, 16, np.int64))
        net[(_u16(win, 2) == 824) & (net != _TRUNC)] = _NET_NON_IP  # netlink: not an EtherType
        return net, l3
    if lt == LT_SLL2:
        return _ethertype_chain(win, cap, _u16(win, 0), np.full(n, 20, np.int64))
    if lt in (LT_NULL, LT_LOOP):
        return _link_family(win, cap, host_order=lt == LT_NULL)
    if lt in (LT_PPP, LT_PPP_HDLC):
        return _link_ppp(win, cap)
    if lt == LT_CHDLC:
        return _ethertype_chain(win, cap, _u16(win, 2), np.full(n, 4, np.int64))
    return np.full(n, _UNSUPPORTED, np.int64), np.zeros(n, np.int64)


def _empty(net: NDArray[np.int64]) -> Decoded:
    return Decoded(
        ts_ns=np.zeros(0, np.int64),
        ip=np.zeros((0, IP_HDR_MAX), np.uint8),
        l4=np.zeros((0, L4_HDR_MAX), np.uint8),
        payload_len=np.zeros(0, np.int32),
        payload=np.zeros(0, np.uint8),
        payload_off=np.zeros(1, np.int64),
        mac=np.zeros((0, 12), np.uint8),
        rec=np.zeros(0, np.int64),
        net=net,
    )


def decode_records(
    buf: NDArray[np.uint8],
    doff: NDArray[np.int64],
    cap: NDArray[np.int64],
    ts_ns: NDArray[np.int64],
    lt: int | NDArray[np.int64],
    wire: NDArray[np.int64] | None = None,
    payload_bytes: int | None = None,
    sink: Sink | None = None,
) -> Decoded:
    """Decode records (data offset ``doff`` and captured length ``cap`` in ``buf``).

    ``buf`` must hold at least :data:`SLACK` readable bytes past the last record's data start.
    ``lt`` is the link type of every record (one value, or one per record; -1 = unknown
    interface). ``wire`` (original lengths) stands in for an IPv4 total length of 0, as
    captured on hosts with TCP segmentation offload. At most ``payload_bytes`` payload bytes
    are kept per packet (None: all captured). Returns the kept IPv4 TCP/UDP/ICMP
    packets and every record's skip reason. With a ``sink``, the kept packets' columns are
    written into its next rows (the returned ones are views of them, ``file`` included, left
    for the caller to fill) and their payload is appended to its list.
    """
    n = len(doff)
    if n == 0:
        return _empty(np.zeros(0, np.int64))
    # Every record's first _W_LOCAL bytes, copied once: the headers are read from this compact
    # copy (cache-friendly), and from ``buf`` only where they reach past it (see _Local).
    loc = _Local(buf, doff)

    # -- link layer: network class and offset of the network header, per link type ---------
    if isinstance(lt, (int, np.integer)):
        net, l3 = _link_win(int(lt), loc, None, cap)
        is_eth: bool | NDArray[np.bool_] = int(lt) == LT_ETHERNET
    else:
        net = np.empty(n, np.int64)
        l3 = np.empty(n, np.int64)
        runs = np.flatnonzero(lt[1:] != lt[:-1]) + 1  # types come in runs (one per file)
        for t in sorted(set(lt[runs].tolist()) | {int(lt[0])}):
            sel = np.flatnonzero(lt == t)
            if t < 0:
                net[sel], l3[sel] = _UNKNOWN_IF, 0
            else:
                net[sel], l3[sel] = _link_win(t, loc, sel, cap[sel])
        is_eth = lt == LT_ETHERNET

    cand = np.flatnonzero(net == _NET_IPV4)
    if len(cand) == 0:
        return _empty(net)

    # -- IPv4 header: checked from its first ten bytes, gathered whole for kept packets -------
    l3c = l3[cand]  # header positions below are relative to the record's first byte
    ccap = cap[cand] - l3c  # bytes captured from the IPv4 header on
    head = loc.rows(cand, l3c, 10)
    ihl_w = (head[:, 0] & 0x0F).astype(np.int64)
    ihl = ihl_w * 4
    tot = _u16(head, 2)
    if wire is not None:
        tso = np.flatnonzero(tot == 0)
        if len(tso):  # segmentation offload: the length is the frame's
            tot[tso] = np.clip(wire[cand[tso]] - l3c[tso], 0, 65535)
    frag = _u16(head, 6) & 0x1FFF
    proto = head[:, 9]
    is_tcp = proto == PROTO_TCP
    is_l4 = is_tcp | (proto == PROTO_UDP) | (proto == PROTO_ICMP)
    l4_at = l3c + ihl
    doff_w = (loc.rows(cand, l4_at + 12, 1)[:, 0] >> 4).astype(np.int64)
    l4_w = np.where(is_tcp, doff_w, 2)
    l4len = l4_w * 4
    l4_need = np.where(is_tcp, 20, 8)
    # later assignments win, so the checks run from the least to the most fundamental
    cnet = np.zeros(len(cand), np.int64)
    cnet[tot < ihl + l4len] = _BAD
    cnet[ccap < ihl + l4len] = _TRUNC
    cnet[is_tcp & (doff_w < 5)] = _BAD
    cnet[ccap < ihl + l4_need] = _TRUNC
    cnet[~is_l4] = _OTHER
    cnet[frag != 0] = _FRAG
    cnet[tot < ihl] = _BAD
    cnet[ccap < ihl] = _TRUNC
    cnet[((head[:, 0] >> 4) != 4) | (ihl_w < 5)] = _BAD
    cnet[ccap < 20] = _TRUNC
    net[cand] = cnet

    keep = np.flatnonzero(cnet == 0)
    if len(keep) == 0:
        return _empty(net)
    if len(keep) < len(cand):
        l3c, ihl_w, ihl, tot = l3c[keep], ihl_w[keep], ihl[keep], tot[keep]
        l4_w, l4len, l4_at, ccap = l4_w[keep], l4len[keep], l4_at[keep], ccap[keep]
    rec = cand[keep]
    k = len(rec)
    if sink is not None:
        at = sink.reserve(k)
        ip, l4 = sink.ip[at : at + k], sink.l4[at : at + k]
        ip[:] = loc.rows(rec, l3c, IP_HDR_MAX)
        l4[:] = loc.rows(rec, l4_at, L4_HDR_MAX)
    else:
        ip = loc.rows(rec, l3c, IP_HDR_MAX)
        l4 = loc.rows(rec, l4_at, L4_HDR_MAX)
    _mask_rows(ip, ihl_w)
    _mask_rows(l4, l4_w)
    hdr_len = ihl + l4len
    payload_len = tot - hdr_len
    if payload_bytes is not None and payload_bytes <= 0:  # headers only: no payload bytes
        payload, payload_off = np.zeros(0, np.uint8), np.zeros(len(rec) + 1, np.int64)
    else:
        held = np.minimum(payload_len, ccap - hdr_len)
        np.maximum(held, 0, out=held)
        if payload_bytes is not None:
            np.minimum(held, payload_bytes, out=held)
        payload, payload_off = _gather_ragged(buf, doff[rec] + l4_at + l4len, held)

    if sink is None:
        mac = np.zeros((k, 12), np.uint8)
        ts_out = ts_ns[rec]
        len_out = payload_len.astype(np.int32)
        file_out = None
    else:
        mac = sink.mac[at : at + k]
        ts_out = sink.ts_ns[at : at + k]
        np.take(ts_ns, rec, out=ts_out)
        len_out = sink.payload_len[at : at + k]
        len_out[:] = payload_len
        file_out = sink.file[at : at + k]
        sink.payloads.append((payload, payload_off))
    if isinstance(is_eth, np.ndarray) or is_eth:  # the first 12 bytes, where Ethernet
        mac[:] = rows(loc.flat, rec * _W_LOCAL, 12)
        if isinstance(is_eth, np.ndarray) and not is_eth.all():
            mac[np.flatnonzero(~is_eth[rec])] = 0
    elif sink is not None:
        mac[:] = 0
    return Decoded(
        ts_ns=ts_out,
        ip=ip,
        l4=l4,
        payload_len=len_out,
        payload=payload,
        payload_off=payload_off,
        mac=mac,
        rec=rec,
        net=net,
        file=file_out,
    )


_W_LOCAL = 128  # bytes of each record copied up front: link, IPv4 and L4 headers, mostly


class _Local:
    """The first :data:`_W_LOCAL` bytes of every record (from ``buf`` at ``doff``), copied once.

    Header windows are then gathered from this compact copy, whose rows sit next to each other,
    instead of from the scattered records; a window reaching past a record's copy is read
    from ``buf`` (``buf`` holds :data:`SLACK` bytes past every record start, more than this).
    """

    def __init__(self, buf: NDArray[np.uint8], doff: NDArray[np.int64]) -> None:
        self.buf = buf
        self.doff = doff
        self.win = rows(buf, doff, _W_LOCAL)
        self.flat = self.win.reshape(-1)

    def rows(self, idx: NDArray[np.int64], at: NDArray[np.int64], width: int) -> NDArray[np.uint8]:
        """``[len(idx), width]``: the bytes of record ``idx[i]`` from its byte ``at[i]`` on."""
        inside = at + width <= _W_LOCAL
        if inside.all():
            return rows(self.flat, idx * _W_LOCAL + at, width)
        out = rows(self.flat, idx * _W_LOCAL + np.where(inside, at, 0), width)
        far = np.flatnonzero(~inside)  # few: rewritten from the records themselves
        out[far] = rows(self.buf, self.doff[idx[far]] + at[far], width)
        return out


def _link_win(
    lt: int, loc: _Local, sel: NDArray[np.int64] | None, cap: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """:func:`_link` for records ``sel`` (None: all) of ``loc``, from their first bytes.

    Plain Ethernet (no tag, PPPoE or MPLS) is settled from its EtherType alone.
    """
    if lt == LT_ETHERNET:
        if sel is None:
            et = _u16(loc.win, 12)
        else:
            at = sel * _W_LOCAL + 12
            et = (loc.flat[at].astype(np.int64) << 8) | loc.flat[at + 1]
        if not _ET_NEXT[et].any():
            net = _ET_NET[et]
            net[cap < 14] = _TRUNC
            return net, np.full(len(et), 14, np.int64)
    if sel is None:
        return _link(lt, loc.win[:, :_W_LINK], cap)
    return _link(lt, rows(loc.flat, sel * _W_LOCAL, _W_LINK), cap)


def _blocks(buf: NDArray[np.uint8], size: int) -> NDArray[np.void]:
    """Stride-1 view of ``buf`` as overlapping ``size``-byte items (item ``i`` starts at byte i)."""
    return np.ndarray((len(buf) - size + 1,), np.dtype(f"V{size}"), buf, 0, (1,))


_BLOCK_SHIFT = 7  # ragged copies move 128-byte blocks, then the tails bit by bit
_MASK_BELOW = 1 << 18  # smaller ragged copies go through one byte mask instead


def _gather_mask(
    buf: NDArray[np.uint8], starts: NDArray[np.int64], lengths: NDArray[np.int64], total: int
) -> NDArray[np.uint8]:
    """The ragged copy through a mask over the span: runs of skipped and kept bytes."""
    if total == 0:
        return np.zeros(0, np.uint8)
    base = int(starts[0])
    runs = np.empty(2 * len(starts), np.int64)
    runs[0] = 0
    runs[2::2] = starts[1:] - (starts[:-1] + lengths[:-1])
    runs[1::2] = lengths
    pattern = np.zeros(2 * len(starts), np.bool_)
    pattern[1::2] = True
    mask = np.repeat(pattern, runs)
    return buf[base : base + len(mask)][mask]


def _gather_ragged(
    buf: NDArray[np.uint8], starts: NDArray[np.int64], lengths: NDArray[np.int64]
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Concatenate ``buf[starts[i]:starts[i] + lengths[i]]`` (ascending, non-overlapping).

    Each range is cut into 128-byte blocks and a tail whose set bits (64, 32, ..., 1) are one
    block each; every size is then one fancy-indexed block copy, so no per-byte index or mask
    is built and no copy overlaps another.
    """
    off = np.zeros(len(starts) + 1, np.int64)
    np.cumsum(lengths, out=off[1:])
    total = int(off[-1])
    if total < _MASK_BELOW:  # few bytes: one mask costs fewer array operations
        return _gather_mask(buf, starts, lengths, total), off
    out = np.empty(total, np.uint8)
    dst0 = off[:-1]
    nb = lengths >> _BLOCK_SHIFT
    n_blocks = int(nb.sum())
    if n_blocks:
        row = np.repeat(np.arange(len(starts)), nb)
        k = (np.arange(n_blocks) - (np.cumsum(nb) - nb)[row]) << _BLOCK_SHIFT
        size = 1 << _BLOCK_SHIFT
        _blocks(out, size)[dst0[row] + k] = _blocks(buf, size)[starts[row] + k]
    size = 1 << (_BLOCK_SHIFT - 1)
    while size:
        sel = np.flatnonzero(lengths & size)
        if len(sel):
            at = ((lengths[sel] >> _BLOCK_SHIFT) << _BLOCK_SHIFT) + (lengths[sel] & (size - 1))
            _blocks(out, size)[dst0[sel] + at] = _blocks(buf, size)[starts[sel] + at]
        size >>= 1
    return out, off
