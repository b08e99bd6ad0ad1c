"""Payload bytes for packets that hold fewer than ``payload_len`` (generated traffic holds none).

:func:`fill_payloads` keeps every byte a packet already holds and fills the rest so that
Wireshark/tshark 4.0 dissects the result without malformed-packet or expert error/warning
verdicts (measured; see ``benchmarks/`` and ``tests/core/emit/test_payload.py``). Zero-filled
payloads are not neutral: tshark flags zero-filled DNS, NTP, DHCP and ~200 other port-bound
protocols as malformed. So the filler is chosen per packet from its flow's protocol and service
port (the responder's port, by ``direction``; the other port when that one is unknown) and built
vectorized per kind, from a template per kind broadcast over all packets of that kind:

============  ==================  ========================================================
kind          ports               bytes
============  ==================  ========================================================
DNS           UDP 53, 5353, 5355  a query (originator) or response (responder), QD=1, whose
                                  name ``abcd...`` (labels of up to 63) pads the message;
                                  above 271 bytes an EDNS(0) OPT record with a Padding
                                  option (RFC 7830) takes the rest. Transaction IDs are
                                  unique per query in a flow, the response reuses its
                                  query's (tshark flags repeated IDs as retransmissions).
DNS/TCP       TCP 53              the same message behind a 2-byte length prefix, one
                                  message per segment
NTP           UDP 123             NTPv4 header: mode 3 (client) / 4 (server), timestamps
                                  from the packet time; bytes past 48 zero
DHCP          UDP 67, 68          BOOTP + magic cookie + DHCP message type (DISCOVER/OFFER,
                                  REQUEST/ACK alternating) + END, then zero padding;
                                  ``chaddr`` is the client's MAC as ``macs`` derives it
HTTP          TCP 80, 8080        ``GET /xxx HTTP/1.0`` requests padded in the path;
                                  ``HTTP/1.1 200 xxx`` responses padded in the reason
                                  phrase with ``Content-Length: 0`` (each segment is one
                                  whole message)
SSDP          UDP 1900            ``M-SEARCH * HTTP/1.1`` with an ``ST:`` header padded;
                                  ``HTTP/1.1 200 xxx`` responses
TLS           TCP 443, 465, 636,  TLS 1.2 application-data records (type 23, version
              853, 993, 995,      0x0303), one record per segment (several when a segment
              5061, 8443, 8883    exceeds 16389 bytes); record bodies zero
ICMP error    types 3, 4, 5, 11,  the original datagram: an IPv4 header (correct checksum;
              12                  source = the error's destination) and a UDP header to a
                                  traceroute port, then zeros
ICMP other    echo, ...           the incrementing byte pattern of ``ping``
others        any other port      zero bytes (``UDP_FILL_BYTES``: another constant for 47
                                  UDP ports where it is flagged at fewer lengths)
============  ==================  ========================================================

Measured with tshark 4.0 (``_ws.malformed`` or expert severity >= warning), two packets per
flow, client port 40000: zero filler on every UDP port at lengths 1, 2, 4, 8, 16, 40, 100,
300, 1000 is flagged on 175 of 65,535 ports (774 of 589,815 port/length pairs; the per-port
best constant of 0x00, 0xFF, 0x55, 0xAA, 0x80, 0x7F, 0x20, 'x' lowers that to 612); on TCP
(lengths 1, 4, 8, 40, 300) on 148 ports. These ports have a binary dissector that rejects any
constant (NetBIOS, SNMP, OpenVPN, IPsec NAT-T, RDP, X11, ...): no filler short of a template
for that protocol is clean there. The templated kinds above are clean at every length at or
above their minimum, including 1-byte TCP segments (glued into the next message). QUIC (UDP
443) is zero-filled: tshark flags none of those lengths there.

Ports no filler makes clean (``UNFILLABLE_TCP``: 47, ``UNFILLABLE_UDP``: 147, measured with
``tests/core/emit/_port_sweep.py`` over every port, lengths 1-1460, zero, ``'x'``, 0xFF and on
TCP ten more constants; ``'x'`` cleans 100 TCP ports zero does not, ``TCP_FILL_BYTES``) are what
synthetic repair avoids: :func:`safe_service_ports` moves such a flow's service port to the next
fillable one (and a templated UDP port whose flow has a payload below ``UDP_TEMPLATE_MIN``), and
:func:`ephemeral_ports` gives client ports in 49152-65535 that no dissector claims.

Messages shorter than a protocol's minimum (a DNS question needs 17 bytes, NTP 48, DHCP 244)
cannot be well formed; they get the template's first bytes and are what tshark still flags.

Nothing loops per packet: packets are grouped by kind, each kind's bytes are written with
numpy (a base byte per packet broadcast with ``np.repeat``, then the structured bytes as
``[packets, width]`` matrices built from column indices and scattered with fancy indexing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import PROTO_ICMP, PROTO_TCP, PROTO_UDP, Traffic
from netdiffusion.emit.macs import mac_for_ip

__all__ = [
    "EPHEMERAL_TAKEN",
    "KIND_NAMES",
    "TCP_FILL_BYTES",
    "UDP_FILL_BYTES",
    "UNFILLABLE_TCP",
    "UDP_TEMPLATE_MIN",
    "udp_template_min",
    "UNFILLABLE_UDP",
    "ephemeral_ports",
    "fill_payloads",
    "payload_kinds",
    "safe_service_ports",
]

# -- kinds --------------------------------------------------------------------------------------

RAW, DNS, DNS_TCP, NTP, DHCP, HTTP, SSDP, TLS, ICMP_ERR, ICMP_OTHER = range(10)
KIND_NAMES = (
    "raw",
    "dns",
    "dns-tcp",
    "ntp",
    "dhcp",
    "http",
    "ssdp",
    "tls",
    "icmp-error",
    "icmp-other",
)

_UDP_PORTS = {53: DNS, 5353: DNS, 5355: DNS, 123: NTP, 67: DHCP, 68: DHCP, 1900: SSDP}
_TCP_PORTS = {53: DNS_TCP, 80: HTTP, 8080: HTTP}
_TCP_PORTS.update(dict.fromkeys((443, 465, 636, 853, 993, 995, 5061, 8443, 8883), TLS))
_ICMP_ERRORS = (3, 4, 5, 11, 12)

#: Filler bytes for other UDP ports where a constant other than zero is flagged by tshark 4.0 at
#: fewer payload lengths than zero is (measured over lengths 1-1000 with every constant tried).
UDP_FILL_BYTES: dict[int, int] = {
    **dict.fromkeys((213, 269, 1052, 2157, 2887, 4533, 4534, 5000, 5094, 5350, 5351), 0xFF),
    **dict.fromkeys((5683, 6073, 6635, 6970, 9600, 10253, 10500, 12222, 12223, 17220), 0xFF),
    **dict.fromkeys((19999, 27910, 32000, 32512, *range(14390, 14400)), 0xFF),
    **dict.fromkeys((3343, 4569, 6118, 9201, 34962), ord("x")),
    **dict.fromkeys((1718, 1719, 9875), ord(" ")),
    47000: 0xAA,
}


def _ranges(text: str) -> tuple[int, ...]:
    """``"1,5-7"`` -> ``(1, 5, 6, 7)``."""
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return tuple(out)


#: Filler bytes for other TCP ports where zero is flagged by tshark 4.0 and ``'x'`` is not
#: (measured with ``tests/core/emit/_port_sweep.py``: one flow per port, lengths 1-1460).
TCP_FILL_BYTES: dict[int, int] = dict.fromkeys(
    _ranges(
        "42,49,88,210,547,1194,2234,2240,2502,3002-3003,3006,3014,3016-3019,3306,3369,3724,4222,"
        "4249-4250,4880,5000,5353,5445,5534,6000-6063,7000,7171-7172,7871,8567,9092,14001,24800"
    ),
    ord("x"),
)

#: Service ports no filler here makes clean: tshark 4.0 flags the flow (malformed, expert error
#: or warning) at some payload length in 1-1460 with zero, ``'x'`` and 0xFF bytes alike (and
#: ten other constants on TCP), or with the port's ``UDP_FILL_BYTES`` byte. Binary protocols
#: with length fields or magic values (SSH, LDAP, SNMP/TCP, PPTP, NetBIOS, RIP, SLP, VXLAN,
#: Geneve, CAPWAP, ...) and no template here. Synthetic repair moves such a flow's service port
#: (see :func:`safe_service_ports`); templated ports are not listed (they have a minimum length).
UNFILLABLE_TCP: frozenset[int] = frozenset(
    _ranges(
        "22,37,123,161-162,199,389,524,639,873,925,988,1102,1153,1521,1723,1998,2269,2321-2322,"
        "2571,2812,2944,3268,3357,3632,3863,4223-4224,4321,4551,4555-4556,5010,5094,5555,6160,"
        "6666,8023,8085,9300,9600,9956,13400,29418,34980,48049"
    )
)
UNFILLABLE_UDP: frozenset[int] = frozenset(
    _ranges(
        "37,49,69,137-138,173,177,213,319-320,427,434,464,496,513,520-521,524-525,546-547,664,"
        "701,854,910,921,925,1001,1153,1194,1293,1628-1629,1718-1719,1745,2048,2055,2222,2246,"
        "2269,2313,2345,2428,2944-2945,2948,3130,3250,3343,3357,3389,3452,3455,3544,3671,3784,"
        "3804,3863,4000,4306-4307,4341-4342,4500,4533-4534,4551,4555,4569,4729,4739,4754,4784,"
        "4789-4791,4991,5000-5001,5031,5072,5094,5246-5247,5436,5683,6081,6118,6343,6635,6784,"
        "6970,7074,7275,7784,8200,8211,8600,8767,8805,8848,9200,9214,9875,9899,9901,9956,9996,"
        "10253,11273,12000-12004,12220,12222-12223,13400,17220,17755-17756,18246,19132,23272,"
        "24576-24577,25826,26000,27500,27910,27950-27953,27960-27963,34962,34980,37008,41170,"
        "44818,47000,54328"
    )
)
#: Ephemeral ports (49152-65535) that tshark 4.0 binds a dissector to on TCP or UDP (``tshark
#: -G decodes``, and the sweeps): never used as a synthetic client port.
EPHEMERAL_TAKEN: frozenset[int] = frozenset(
    _ranges(
        "49999,54328,56000-56001,56500-56501,57000-57001,57032-57033,57500-57501,57532-57533,"
        "59000-59001,59032-59033,59500-59501,59532-59533,60001"
    )
)
EPHEMERAL_FIRST = 49152

_BASE = np.zeros(len(KIND_NAMES), np.uint8)
_BASE[HTTP] = _BASE[SSDP] = ord("x")


def _port_table(ports: dict[int, int]) -> NDArray[np.int8]:
    table = np.full(65536, RAW, np.int8)
    for port, kind in ports.items():
        table[port] = kind
    return table


def _fill_table(fill: dict[int, int]) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    value = np.zeros(65536, np.uint8)
    known = np.zeros(65536, np.bool_)
    for port, byte in fill.items():
        value[port] = byte
        known[port] = True
    return value, known


_TCP_TABLE = _port_table(_TCP_PORTS)
_UDP_TABLE = _port_table(_UDP_PORTS)
_TCP_FILL = _fill_table(TCP_FILL_BYTES)
_UDP_FILL = _fill_table(UDP_FILL_BYTES)


def _be16(cols: NDArray[np.uint8]) -> NDArray[np.int64]:
    return cols[:, 0].astype(np.int64) << 8 | cols[:, 1]


def _ports(traffic: Traffic) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Service port (the responder's, by direction) and the other port of every packet."""
    l4 = traffic.l4
    sport, dport = _be16(l4[:, 0:2]), _be16(l4[:, 2:4])
    orig = traffic.direction == 0
    return np.where(orig, dport, sport), np.where(orig, sport, dport)


def payload_kinds(traffic: Traffic) -> NDArray[np.int8]:
    """The filler kind of every packet (an index into ``KIND_NAMES``)."""
    proto = traffic.proto
    svc, other = _ports(traffic)
    kind = np.full(traffic.n_packets, RAW, np.int8)
    for p, table in ((PROTO_TCP, _TCP_TABLE), (PROTO_UDP, _UDP_TABLE)):
        rows = proto == p
        ks, ko = table[svc[rows]], table[other[rows]]
        kind[rows] = np.where(ks != RAW, ks, ko)  # the other port only if the service is unknown
    icmp = proto == PROTO_ICMP
    kind[icmp] = np.where(np.isin(traffic.l4[icmp, 0], _ICMP_ERRORS), ICMP_ERR, ICMP_OTHER)
    return kind


def _next_allowed(bad: NDArray[np.bool_], low: int) -> NDArray[np.int64]:
    """Per port: itself if not ``bad``, else the next allowed port above (wrapping to ``low``)."""
    ports = np.where(bad, 65536, np.arange(65536))
    nxt = np.minimum.accumulate(ports[::-1])[::-1]
    return np.where(nxt < 65536, nxt, low + int(np.argmax(~bad[low:]))).astype(np.int64)


def _mask(ports: frozenset[int]) -> NDArray[np.bool_]:
    m = np.zeros(65536, np.bool_)
    m[list(ports)] = True
    return m


_UNFILLABLE = {PROTO_TCP: _mask(UNFILLABLE_TCP), PROTO_UDP: _mask(UNFILLABLE_UDP)}
_SAFE_SERVICE = {
    p: _next_allowed(bad | (table != RAW) | (np.arange(65536) < 1), 1024)
    for p, bad, table in (
        (PROTO_TCP, _UNFILLABLE[PROTO_TCP], _TCP_TABLE),
        (PROTO_UDP, _UNFILLABLE[PROTO_UDP], _UDP_TABLE),
    )
}
_EPHEMERAL = _next_allowed(
    _mask(EPHEMERAL_TAKEN) | (np.arange(65536) < EPHEMERAL_FIRST), EPHEMERAL_FIRST
)


#: The shortest UDP payload each templated kind can fill as a well-formed message (a DNS
#: question needs 17 bytes, an NTP header 48, BOOTP with the DHCP cookie and type 244, an SSDP
#: request line 17); TCP kinds are framed across segments and have none.
UDP_TEMPLATE_MIN: dict[int, int] = {53: 17, 5353: 17, 5355: 17, 123: 48, 67: 244, 68: 244, 1900: 17}
_UDP_MIN = np.zeros(65536, np.int64)
for _port, _least in UDP_TEMPLATE_MIN.items():
    _UDP_MIN[_port] = _least


def udp_template_min(port: NDArray[np.integer]) -> NDArray[np.int64]:
    """Per UDP service port, the shortest payload its template fills (0: not templated)."""
    p = np.asarray(port, np.int64)
    return np.where((p >= 0) & (p <= 0xFFFF), _UDP_MIN[np.clip(p, 0, 0xFFFF)], 0)


def safe_service_ports(
    proto: NDArray[np.integer],
    port: NDArray[np.integer],
    min_payload: NDArray[np.integer] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Service ports this filler can fill cleanly, and which of them were moved.

    A TCP/UDP port in ``UNFILLABLE_TCP`` / ``UNFILLABLE_UDP``, or a templated UDP port whose
    flow has a payload shorter than the template's minimum (``min_payload``: the flow's
    shortest non-empty payload; ``UDP_TEMPLATE_MIN``), becomes the next port above it that is
    neither unfillable nor templated (a deterministic, documented last resort); every other
    port, and every other protocol, is kept.
    """
    proto = np.asarray(proto)
    out = np.asarray(port, np.int64).copy()
    moved = np.zeros(len(out), np.bool_)
    least = np.full(len(out), 0xFFFF) if min_payload is None else np.asarray(min_payload)
    for p, bad in _UNFILLABLE.items():
        rows = np.flatnonzero((proto == p) & (out >= 0) & (out <= 0xFFFF))
        hit = bad[out[rows]]
        if p == PROTO_UDP:
            hit |= least[rows] < _UDP_MIN[out[rows]]
        hit = rows[hit]
        out[hit] = _SAFE_SERVICE[p][out[hit]]
        moved[hit] = True
    return out, moved


def ephemeral_ports(value: NDArray[np.integer]) -> NDArray[np.int64]:
    """Client ports in 49152-65535 that no tshark dissector claims, derived from ``value``.

    A value already such a port is kept; any other maps to ``49152 + value % 16384``, or the
    next free port above it.
    """
    v = np.asarray(value, np.int64)
    v = np.where((v >= EPHEMERAL_FIRST) & (v <= 0xFFFF), v, EPHEMERAL_FIRST + v % 16384)
    return _EPHEMERAL[v]


def _base_bytes(traffic: Traffic, kind: NDArray[np.int8]) -> NDArray[np.uint8]:
    """The byte every packet's payload starts filled with (per kind; per port for RAW)."""
    base = _BASE[kind]
    proto = traffic.proto
    svc, other = _ports(traffic)
    for p, (value, known) in ((PROTO_TCP, _TCP_FILL), (PROTO_UDP, _UDP_FILL)):
        rows = np.flatnonzero((kind == RAW) & (proto == p))
        port = np.where(known[svc[rows]], svc[rows], other[rows])
        base[rows] = value[port]
    return base


# -- the fill engine ----------------------------------------------------------------------------


@dataclass
class _Fill:
    """What every kind builder needs: the traffic, the new buffer and where rows start."""

    traffic: Traffic
    length: NDArray[np.int64]  # payload_len per packet
    start: NDArray[np.int64]  # start of each packet in ``out``
    out: NDArray[np.uint8]

    def put(
        self,
        idx: NDArray[np.int64],
        at: NDArray[np.int64] | int,
        mat: NDArray[np.uint8],
        lens: NDArray[np.int64] | int,
    ) -> None:
        """Write ``mat[r, :lens[r]]`` at offset ``at[r]`` of packet ``idx[r]``, clipped to it."""
        n, w = mat.shape
        if n == 0 or w == 0:
            return
        at = np.broadcast_to(np.asarray(at, np.int64), (n,))
        lens = np.broadcast_to(np.asarray(lens, np.int64), (n,))
        lens = np.clip(np.minimum(lens, self.length[idx] - at), 0, w)
        cols = np.arange(w)
        keep = cols[None, :] < lens[:, None]
        pos = (self.start[idx] + at)[:, None] + cols[None, :]
        self.out[pos[keep]] = mat[keep]

    def _by_flow(
        self, idx: NDArray[np.int64], direction: int
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_], NDArray[np.int64], NDArray[np.int64]]:
        """Packets ``idx`` grouped by flow (row order within; packets outside a flow alone):
        ``(order, first of its group, is of direction, running count of that direction
        within the group)``, all in grouped order."""
        flow = self.traffic.flow[idx]
        key = np.where(flow >= 0, flow, -1 - idx)
        order = np.lexsort((idx, key))
        k = key[order]
        mine = (self.traffic.direction[idx][order] == direction).astype(np.int64)
        cum = np.cumsum(mine)
        first = np.ones(len(k), np.bool_)
        first[1:] = k[1:] != k[:-1]
        base = np.maximum.accumulate(np.where(first, np.arange(len(k)), 0))
        return order, first, mine, cum - (cum[base] - mine[base])

    def flow_rank(self, idx: NDArray[np.int64]) -> NDArray[np.int64]:
        """Per packet: how many originator packets of its flow precede or are it (row order).

        Packets outside a flow count on their own (rank 1 for an originator packet).
        """
        order, _first, _mine, running = self._by_flow(idx, 0)
        rank = np.empty(len(idx), np.int64)
        rank[order] = running
        return rank

    def answer_rank(self, idx: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Per packet: how many responder packets of its flow precede or are it (row order), and
        whether it answers: a responder packet right after an originator packet of its flow.
        """
        order, first, r, running = self._by_flow(idx, 1)
        prev_orig = np.zeros(len(order), np.bool_)
        prev_orig[1:] = ~first[1:] & (r[:-1] == 0)
        rank = np.empty(len(idx), np.int64)
        answers = np.empty(len(idx), np.bool_)
        rank[order] = running
        answers[order] = prev_orig & (r == 1)
        return rank, answers


def _text(s: str) -> NDArray[np.uint8]:
    return np.frombuffer(s.encode("ascii"), np.uint8)


def _rows(mat_row: NDArray[np.uint8], n: int) -> NDArray[np.uint8]:
    return np.broadcast_to(mat_row, (n, len(mat_row)))


def _be(mat: NDArray[np.uint8], col: int, values: NDArray[np.integer], width: int) -> None:
    v = np.asarray(values).astype(np.int64)
    for k in range(width):
        mat[:, col + k] = (v >> (8 * (width - 1 - k))) & 0xFF


def _flow_hash(f: _Fill, idx: NDArray[np.int64]) -> NDArray[np.int64]:
    flow = f.traffic.flow[idx]
    key = np.where(flow >= 0, flow, idx + (1 << 40))
    return (key * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF


# -- DNS ----------------------------------------------------------------------------------------

_DNS_FLAGS = {53: (0x0100, 0x8180), 5353: (0x0000, 0x8400), 5355: (0x0000, 0x8000)}
_NAME_MAX = 255
_OPT_LEN = 15  # OPT RR (11) + Padding option header (4)
_OPT_NAME = 34  # name length used when an OPT record pads the message


def _dns_name(n: NDArray[np.int64]) -> NDArray[np.uint8]:
    """Encoded names of ``n`` bytes (``n`` = 1 is the root; 2 is a pointer to the root), in a
    matrix at least 2 columns wide."""
    w = max(int(n.max()), 2)
    c = np.arange(w)[None, :]
    nn = n[:, None]
    nl = nn - 1  # label bytes before the terminating zero
    q, r = nl // 64, nl % 64
    block, within = c // 64, c % 64
    length = np.where(block < q, 63, r - 1)
    is_len = within == 0
    char = ord("a") + (within - 1) % 26
    mat = np.where(is_len, length, char)
    # r == 1 would need an empty label: make the last two labels 62 and 1 characters.
    fix = (r == 1) & (q >= 1)
    last_full = 64 * (q - 1)
    mat = np.where(fix & (c == last_full), 62, mat)
    mat = np.where(fix & (c == last_full + 63), 1, mat)
    mat = np.where(fix & (c == last_full + 64), ord("a"), mat)
    mat = np.where(c == nn - 1, 0, mat)
    two = n == 2
    mat[two, 0] = 0xC0
    mat[two, 1] = 0x0B  # offset 11: the low byte of ARCOUNT, zero: the root name
    return mat.astype(np.uint8)


def _dns(f: _Fill, idx: NDArray[np.int64], prefix: int) -> None:
    t = f.traffic
    m = f.length[idx] - prefix  # DNS message length
    resp = t.direction[idx] == 1
    l4 = t.l4[idx]
    port = np.where(resp, _be16(l4[:, 0:2]), _be16(l4[:, 2:4]))
    q_flags = np.full(len(idx), _DNS_FLAGS[53][0])
    r_flags = np.full(len(idx), _DNS_FLAGS[53][1])
    for p, (qf, rf) in _DNS_FLAGS.items():
        q_flags[port == p] = qf
        r_flags[port == p] = rf
    opt = m - 16 > _NAME_MAX
    has_q = m >= 17
    name_len = np.where(opt, _OPT_NAME, np.clip(m - 16, 1, None))
    pad = m - 12 - name_len - 4 - _OPT_LEN
    # a query's ID is unique in its flow; the response right after it reuses it; any other
    # response gets an ID of its own (tshark flags a repeated response as a retransmission)
    r_rank, answers = f.answer_rank(idx)
    own = np.where(resp & ~answers, 0x8000 + r_rank, f.flow_rank(idx))
    txid = (_flow_hash(f, idx) + own) & 0xFFFF
    w = 12 + int(name_len.max()) + 4 + _OPT_LEN
    mat = np.zeros((len(idx), prefix + w), np.uint8)
    if prefix:
        _be(mat, 0, np.maximum(m, 0), 2)
    h = prefix
    _be(mat, h, txid, 2)
    _be(mat, h + 2, np.where(resp, r_flags, q_flags), 2)
    _be(mat, h + 4, has_q, 2)
    _be(mat, h + 10, opt & has_q, 2)
    rows = np.flatnonzero(has_q)
    if rows.size:
        names = _dns_name(name_len[rows])
        c = np.arange(names.shape[1])[None, :]
        nl = name_len[rows][:, None]
        sub = np.zeros((rows.size, w - 12), np.uint8)
        sub[:, : names.shape[1]] = np.where(c < nl, names, 0)
        r = np.arange(rows.size)[:, None]
        tail = np.array([0, 1, 0, 1], np.uint8)  # QTYPE A, QCLASS IN
        sub[r, nl + np.arange(4)[None, :]] = tail
        orows = rows[opt[rows]]
        if orows.size:
            o = np.zeros((orows.size, _OPT_LEN), np.uint8)
            o[:, 1:3] = (0, 41)  # root name, TYPE OPT
            _be(o, 3, np.full(orows.size, 1232), 2)  # requestor's UDP payload size
            _be(o, 9, pad[orows] + 4, 2)  # RDLENGTH
            o[:, 11:13] = (0, 12)  # EDNS option: Padding
            _be(o, 13, pad[orows], 2)
            sel = opt[rows]
            oc = _OPT_NAME + 4
            sub[np.flatnonzero(sel), oc : oc + _OPT_LEN] = o
        mat[rows, h + 12 :] = sub
    lens = prefix + np.where(opt, 12 + _OPT_NAME + 4 + _OPT_LEN, 12 + np.maximum(m - 12, 0))
    f.put(idx, 0, mat, np.minimum(lens, prefix + w))


# -- NTP, DHCP ----------------------------------------------------------------------------------

_NTP_EPOCH = 2208988800


def _ntp_ts(ts_ns: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    sec = (ts_ns // 10**9 + _NTP_EPOCH) & 0xFFFFFFFF
    frac = ((ts_ns % 10**9) << 32) // 10**9
    return sec, frac


def _ntp(f: _Fill, idx: NDArray[np.int64]) -> None:
    t = f.traffic
    resp = t.direction[idx] == 1
    ts = t.ts_ns[idx]
    mat = np.zeros((len(idx), 48), np.uint8)
    mat[:, 0] = np.where(resp, 0x24, 0x23)  # LI 0, version 4, mode 4 server / 3 client
    mat[:, 1] = np.where(resp, 2, 0)  # stratum
    mat[:, 2] = 6  # poll
    mat[:, 3] = 0xEC  # precision 2^-20
    _be(mat, 4, np.where(resp, 0x00000100, 0), 4)  # root delay
    _be(mat, 8, np.where(resp, 0x00000200, 0), 4)  # root dispersion
    _be(mat, 12, np.where(resp, 0xC0000201, 0), 4)  # reference id (an IPv4 address)
    sec, frac = _ntp_ts(ts)
    rsec, rfrac = _ntp_ts(ts - 64 * 10**9)
    osec, ofrac = _ntp_ts(ts - 20 * 10**6)
    for col, (s, fr) in ((16, (rsec, rfrac)), (24, (osec, ofrac)), (32, (osec, ofrac))):
        r = np.flatnonzero(resp)
        sub = np.zeros((r.size, 8), np.uint8)
        _be(sub, 0, s[r], 4)
        _be(sub, 4, fr[r], 4)
        mat[r, col : col + 8] = sub
    _be(mat, 40, sec, 4)
    _be(mat, 44, frac, 4)
    f.put(idx, 0, mat, 48)


def _dhcp(f: _Fill, idx: NDArray[np.int64]) -> None:
    t = f.traffic
    resp = t.direction[idx] == 1
    ip = t.ip[idx]
    client_ip = np.where(resp[:, None], ip[:, 16:20], ip[:, 12:16])
    second = f.flow_rank(idx) % 2 == 0  # the second exchange: REQUEST / ACK
    msg = np.where(resp, np.where(second, 5, 2), np.where(second, 3, 1))
    mat = np.zeros((len(idx), 244), np.uint8)
    mat[:, 0] = np.where(resp, 2, 1)  # BOOTREPLY / BOOTREQUEST
    mat[:, 1] = 1  # Ethernet
    mat[:, 2] = 6
    _be(mat, 4, _flow_hash(f, idx), 4)  # xid, one per flow
    mat[resp, 16:20] = client_ip[resp]  # yiaddr
    mat[:, 28:34] = mac_for_ip(client_ip)  # chaddr
    mat[:, 236:240] = (99, 130, 83, 99)  # magic cookie
    mat[:, 240] = 53  # DHCP message type
    mat[:, 241] = 1
    mat[:, 242] = msg
    mat[:, 243] = 255  # END
    f.put(idx, 0, mat, 244)


# -- HTTP, SSDP ---------------------------------------------------------------------------------

# (prefix, suffix) of each text form; the pad ('x', the base byte) goes between them. Forms are
# tried longest-minimum first; a packet shorter than every form keeps the pad only.
_HTTP_REQ = (("GET /", " HTTP/1.0\r\n\r\n"),)
_HTTP_RESP = (("HTTP/1.1 200 ", "\r\nContent-Length: 0\r\n\r\n"), ("HTTP/1.0 200 ", "\r\n\r\n"))
_SSDP_REQ = (("M-SEARCH * HTTP/1.1\r\nST:", "\r\n\r\n"), ("M-SEARCH * HTTP/1.1\r\n", "\r\n"))
_SSDP_RESP = (("HTTP/1.1 200 ", "\r\n\r\n"),)


def _text_forms(f: _Fill, idx: NDArray[np.int64], forms: tuple[tuple[str, str], ...]) -> None:
    length = f.length[idx]
    done = np.zeros(len(idx), np.bool_)
    for prefix, suffix in forms:
        p, s = _text(prefix), _text(suffix)
        rows = np.flatnonzero(~done & (length >= len(p) + len(s)))
        done[rows] = True
        sel = idx[rows]
        f.put(sel, 0, _rows(p, len(sel)), len(p))
        f.put(sel, length[rows] - len(s), _rows(s, len(sel)), len(s))


def _http(f: _Fill, idx: NDArray[np.int64]) -> None:
    resp = f.traffic.direction[idx] == 1
    _text_forms(f, idx[~resp], _HTTP_REQ)
    _text_forms(f, idx[resp], _HTTP_RESP)


def _ssdp(f: _Fill, idx: NDArray[np.int64]) -> None:
    resp = f.traffic.direction[idx] == 1
    _text_forms(f, idx[~resp], _SSDP_REQ)
    _text_forms(f, idx[resp], _SSDP_RESP)


# -- TLS ----------------------------------------------------------------------------------------

_TLS_RECORD = 5 + 16384  # header + the largest plaintext-sized record body


def _tls(f: _Fill, idx: NDArray[np.int64]) -> None:
    length = f.length[idx]
    idx, length = idx[length >= 5], length[length >= 5]
    n_rec = -(-length // _TLS_RECORD)
    last = length - (n_rec - 1) * _TLS_RECORD
    short = (n_rec > 1) & (last < 5)  # move 5 bytes from the second-last record to the last
    for k in range(int(n_rec.max()) if len(idx) else 0):  # records per segment: usually 1
        rows = np.flatnonzero(n_rec > k)
        at = k * _TLS_RECORD - np.where(short[rows] & (k == n_rec[rows] - 1), 5, 0)
        body = np.where(k < n_rec[rows] - 1, _TLS_RECORD, length[rows] - at) - 5
        body = body - np.where(short[rows] & (k == n_rec[rows] - 2), 5, 0)
        mat = np.zeros((rows.size, 5), np.uint8)
        mat[:, 0:3] = (23, 3, 3)
        _be(mat, 3, body, 2)
        f.put(idx[rows], at, mat, 5)


# -- ICMP ---------------------------------------------------------------------------------------


def _icmp_error(f: _Fill, idx: NDArray[np.int64]) -> None:
    from netdiffusion.checksum import ones_complement_rows

    t = f.traffic
    length = f.length[idx]
    ip = t.ip[idx]
    inner = np.zeros((len(idx), 28), np.uint8)
    inner[:, 0] = 0x45
    _be(inner, 2, np.maximum(length, 28), 2)  # the original datagram's total length
    _be(inner, 4, _flow_hash(f, idx) & 0xFFFF, 2)
    inner[:, 8] = np.where(t.l4[idx, 0] == 11, 1, 64)  # TTL 1 for "time exceeded"
    inner[:, 9] = PROTO_UDP
    inner[:, 12:16] = ip[:, 16:20]  # the original sender is this error's destination
    inner[:, 16:20] = ip[:, 12:16]
    csum = ones_complement_rows(inner[:, :20], np.full(len(idx), 20))
    _be(inner, 10, csum, 2)
    _be(inner, 20, 33434 + (_flow_hash(f, idx) >> 8) % 1000, 2)  # traceroute-style ports
    _be(inner, 22, 33434 + f.flow_rank(idx) % 100, 2)
    _be(inner, 24, np.maximum(length, 28) - 20, 2)  # UDP length; checksum 0 (none)
    f.put(idx, 0, inner, 28)


def _icmp_other(f: _Fill, idx: NDArray[np.int64]) -> None:
    w = int(f.length[idx].max())
    pattern = (np.arange(w) + 0x10).astype(np.uint8)
    f.put(idx, 0, _rows(pattern, len(idx)), w)


_BUILDERS: dict[int, Callable[[_Fill, NDArray[np.int64]], None]] = {
    DNS: lambda f, i: _dns(f, i, 0),
    DNS_TCP: lambda f, i: _dns(f, i, 2),
    NTP: _ntp,
    DHCP: _dhcp,
    HTTP: _http,
    SSDP: _ssdp,
    TLS: _tls,
    ICMP_ERR: _icmp_error,
    ICMP_OTHER: _icmp_other,
}


#: TCP kinds framed across the stream, and the shortest segment that holds a whole message.
#: Shorter segments are glued to the next segment of their direction (a message spans them),
#: or, at the end of a direction's stream, to the previous message.
_STREAMED = {DNS_TCP: 2 + 17, TLS: 6}


def _stream_groups(
    traffic: Traffic, idx: NDArray[np.int64], length: NDArray[np.int64], min_len: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Group the segments ``idx`` of each (flow, direction) stream into messages.

    Returns the members in stream order, each member's group, its offset in the group, and
    each group's total length.
    """
    t = traffic
    flow = t.flow[idx]
    key = np.where(flow >= 0, flow * 2 + t.direction[idx], -1 - idx)
    order = np.lexsort((idx, key))
    mem = idx[order]
    k = key[order]
    size = length[mem]
    n = len(mem)
    first = np.ones(n, np.bool_)
    first[1:] = k[1:] != k[:-1]
    last = np.ones(n, np.bool_)
    last[:-1] = first[1:]
    tiny = size < min_len
    start = first.copy()
    start[1:] |= ~tiny[:-1]
    group_first = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    tail = group_first[last & tiny]  # a stream ending in short segments: join the message before
    start[tail[~first[tail]]] = False
    gid = np.cumsum(start) - 1
    cum = np.cumsum(size) - size
    gstart = cum[start]
    return mem, gid, cum - gstart[gid], np.bincount(gid, weights=size).astype(np.int64)


def fill_payloads(traffic: Traffic) -> Traffic:
    """A copy in which every packet holds exactly ``payload_len`` bytes.

    Bytes already held are kept (extra ones beyond ``payload_len`` dropped); the rest are
    filled per protocol as the module docstring describes.
    """
    length = np.maximum(traffic.payload_len.astype(np.int64), 0)
    held = traffic.held_payload_len
    if np.array_equal(held, length):
        return replace(traffic)
    keep = np.minimum(held, length)
    kind = payload_kinds(traffic)
    start = np.zeros(traffic.n_packets + 1, np.int64)
    np.cumsum(length, out=start[1:])
    total = int(start[-1])
    need = keep < length
    # Messages spanning several TCP segments are built in a scratch area after the payloads,
    # then copied into their segments.
    calls: dict[int, NDArray[np.int64]] = {}
    b_len, b_start = length.copy(), start[:-1].copy()
    spans: list[tuple[NDArray[np.int64], NDArray[np.int64]]] = []
    scratch = total
    for k in _BUILDERS:
        idx = np.flatnonzero(need & (kind == k))
        if not idx.size:
            continue
        if k not in _STREAMED:
            calls[k] = idx
            continue
        mem, gid, off, gsize = _stream_groups(traffic, idx, length, _STREAMED[k])
        is_first = off == 0
        first_mem = np.flatnonzero(is_first)
        multi = np.bincount(gid) > 1
        calls[k] = mem[first_mem]
        mg = np.flatnonzero(multi)
        if mg.size:
            g_base = scratch + np.cumsum(gsize[mg]) - gsize[mg]
            rep = mem[first_mem[mg]]
            b_len[rep] = gsize[mg]
            b_start[rep] = g_base
            where = np.full(len(gsize), -1, np.int64)
            where[mg] = g_base
            in_multi = multi[gid]
            spans.append((mem[in_multi], where[gid[in_multi]] + off[in_multi]))
            scratch += int(gsize[mg].sum())
    out = np.repeat(_base_bytes(traffic, kind), length)
    if scratch > total:
        out = np.concatenate([out, np.zeros(scratch - total, np.uint8)])
    fill = _Fill(traffic, b_len, b_start, out)
    for k, idx in calls.items():  # one vectorized pass per kind
        _BUILDERS[k](fill, idx)
    for mem, src_at in spans:  # scratch messages into their segments
        _copy_ragged(out, src_at, out, start[mem], length[mem])
    if scratch > total:
        out = out[:total].copy()
    rows = np.flatnonzero(keep)
    if rows.size:  # the held bytes over the template
        _copy_ragged(traffic.payload, traffic.payload_off[rows], out, start[rows], keep[rows])
    return traffic.with_payload(out, start)


def _copy_ragged(
    src: NDArray[np.uint8],
    src_at: NDArray[np.int64],
    dst: NDArray[np.uint8],
    dst_at: NDArray[np.int64],
    lens: NDArray[np.int64],
) -> None:
    """``dst[dst_at[i]:dst_at[i] + lens[i]] = src[src_at[i]:...]`` for every i, vectorized."""
    total = int(lens.sum())
    if total == 0:
        return
    within = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    dst[np.repeat(dst_at, lens) + within] = src[np.repeat(src_at, lens) + within]
