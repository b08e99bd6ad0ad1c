"""Hand-built packets for tests: a readable spec per packet, turned into a Traffic."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

import numpy as np

from netdiffusion._traffic import PROTO_ICMP, PROTO_TCP, PROTO_UDP, Traffic


@dataclass
class Pkt:
    """One IPv4 packet; defaults make a plain TCP ACK."""

    ts: float
    src: str
    dst: str
    proto: int = PROTO_TCP
    sport: int = 0
    dport: int = 0
    flags: int = 0x10
    seq: int = 0
    ack: int = 0
    payload: bytes = b""
    icmp_type: int = 8
    icmp_code: int = 0
    icmp_id: int = 0
    icmp_seq: int = 0
    ttl: int = 64
    ip_id: int = 0
    options: bytes = field(default=b"")


def make_traffic(pkts: list[Pkt], file: str = "test.pcap") -> Traffic:
    """A Traffic holding ``pkts`` in order (checksums left zero)."""
    t = Traffic.empty(len(pkts))
    payloads = []
    for i, p in enumerate(pkts):
        if p.proto == PROTO_TCP:
            doff = (20 + len(p.options)) // 4
            l4 = (
                struct.pack(
                    "!HHIIBBHHH", p.sport, p.dport, p.seq, p.ack, doff << 4, p.flags, 65535, 0, 0
                )
                + p.options
            )
        elif p.proto == PROTO_UDP:
            l4 = struct.pack("!HHHH", p.sport, p.dport, 8 + len(p.payload), 0)
        else:
            assert p.proto == PROTO_ICMP
            l4 = struct.pack("!BBHHH", p.icmp_type, p.icmp_code, 0, p.icmp_id, p.icmp_seq)
        total = 20 + len(l4) + len(p.payload)
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            total,
            p.ip_id,
            0x4000,
            p.ttl,
            p.proto,
            0,
            ipaddress.IPv4Address(p.src).packed,
            ipaddress.IPv4Address(p.dst).packed,
        )
        t.ip[i, :20] = np.frombuffer(ip, np.uint8)
        t.l4[i, : len(l4)] = np.frombuffer(l4, np.uint8)
        t.ts_ns[i] = round(p.ts * 1e9)
        t.payload_len[i] = len(p.payload)
        payloads.append(p.payload)
    t.payload = np.frombuffer(b"".join(payloads), np.uint8).copy()
    t.payload_off = np.concatenate([[0], np.cumsum([len(x) for x in payloads])]).astype(np.int64)
    t.file[:] = 0
    t.files = [file]
    return t
