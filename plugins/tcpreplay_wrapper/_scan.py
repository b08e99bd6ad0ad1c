"""One vectorized pass over a capture: every record's lengths and time, and its IPv4 packets.

The public reader (:func:`netdiffusion.capture.read_capture`) keeps only the IPv4 TCP/UDP/ICMP
packets; the replay checks also need what tcpreplay sees for *every* record (captured and
original length, timestamp, link type). This module drives the reader's record scanner and
record decoder (``netdiffusion.capture._reader`` / ``_decode``, the same code the reader runs)
batch by batch, so each kept packet is tied to its record. Nothing here loops over packets.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import Traffic
from netdiffusion.capture import CaptureError, ReadReport
from netdiffusion.capture._decode import decode_records
from netdiffusion.capture._reader import _file_records, _open

__all__ = ["Scan", "scan_capture"]

_VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
_HEAD_BYTES = 1 << 16  # enough of a file's start to hold its header and interface blocks


@dataclass
class Scan:
    """Per record (``R``) and per kept IPv4 packet (``N``) columns of one capture."""

    path: str
    report: ReadReport
    ts_ns: NDArray[np.int64]  # [R]
    caplen: NDArray[np.int64]  # [R]
    wirelen: NDArray[np.int64]  # [R]
    link_type: NDArray[np.int64]  # [R] (-1: unknown interface)
    l2_len: NDArray[np.int64]  # [R] Ethernet header bytes incl. VLAN tags; 0 for other links
    net: NDArray[np.int64]  # [R] 0 kept, else 1 + index in SKIP_REASONS
    traffic: Traffic  # [N] the kept packets, in record order
    rec: NDArray[np.int64]  # [N] record index of each kept packet
    snaplens: list[int] = field(default_factory=list)  # per interface (pcap: one)

    @property
    def n_records(self) -> int:
        """Records in the file (what tcpreplay counts as packets)."""
        return len(self.caplen)


def _snaplens(path: str) -> list[int]:
    """The snaplen(s) declared in the file header / pcapng interface blocks (compressed too)."""
    try:
        stream, _ = _open(path, ReadReport())
    except CaptureError:
        return []
    with stream:
        try:
            head = stream.read(_HEAD_BYTES)
        except (OSError, EOFError, ValueError):
            return []
    if len(head) < 24:
        return []
    magic = head[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\x34\xcd\xb2\xa1"):
        return [struct.unpack_from("<I", head, 16)[0]]
    if magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d", b"\xa1\xb2\xcd\x34"):
        return [struct.unpack_from(">I", head, 16)[0]]
    if magic != b"\x0a\x0d\x0d\x0a":
        return []
    out: list[int] = []
    order = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    at = 0
    while at + 12 <= len(head):  # blocks before the packets: a handful
        btype, blen = struct.unpack_from(order + "II", head, at)
        if blen < 12 or blen % 4:
            break
        if btype == 1 and at + 16 <= len(head):
            out.append(struct.unpack_from(order + "I", head, at + 12)[0])
        elif btype in (2, 3, 6):
            break
        at += blen
    return out


def scan_capture(path: str | os.PathLike[str]) -> Scan:
    """Scan ``path`` (pcap or pcapng, optionally compressed); raises :class:`CaptureError`."""
    name = str(path)
    rep = ReadReport(path=name)
    ts, cap, wire, lts, l2, nets, recs, parts = [], [], [], [], [], [], [], []
    base = 0
    for buf, r in _file_records(name, rep):
        n = len(r.doff)
        lt = np.broadcast_to(np.asarray(r.lt, np.int64), (n,)).copy()
        d = decode_records(buf.arr, r.doff, r.cap, r.ts_ns, r.lt, r.wire, None, None)
        # Ethernet header length: 14, plus 4 per leading VLAN tag (up to two)
        eth = lt == 1
        l2_len = np.where(eth, 14, 0).astype(np.int64)
        for k in range(2):  # outer and inner tag
            at = r.doff + 12 + 4 * k
            tpid = (buf.arr[at].astype(np.int64) << 8) | buf.arr[at + 1]
            tagged = eth & (l2_len == 14 + 4 * k) & (r.cap >= 18 + 4 * k)
            tagged &= np.isin(tpid, _VLAN_TPIDS)
            l2_len = np.where(tagged, l2_len + 4, l2_len)
        ts.append(r.ts_ns)
        cap.append(r.cap)
        wire.append(r.wire)
        lts.append(lt)
        l2.append(l2_len)
        nets.append(np.asarray(d.net, np.int64))
        recs.append(np.asarray(d.rec, np.int64) + base)
        parts.append(
            Traffic(
                ts_ns=np.asarray(d.ts_ns, np.int64),
                ip=d.ip,
                l4=d.l4,
                payload_len=np.asarray(d.payload_len, np.int32),
                payload=d.payload,
                payload_off=np.asarray(d.payload_off, np.int64),
                mac=d.mac,
                flow=np.full(d.n, -1, np.int64),
                direction=np.zeros(d.n, np.int8),
                file=np.zeros(d.n, np.int32),
                files=[name],
            )
        )
        rep.packets_kept += d.n
        base += n

    def cat(xs: list[NDArray[np.int64]]) -> NDArray[np.int64]:
        return np.concatenate(xs).astype(np.int64) if xs else np.zeros(0, np.int64)

    traffic = Traffic.concat(parts) if len(parts) > 1 else (parts[0] if parts else Traffic.empty())
    traffic.files = [name]
    return Scan(
        path=name,
        report=rep,
        ts_ns=cat(ts),
        caplen=cat(cap),
        wirelen=cat(wire),
        link_type=cat(lts),
        l2_len=cat(l2),
        net=cat(nets),
        traffic=traffic,
        rec=cat(recs),
        snaplens=_snaplens(name),
    )
