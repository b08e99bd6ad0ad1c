"""The per-packet columns the conn.log engine needs, taken from a :class:`Traffic` at once.

Everything is a numpy column over all packets; payload signatures (the first bytes that identify
DNS, HTTP, TLS, SSH, ...) are evaluated here, so the engine never needs the payload again and a
streaming writer only keeps these small columns for connections still open.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import PROTO_ICMP, PROTO_TCP, PROTO_UDP, Traffic
from netdiffusion.checksum import checksum_ok

from ._segments import one_of

__all__ = ["HEAD", "SIG", "PacketTable", "head_signatures", "packet_table"]

#: Payload signature bits (per packet, from its first payload bytes).
SIG = {
    "http_req": 1 << 0,
    "http_resp": 1 << 1,
    "tls_hello": 1 << 2,
    "tls_rec": 1 << 3,
    "ssh": 1 << 4,
    "r220": 1 << 5,
    "ftp_cmd": 1 << 6,
    "auth_tls": 1 << 7,
    "r234": 1 << 8,
    "smtp_cmd": 1 << 9,
    "pop_ok": 1 << 10,
    "pop_cmd": 1 << 11,
    "imap_ok": 1 << 12,
    "dns": 1 << 13,
    "dns_tcp": 1 << 14,
    "ntp": 1 << 15,
    "dhcp": 1 << 16,
}

HEAD = 16  # payload bytes looked at for most signatures
_ICMP_COUNTERPART = np.full(256, -1, np.int64)
for _a, _b in ((8, 0), (13, 14), (15, 16), (17, 18), (10, 9)):
    _ICMP_COUNTERPART[_a], _ICMP_COUNTERPART[_b] = _b, _a


@dataclass
class PacketTable:
    """Packet columns for the conn.log engine (one row per IPv4 TCP/UDP/ICMP packet)."""

    ts: NDArray[np.int64]  # ns
    src: NDArray[np.int64]  # IPv4 address as integer
    dst: NDArray[np.int64]
    proto: NDArray[np.uint8]
    sport: NDArray[np.int64]  # ICMP: type
    dport: NDArray[np.int64]  # ICMP: counterpart type, else code
    flags: NDArray[np.uint8]  # TCP flags (0 otherwise)
    seq: NDArray[np.int64]  # TCP sequence number (uint32 value)
    ack: NDArray[np.int64]
    win: NDArray[np.int64]
    plen: NDArray[np.int64]  # transport payload bytes on the wire (UDP: length field - 8)
    ip_len: NDArray[np.int64]  # IPv4 total length
    valid: NDArray[np.bool_]  # transport checksum accepted (or not checked)
    sig: NDArray[np.int64]  # payload signature bits (SIG) of this packet alone
    head: NDArray[np.uint8]  # [n, 16] first payload bytes held (zero padded)
    held: NDArray[np.int64]  # how many of them are held

    @property
    def n(self) -> int:
        """Number of packets."""
        return len(self.ts)

    def take(self, idx: NDArray[np.int64] | NDArray[np.bool_]) -> PacketTable:
        """Rows ``idx`` in that order."""
        return PacketTable(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    @classmethod
    def concat(cls, parts: list[PacketTable]) -> PacketTable:
        """Rows of every part, in order."""
        return cls(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )

    @classmethod
    def empty(cls) -> PacketTable:
        """No packets."""
        z = np.zeros(0, np.int64)
        return cls(
            ts=z,
            src=z,
            dst=z,
            proto=np.zeros(0, np.uint8),
            sport=z,
            dport=z,
            flags=np.zeros(0, np.uint8),
            seq=z,
            ack=z,
            win=z,
            plen=z,
            ip_len=z,
            valid=np.zeros(0, np.bool_),
            sig=z,
            head=np.zeros((0, HEAD), np.uint8),
            held=z,
        )


def _u16(a: NDArray[np.uint8], i: int) -> NDArray[np.int64]:
    if i % 2 == 0 and a.shape[1] % 2 == 0 and a.flags.c_contiguous:
        return a.view(">u2")[:, i // 2].astype(np.int64)
    return (a[:, i].astype(np.int64) << 8) | a[:, i + 1]


def _u32(a: NDArray[np.uint8], i: int) -> NDArray[np.int64]:
    if i % 4 == 0 and a.shape[1] % 4 == 0 and a.flags.c_contiguous:
        return a.view(">u4")[:, i // 4].astype(np.int64)
    return (_u16(a, i) << 16) | _u16(a, i + 2)


def _in_nets(addr: NDArray[np.int64], nets: list[tuple[int, int]]) -> NDArray[np.bool_]:
    """Whether each address lies in any ``(network, prefix_len)``."""
    out = np.zeros(len(addr), np.bool_)
    for net, plen in nets:
        mask = ((1 << 32) - 1) ^ ((1 << (32 - plen)) - 1)
        out |= (addr & mask) == (net & mask)
    return out


def _heads(traffic: Traffic, width: int) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """First ``width`` held payload bytes of every packet (zero padded) and how many are held."""
    off = traffic.payload_off
    held = np.minimum(np.diff(off), width)
    n = traffic.n_packets
    heads = np.zeros((n, width), np.uint8)
    payload = traffic.payload
    if n == 0 or len(payload) == 0:
        return heads, held
    rows = np.flatnonzero(held > 0)
    start = off[:-1][rows]
    inside = start <= len(payload) - width  # a whole window of ``width`` bytes in the buffer
    if len(payload) >= width and inside.any():
        windows = np.lib.stride_tricks.sliding_window_view(payload, width)
        heads[rows[inside]] = windows[start[inside]]
    if not inside.all():  # the last packets' windows end past the buffer
        edge = rows[~inside]
        pos = np.minimum(off[:-1][edge, None] + np.arange(width)[None, :], len(payload) - 1)
        heads[edge] = payload[pos]
    short = rows[held[rows] < width]  # their windows hold bytes of the next packets
    heads[short] *= np.arange(width)[None, :] < held[short, None]
    return heads, held


def _prefix_words(h: NDArray[np.uint8]) -> NDArray[np.uint64]:
    """The first 8 bytes of each row as one big-endian integer."""
    first8 = np.zeros((len(h), 8), np.uint8)
    first8[:, : min(8, h.shape[1])] = h[:, :8]
    return first8.view(">u8").ravel().astype(np.uint64)


class _Prefix:
    """Fast ``startswith`` tests on the first 8 bytes of many rows."""

    def __init__(self, h: NDArray[np.uint8], held: NDArray[np.int64]) -> None:
        self.w = _prefix_words(h)
        self.held = held

    def __call__(self, text: bytes) -> NDArray[np.bool_]:
        n = len(text)
        pat = int.from_bytes(text.ljust(8, b"\0"), "big")
        mask = ((1 << (8 * n)) - 1) << (8 * (8 - n))
        return (self.held >= n) & ((self.w & np.uint64(mask)) == np.uint64(pat))

    def bits(self, table: dict[bytes, int]) -> NDArray[np.int64]:
        """OR of ``table[text]`` over every ``text`` each row starts with (one lookup a length)."""
        out = np.zeros(len(self.w), np.int64)
        for n in sorted({len(t) for t in table}):  # a handful of prefix lengths
            texts = sorted(t for t in table if len(t) == n)
            pats = np.array([int.from_bytes(t.ljust(8, b"\0"), "big") for t in texts], np.uint64)
            mask = np.uint64(((1 << (8 * n)) - 1) << (8 * (8 - n)))
            key = self.w & mask
            at = np.minimum(np.searchsorted(pats, key), len(pats) - 1)
            hit = (pats[at] == key) & (self.held >= n)
            out |= np.where(hit, np.array([table[t] for t in texts], np.int64)[at], 0)
        return out


def _startswith(head: NDArray[np.uint8], held: NDArray[np.int64], text: bytes) -> NDArray[np.bool_]:
    return _Prefix(head, held)(text)


def _prefix_table(pairs: list[tuple[bytes, str]]) -> dict[bytes, int]:
    table: dict[bytes, int] = {}
    for text, name in pairs:
        table[text] = table.get(text, 0) | SIG[name]
    return table


_TCP_PREFIXES = _prefix_table(
    [(m, "http_req") for m in (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ")]
    + [(b"CONNECT ", "http_req"), (b"HTTP/", "http_resp"), (b"SSH-", "ssh")]
    + [(b"220", "r220"), (b"234", "r234"), (b"+OK", "pop_ok"), (b"* OK", "imap_ok")]
)
_TCP_UPPER_PREFIXES = _prefix_table(
    [(c, "ftp_cmd") for c in (b"USER", b"AUTH", b"FEAT", b"SYST", b"OPTS")]
    + [(b"AUTH TLS", "auth_tls"), (b"AUTH SSL", "auth_tls")]
    + [(b"EHLO", "smtp_cmd"), (b"HELO", "smtp_cmd")]
    + [(c, "pop_cmd") for c in (b"USER", b"CAPA", b"APOP", b"AUTH", b"STLS")]
)


def _dns_like(h: NDArray[np.uint8], held: NDArray[np.int64], size: NDArray[np.int64]) -> NDArray:
    """A plausible DNS message header (and first question label) at the start of ``h``."""
    opcode = (h[:, 2] >> 3) & 0x0F
    qd, an, ns, ar = _u16(h, 4), _u16(h, 6), _u16(h, 8), _u16(h, 10)
    label = h[:, 12].astype(np.int64)
    ok = (held >= 13) & (size >= 17) & one_of(opcode, (0, 1, 2, 4, 5))
    ok &= (qd <= 8) & (an <= 256) & (ns <= 256) & (ar <= 256) & ((qd + an + ns + ar) > 0)
    ok &= (h[:, 3] & 0x40) == 0  # the Z bit is zero
    return ok & ((qd == 0) | (label < 64) | (label >= 0xC0))


_TEXT_FIRST = np.zeros(256, np.bool_)  # first bytes of the text prefixes, either case
for _text in (*_TCP_PREFIXES, *_TCP_UPPER_PREFIXES):
    _TEXT_FIRST[[_text[0], ord(chr(_text[0]).lower())]] = True


def head_signatures(
    h: NDArray[np.uint8],
    held: NDArray[np.int64],
    size: NDArray[np.int64],
    tcp: NDArray[np.bool_],
    udp: NDArray[np.bool_],
) -> NDArray[np.int64]:
    """Signature bits of payload heads ``h`` (``held`` bytes of ``size``), per row."""
    sig = np.zeros(len(h), np.int64)

    def put(name: str, mask: NDArray[np.bool_]) -> None:
        sig[mask] |= SIG[name]

    # Text prefixes: only rows whose first byte starts one of them (either case) can match.
    text_rows = np.flatnonzero(tcp & _TEXT_FIRST[h[:, 0]])
    if len(text_rows):
        ht, held_t = h[text_rows, :8], held[text_rows]
        upper = np.where((ht >= 97) & (ht <= 122), ht - 32, ht).astype(np.uint8)
        sig[text_rows] |= _Prefix(ht, held_t).bits(_TCP_PREFIXES) | _Prefix(upper, held_t).bits(
            _TCP_UPPER_PREFIXES
        )
    rec = (held >= 6) & (h[:, 1] == 3) & (h[:, 2] <= 4)
    put("tls_hello", tcp & rec & (h[:, 0] == 0x16) & (h[:, 5] == 1))
    put("tls_rec", tcp & rec & one_of(h[:, 0], (0x14, 0x15, 0x16, 0x17)))
    rows = np.flatnonzero(udp)
    dns = rows[_dns_like(h[rows], held[rows], size[rows])]
    sig[dns] |= SIG["dns"]
    rows = np.flatnonzero(tcp & (held >= 15) & (_u16(h, 0) <= size - 2))
    h2 = np.zeros((len(rows), h.shape[1]), np.uint8)
    h2[:, :-2] = h[rows, 2:]
    dns_tcp = rows[_dns_like(h2, held[rows] - 2, size[rows] - 2)]
    sig[dns_tcp] |= SIG["dns_tcp"]
    version, mode = (h[:, 0] >> 3) & 7, h[:, 0] & 7
    ntp = udp & (held >= 3) & one_of(size, (48, 68)) & (version >= 1) & (version <= 4)
    put("ntp", ntp & (mode >= 1) & (mode <= 5) & (h[:, 1] <= 16) & (h[:, 2] <= 17))
    return sig


def _signatures(traffic: Traffic, proto: NDArray[np.uint8], plen: NDArray[np.int64]):
    h, held = _heads(traffic, HEAD)
    tcp, udp = proto == PROTO_TCP, proto == PROTO_UDP
    sig = np.zeros(traffic.n_packets, np.int64)
    some = np.flatnonzero(held > 0)  # only packets with payload can match anything
    sig[some] = head_signatures(h[some], held[some], plen[some], tcp[some], udp[some])
    dhcp = udp & (plen >= 240) & (held >= 3) & one_of(h[:, 0], (1, 2)) & (h[:, 1] == 1)
    dhcp &= h[:, 2] == 6
    if dhcp.any():
        idx = np.flatnonzero(dhcp)
        start = traffic.payload_off[idx]
        enough = traffic.payload_off[idx + 1] - start >= 240
        cookie = np.zeros(len(idx), np.bool_)
        if enough.any():
            s = start[enough]
            got = traffic.payload[s[:, None] + np.arange(236, 240)[None, :]]
            cookie[enough] = np.all(got == np.array([99, 130, 83, 99], np.uint8), axis=1)
        dhcp[idx] = cookie
    sig[dhcp] |= SIG["dhcp"]
    return sig, h, held


def packet_table(
    traffic: Traffic,
    *,
    ignore_checksums: bool = False,
    ignore_checksums_nets: list[tuple[int, int]] | None = None,
) -> PacketTable:
    """The engine's columns for ``traffic`` (time-sorted, stable).

    Packets whose IPv4 header checksum is wrong are dropped, as Zeek drops them, unless checksums
    are ignored (``ignore_checksums``, or the source address is in ``ignore_checksums_nets``).
    """
    if traffic.n_packets == 0:
        return PacketTable.empty()
    ts = traffic.ts_ns
    if np.any(ts[1:] < ts[:-1]):
        traffic = traffic.take(np.argsort(ts, kind="stable"))
    # The header bytes used, copied once (reading single columns of the wide header matrices
    # would stream all of them every time).
    ip = np.ascontiguousarray(traffic.ip[:, :20])
    l4 = np.ascontiguousarray(traffic.l4[:, :16])
    proto = ip[:, 9].copy()
    src, dst = _u32(ip, 12), _u32(ip, 16)
    keep = one_of(proto, (PROTO_TCP, PROTO_UDP, PROTO_ICMP))
    exempt = np.full(len(src), ignore_checksums)
    if ignore_checksums_nets:
        exempt |= _in_nets(src, ignore_checksums_nets)
    if ignore_checksums:  # every packet exempt: no sums to compute
        valid = exempt
    else:
        verdict = checksum_ok(traffic)
        keep &= verdict["ip"] | exempt
        valid = verdict["l4"] | exempt
    tcp, udp, icmp = proto == PROTO_TCP, proto == PROTO_UDP, proto == PROTO_ICMP
    sport, dport = _u16(l4, 0), _u16(l4, 2)
    itype, icode = l4[:, 0].astype(np.int64), l4[:, 1].astype(np.int64)
    counter = _ICMP_COUNTERPART[itype]
    sport = np.where(icmp, itype, sport)
    dport = np.where(icmp, np.where(counter >= 0, counter, icode), dport)
    plen = traffic.payload_len.astype(np.int64)
    plen = np.where(udp, np.maximum(_u16(l4, 4) - 8, 0), plen)
    sig, head, held = _signatures(traffic, proto, plen)
    table = PacketTable(
        ts=traffic.ts_ns.astype(np.int64),
        src=src,
        dst=dst,
        proto=proto,
        sport=sport,
        dport=dport,
        flags=np.where(tcp, l4[:, 13], 0).astype(np.uint8),
        seq=np.where(tcp, _u32(l4, 4), 0),
        ack=np.where(tcp, _u32(l4, 8), 0),
        win=np.where(tcp, _u16(l4, 14), 0),
        plen=plen,
        ip_len=_u16(ip, 2),
        valid=valid,
        sig=sig,
        head=head,
        held=held,
    )
    return table if keep.all() else table.take(np.flatnonzero(keep))
