"""Hand-packed packets and capture files (pcap, pcapng) for the capture reader tests."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAC_DST = bytes.fromhex("020000000001")
MAC_SRC = bytes.fromhex("020000000002")


def ipv4(
    proto: int,
    l4: bytes,
    payload: bytes = b"",
    *,
    ident: int = 0x1234,
    options: bytes = b"",
    frag: int = 0,
    total: int | None = None,
    ihl: int | None = None,
    src: bytes = bytes([10, 0, 0, 1]),
    dst: bytes = bytes([10, 0, 0, 2]),
) -> bytes:
    """An IPv4 packet: header (with ``options``), L4 header, payload. Checksum left 0xBEEF."""
    words = ihl if ihl is not None else 5 + len(options) // 4
    length = total if total is not None else 20 + len(options) + len(l4) + len(payload)
    hdr = struct.pack(
        ">BBHHHBBH4s4s", 0x40 | words, 0, length, ident, frag, 64, proto, 0xBEEF, src, dst
    )
    return hdr + options + l4 + payload


def tcp(seq: int = 1000, *, options: bytes = b"", doff: int | None = None) -> bytes:
    """A TCP header (ports 40000 -> 443, ACK+PSH)."""
    words = doff if doff is not None else 5 + len(options) // 4
    return struct.pack(">HHIIBBHHH", 40000, 443, seq, 7, words << 4, 0x18, 512, 0, 0) + options


def udp(length: int) -> bytes:
    """A UDP header (ports 5353 -> 53) for ``length`` payload bytes."""
    return struct.pack(">HHHH", 5353, 53, 8 + length, 0)


def icmp_echo() -> bytes:
    """An ICMP echo request header."""
    return struct.pack(">BBHHH", 8, 0, 0, 0x42, 1)


def tcp_packet(payload: bytes = b"hello", seq: int = 1000, **kw: object) -> bytes:
    """A whole IPv4 TCP packet."""
    return ipv4(6, tcp(seq), payload, **kw)  # type: ignore[arg-type]


def ether(ip: bytes, ethertype: int = 0x0800, tags: tuple[int, ...] = (), pad_to: int = 0) -> bytes:
    """An Ethernet II frame; ``tags`` are TPIDs of VLAN tags (VID 5 each) before the type."""
    out = MAC_DST + MAC_SRC
    for tpid in tags:
        out += struct.pack(">HH", tpid, 5)
    out += struct.pack(">H", ethertype) + ip
    return out + bytes(max(0, pad_to - len(out)))


@dataclass
class Rec:
    """One record: data, timestamp (s, fraction in file units), original length."""

    data: bytes
    sec: int = 1_700_000_000
    frac: int = 123456
    wire: int | None = None
    caplen: int | None = None


def pcap(
    records: list[Rec],
    *,
    order: str = "<",
    nano: bool = False,
    link_type: int = 1,
    snaplen: int = 65535,
) -> bytes:
    """A classic pcap file."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, link_type)]
    for r in records:
        cap = r.caplen if r.caplen is not None else len(r.data)
        wire = r.wire if r.wire is not None else len(r.data)
        out.append(struct.pack(order + "IIII", r.sec, r.frac, cap, wire) + r.data)
    return b"".join(out)


def _pad4(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def block(order: str, btype: int, body: bytes) -> bytes:
    """A pcapng block: type, length, body (padded), length."""
    body = _pad4(body)
    length = 12 + len(body)
    return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length)


def option(order: str, code: int, value: bytes) -> bytes:
    """A pcapng option (padded)."""
    return struct.pack(order + "HH", code, len(value)) + _pad4(value)


@dataclass
class Iface:
    """A pcapng interface description."""

    link_type: int = 1
    tsresol: int | None = None
    tsoffset: int | None = None
    snaplen: int = 0


@dataclass
class Section:
    """A pcapng section: byte order, interfaces, then blocks built by the helpers below."""

    order: str = "<"
    ifaces: list[Iface] = field(default_factory=list)
    blocks: list[bytes] = field(default_factory=list)

    def epb(self, iface: int, units: int, data: bytes, wire: int | None = None) -> Section:
        body = struct.pack(
            self.order + "IIIII",
            iface,
            units >> 32,
            units & 0xFFFFFFFF,
            len(data),
            wire if wire is not None else len(data),
        )
        self.blocks.append(block(self.order, 6, body + data))
        return self

    def pb(self, iface: int, units: int, data: bytes) -> Section:
        body = struct.pack(
            self.order + "HHIIII", iface, 0, units >> 32, units & 0xFFFFFFFF, len(data), len(data)
        )
        self.blocks.append(block(self.order, 2, body + data))
        return self

    def spb(self, data: bytes) -> Section:
        self.blocks.append(block(self.order, 3, struct.pack(self.order + "I", len(data)) + data))
        return self

    def other(self, btype: int, body: bytes = b"\x00" * 8) -> Section:
        self.blocks.append(block(self.order, btype, body))
        return self

    def build(self) -> bytes:
        o = self.order
        shb = block(o, 0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1))
        out = [shb]
        for i in self.ifaces:
            opts = b""
            if i.tsresol is not None:
                opts += option(o, 9, bytes([i.tsresol]))
            if i.tsoffset is not None:
                opts += option(o, 14, struct.pack(o + "q", i.tsoffset))
            if opts:
                opts += option(o, 0, b"")
            out.append(block(o, 1, struct.pack(o + "HHI", i.link_type, 0, i.snaplen) + opts))
        return b"".join(out + self.blocks)


def pcapng(*sections: Section) -> bytes:
    """A pcapng file of one or more sections."""
    return b"".join(s.build() for s in sections)
