"""Test-only helpers for checksum and repair tests: a tiny pcap reader/writer and flow assembly.

Loops per packet are fine here (tests only). The project's own reader and writer replace these
where they exist (``netdiffusion.capture.read_capture``, ``netdiffusion.emit.pcap.write_pcap``).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from netdiffusion import Traffic


def _mini_read(path: Path) -> Traffic:
    """Ethernet (link type 1) IPv4 packets of a classic pcap file; everything else is skipped."""
    data = path.read_bytes()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    assert linktype == 1, f"{path}: link type {linktype}"
    pos = 24
    rows = []
    while pos + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(end + "IIII", data[pos : pos + 16])
        frame = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        ts = sec * 10**9 + (frac if nano else frac * 1000)
        off = 14
        eth = struct.unpack(">H", frame[12:14])[0]
        while eth == 0x8100 and len(frame) >= off + 4:
            eth = struct.unpack(">H", frame[off + 2 : off + 4])[0]
            off += 4
        if eth != 0x0800 or len(frame) < off + 20 or frame[off] >> 4 != 4:
            continue
        ihl = (frame[off] & 15) * 4
        total = struct.unpack(">H", frame[off + 2 : off + 4])[0]
        ipb = frame[off : off + ihl]
        proto = frame[off + 9]
        rest = frame[off + ihl : off + total]
        if proto == 6:
            hl = (rest[12] >> 4) * 4 if len(rest) > 12 else 0
        elif proto in (1, 17):
            hl = 8
        else:
            continue
        frag = struct.unpack(">H", ipb[6:8])[0] & 0x3FFF
        if frag or len(rest) < hl:
            continue
        rows.append((ts, ipb, rest[:hl], total - ihl - hl, rest[hl:], frame[:12]))
    n = len(rows)
    t = Traffic.empty(n)
    pays = []
    for i, (ts, ipb, l4b, plen, pay, mac) in enumerate(rows):
        t.ts_ns[i] = ts
        t.ip[i, : len(ipb)] = np.frombuffer(ipb, np.uint8)
        t.l4[i, : len(l4b)] = np.frombuffer(l4b, np.uint8)
        t.payload_len[i] = plen
        pays.append(pay[:plen])
        t.mac[i] = np.frombuffer(mac, np.uint8)
    t.payload_off[1:] = np.cumsum([len(p) for p in pays])
    t.payload = np.frombuffer(b"".join(pays), np.uint8).copy()
    return t


def read_pcap(path: Path) -> Traffic:
    """IPv4 packets of ``path``: the project's reader when present, else the mini reader."""
    try:
        from netdiffusion.capture import read_capture  # type: ignore[attr-defined]
    except ImportError:
        return _mini_read(path)
    traffic, _report = read_capture(path)
    return traffic


def assemble_flows(t: Traffic) -> Traffic:
    """Flows assembled: the project's ``netdiffusion.flows`` when present, else a mini version."""
    if t.n_packets and (t.flow >= 0).all():
        return t
    try:
        from netdiffusion.flows import assemble_flows as project_assemble
    except ImportError:
        return _mini_assemble(t)
    return project_assemble(t)


def _mini_assemble(t: Traffic) -> Traffic:
    """Bidirectional 5-tuple flows (ICMP: by addresses and echo id), in order of first packet."""
    keys: dict[tuple, int] = {}
    flow = np.zeros(t.n_packets, np.int64)
    direction = np.zeros(t.n_packets, np.int8)
    for i in range(t.n_packets):
        src = bytes(t.ip[i, 12:16])
        dst = bytes(t.ip[i, 16:20])
        proto = int(t.ip[i, 9])
        if proto == 1:
            sp = dp = bytes(t.l4[i, 4:6])
        else:
            sp, dp = bytes(t.l4[i, 0:2]), bytes(t.l4[i, 2:4])
        fwd = (proto, src, sp, dst, dp)
        rev = (proto, dst, dp, src, sp)
        if fwd in keys:
            flow[i], direction[i] = keys[fwd], 0
        elif rev in keys:
            flow[i], direction[i] = keys[rev], 1
        else:
            keys[fwd] = len(keys)
            flow[i] = keys[fwd]
    t = t.copy()
    t.flow = flow
    t.direction = direction
    t.flow_label = np.zeros(len(keys), np.int32)
    return t


def frames(t: Traffic) -> list[bytes]:
    """Each packet as an Ethernet frame (zero payload bytes where not held)."""
    out = []
    for i in range(t.n_packets):
        ihl = (t.ip[i, 0] & 15) * 4
        hl = int(t.l4_hdr_len[i])
        pay = t.payload_of(i)
        pay = pay + bytes(int(t.payload_len[i]) - len(pay))
        mac = bytes(t.mac[i]) if t.mac[i].any() else bytes.fromhex("020000000001020000000002")
        out.append(mac + b"\x08\x00" + bytes(t.ip[i, :ihl]) + bytes(t.l4[i, :hl]) + pay)
    return out


def write_pcap(t: Traffic, path: Path) -> None:
    """An Ethernet pcap of ``t``: the project's writer when present, else a mini one."""
    try:
        from netdiffusion.emit.pcap import write_pcap as project_write  # type: ignore
    except ImportError:
        project_write = None
    if project_write is not None:
        project_write(t, path)
        return
    parts = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)]
    for ts, fr in zip(t.ts_ns.tolist(), frames(t), strict=True):
        parts.append(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(fr), len(fr)) + fr)
    Path(path).write_bytes(b"".join(parts))
