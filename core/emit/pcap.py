"""Write Traffic as Ethernet (link type 1) classic pcap or pcapng, vectorized over all packets.

Each frame is ``dst MAC, src MAC, ethertype 0x0800, IPv4 header (IHL*4 bytes), L4 header (TCP data
offset*4, UDP/ICMP 8, nothing for other protocols), payload``, in the order of the Traffic rows
(sort by time first if needed; the report counts timestamps that go backwards). Header bytes are
written exactly as given: the writer computes no checksums (see ``netdiffusion.checksum``).

Payloads must be complete: a packet holding fewer (or more) bytes than ``payload_len`` is an
:class:`EmitError`; call :func:`netdiffusion.emit.fill_payloads` first. MACs that are all zero are
derived from the IP addresses (:mod:`netdiffusion.emit.macs`); captured ones are kept. Frames
are never truncated: the snaplen written in the header is ``max(snaplen, longest frame)``, and an
IP datagram above ``mtu`` bytes is an error unless ``mtu=None``.

The output is built as numpy byte buffers, one chunk of packets (a few MiB of records) at a time
in one reused buffer: per-record headers, Ethernet headers and IP/L4 headers are laid out in a
``[packets, width]`` staging matrix. For pcap, payloads are copied in fixed-size blocks of bytes
(fancy indexing over runs of bytes viewed as single items), then each group of equal header
lengths is placed over them; pcapng interleaves headers, payloads and trailers with one boolean
mask per chunk. Files are written through :func:`netdiffusion._atomic.atomic_output`, so a
failure leaves no partial output. :class:`PcapWriter` streams chunks of traffic into one file
with the same guarantee (the file appears only when the ``with`` block ends without an
exception); :func:`pcap_records` builds the records in memory (in a worker process, say) and
:meth:`PcapWriter.write_records` appends them.

pcapng output has one Ethernet interface (``if_tsresol`` 9 for nanoseconds, else the default
microseconds) and one Enhanced Packet Block per packet, whose ``opt_comment`` reads
``class=<class name> flow=<flow id>`` (``unlabelled`` when the flow has no label, flow ``-1`` for
packets outside any flow), so Wireshark can filter with ``frame.comment contains "class=X"``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

from netdiffusion._atomic import atomic_output
from netdiffusion._traffic import Traffic
from netdiffusion.emit._errors import EmitError
from netdiffusion.emit.macs import frame_macs

__all__ = [
    "LINKTYPE_ETHERNET",
    "PcapRecords",
    "PcapWriter",
    "WriteReport",
    "pcap_records",
    "write_pcap",
    "write_pcapng",
]

LINKTYPE_ETHERNET = 1
DEFAULT_SNAPLEN = 262144
DEFAULT_MTU = 1500
_CHUNK = 65536  # packets per vectorized pass at most
_CHUNK_BYTES = 1 << 22  # and about this many record bytes: the pass stays in cache
_SLACK = 256  # spare bytes after a chunk's records (> any record header)
_ETH = 14
Format = Literal["pcap", "pcapng"]


@dataclass(frozen=True)
class WriteReport:
    """What a writer wrote."""

    path: Path
    format: str
    packets: int
    bytes: int
    linktype: int
    snaplen: int
    nanosecond: bool
    max_frame: int
    derived_macs: int
    out_of_order: int


# -- file headers -------------------------------------------------------------------------------


def _pcap_header(nanosecond: bool, snaplen: int) -> bytes:
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    return struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET)


_SHB_APP = b"netdiffusion"


def _pcapng_header(nanosecond: bool, snaplen: int) -> tuple[bytes, int]:
    """SHB + IDB, and the byte offset of the IDB's snaplen field."""
    app = _SHB_APP + b"\0" * (-len(_SHB_APP) % 4)
    shb_opts = struct.pack("<HH", 4, len(_SHB_APP)) + app + struct.pack("<HH", 0, 0)
    shb_len = 28 + len(shb_opts)
    shb = (
        struct.pack("<IIIHHq", 0x0A0D0D0A, shb_len, 0x1A2B3C4D, 1, 0, -1)
        + shb_opts
        + struct.pack("<I", shb_len)
    )
    idb_opts = b""
    if nanosecond:
        idb_opts += struct.pack("<HHB3x", 9, 1, 9)
    idb_opts += struct.pack("<HH", 0, 0)
    idb_len = 20 + len(idb_opts)
    idb = (
        struct.pack("<IIHHI", 1, idb_len, LINKTYPE_ETHERNET, 0, snaplen)
        + idb_opts
        + struct.pack("<I", idb_len)
    )
    return shb + idb, len(shb) + 12


# -- validation ---------------------------------------------------------------------------------


def _check(traffic: Traffic, path: Path, fmt: Format, nanosecond: bool, mtu: int | None) -> None:
    """One-line EmitError for traffic that cannot be written as asked."""
    n = traffic.n_packets
    if traffic.ip.shape != (n, 60) or traffic.l4.shape != (n, 60) or traffic.mac.shape != (n, 12):
        raise EmitError(f"{path}: header columns have the wrong shape")
    if len(traffic.payload_off) != n + 1 or (n and traffic.payload_off[-1] > len(traffic.payload)):
        raise EmitError(f"{path}: payload offsets do not match the payload buffer")
    if n == 0:
        return
    held = traffic.held_payload_len
    plen = traffic.payload_len.astype(np.int64)
    if (plen < 0).any():
        i = int(np.flatnonzero(plen < 0)[0])
        raise EmitError(f"{path}: packet {i} has a negative payload_len ({plen[i]})")
    bad = held != plen
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise EmitError(
            f"{path}: {int(bad.sum())} packet(s) hold a payload that is not payload_len bytes "
            f"(first: packet {i} holds {held[i]} of {plen[i]}); call fill_payloads first"
        )
    ts = traffic.ts_ns
    if (ts < 0).any():
        raise EmitError(f"{path}: negative timestamps cannot be written")
    if fmt == "pcap" and int(ts.max()) // 10**9 >= 2**32:
        raise EmitError(f"{path}: timestamps beyond the year 2106 do not fit a pcap header")
    if mtu is not None:
        ip_len = traffic.ihl_bytes + traffic.l4_hdr_len + plen
        over = ip_len > mtu
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raise EmitError(
                f"{path}: {int(over.sum())} packet(s) exceed the MTU of {mtu} bytes (first: packet "
                f"{i}, {ip_len[i]} bytes of IP); pass mtu=None to write them anyway"
            )


# -- pcapng comments ----------------------------------------------------------------------------


def _place(
    dst: NDArray[np.uint8],
    rows: NDArray[np.int64],
    col: NDArray[np.int64],
    src: NDArray[np.uint8],
    src_len: NDArray[np.int64],
) -> None:
    """Copy ``src[k, :src_len[k]]`` into ``dst[rows[k], col[k]:]`` for every k, vectorized."""
    total = int(src_len.sum())
    if total == 0:
        return
    k = np.repeat(np.arange(len(rows)), src_len)
    starts = np.cumsum(src_len) - src_len
    j = np.arange(total) - np.repeat(starts, src_len)
    dst[rows[k], col[k] + j] = src[k, j]


def _comment_options(
    traffic: Traffic,
) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.int64]]:
    """EPB option bytes (opt_comment + opt_endofopt) per distinct flow of the packets.

    Returns the ``[K, W]`` option matrix, each row's length (a multiple of 4) and each packet's
    row in it.
    """
    flow = np.where(traffic.flow >= 0, traffic.flow, -1)
    top = int(flow.max()) if len(flow) else -1
    if top < 4 * len(flow) + 1024:  # dense ids: a table indexed by flow id (+ a row for -1)
        ids = np.arange(-1, top + 1, dtype=np.int64)
        row = flow + 1
    else:  # sparse ids: only the flows present
        ids, row = np.unique(flow, return_inverse=True)
        row = row.reshape(-1)
    labels = np.full(len(ids), -1, np.int64)
    known = (ids >= 0) & (ids < traffic.n_flows)
    labels[known] = traffic.flow_label[ids[known]]
    names = [c.encode("utf-8") for c in traffic.classes] + [b"unlabelled"]
    bad = (labels < -1) | (labels >= len(traffic.classes))
    labels[bad] = -1
    name_len = np.array([len(b) for b in names], np.int64)
    name_tab = np.zeros((len(names), int(name_len.max())), np.uint8)
    for i, b in enumerate(names):  # one row per class name
        name_tab[i, : len(b)] = np.frombuffer(b, np.uint8)
    # Decimal digits of each flow id, most significant first, and a leading "-" for -1.
    mag = np.abs(ids)
    powers = 10 ** np.arange(18, -1, -1, dtype=np.int64)  # 19 digits hold any int64 flow id
    n_dig = 1 + (mag[:, None] >= powers[None, :-1]).sum(axis=1)
    cols = np.clip(19 - n_dig[:, None] + np.arange(19)[None, :], 0, 18)
    digits = ((mag[:, None] // powers[cols]) % 10).astype(np.uint8) + ord("0")
    sign = (ids < 0).astype(np.int64)
    num = np.zeros((len(ids), 20), np.uint8)
    num_len = n_dig + sign
    _place(num, np.arange(len(ids)), sign, digits, n_dig)
    num[sign == 1, 0] = ord("-")
    cls = np.where(labels < 0, len(names) - 1, labels)
    nl = name_len[cls]
    c_len = 6 + nl + 6 + num_len
    opt_len = 4 + c_len + (-c_len % 4) + 4
    width = int(opt_len.max())
    opts = np.zeros((len(ids), width), np.uint8)
    rows = np.arange(len(ids), dtype=np.int64)
    opts[:, 0:2] = (1, 0)  # opt_comment, little endian
    opts[:, 2] = c_len & 0xFF
    opts[:, 3] = c_len >> 8
    opts[:, 4:10] = np.frombuffer(b"class=", np.uint8)
    _place(opts, rows, np.full(len(ids), 10), name_tab[cls], nl)
    flow_tag = np.broadcast_to(np.frombuffer(b" flow=", np.uint8), (len(ids), 6))
    _place(opts, rows, 10 + nl, flow_tag, np.full(len(ids), 6))
    _place(opts, rows, 16 + nl, num, num_len)
    return opts, opt_len, row  # padding and opt_endofopt are the zeros already there


# -- record building ----------------------------------------------------------------------------


class _Builder:
    """Record bytes for slices of one Traffic, in one format."""

    def __init__(self, traffic: Traffic, fmt: Format, nanosecond: bool) -> None:
        self.t = traffic
        self.fmt = fmt
        self.nano = nanosecond
        self.mac, derived = frame_macs(traffic)
        self.derived_mask = derived
        self.derived = int(derived.sum())
        self.ihl = traffic.ihl_bytes
        self.hlen = _ETH + self.ihl + traffic.l4_hdr_len
        self.caplen = self.hlen + traffic.payload_len.astype(np.int64)
        self.pre = 16 if fmt == "pcap" else 28
        if fmt == "pcap":
            self.post = np.zeros(traffic.n_packets, np.int64)
            self.opts = np.zeros((1, 0), np.uint8)
            self.opt_len = np.zeros(1, np.int64)
            self.flow_row = np.zeros(traffic.n_packets, np.int64)
        else:
            self.opts, self.opt_len, self.flow_row = _comment_options(traffic)
            self.pad = -self.caplen % 4
            self.post = self.pad + self.opt_len[self.flow_row] + 4
        self.rec_len = self.pre + self.caplen + self.post
        self.ends = np.cumsum(self.rec_len)
        self.total = int(self.ends[-1]) if len(self.ends) else 0

    @property
    def max_frame(self) -> int:
        return int(self.caplen.max()) if len(self.caplen) else 0

    def ranges(self) -> list[tuple[int, int]]:
        """Packet ranges of at most ``_CHUNK`` packets and about ``_CHUNK_BYTES`` record bytes."""
        n = self.t.n_packets
        if n == 0:
            return []
        by_bytes = np.searchsorted(self.ends, np.arange(_CHUNK_BYTES, self.total, _CHUNK_BYTES))
        cuts = np.sort(np.concatenate([[0], by_bytes + 1, np.arange(_CHUNK, n, _CHUNK), [n]]))
        cuts = np.minimum(cuts, n)
        cuts = cuts[np.append(True, cuts[1:] != cuts[:-1])]
        return [(int(a), int(b)) for a, b in itertools.pairwise(cuts)]

    def _stage(self, s: int, e: int) -> tuple[NDArray[np.uint8], NDArray[np.int64], int]:
        """Headers of packets ``s:e`` as a ``[n, width]`` matrix: record header, Ethernet, IPv4,
        L4 in the first ``pre_len`` bytes of each row (pcapng: the trailer after ``width``)."""
        t = self.t
        n = e - s
        caplen = self.caplen[s:e]
        pre_len = self.pre + self.hlen[s:e]
        w_pre = int(pre_len.max())
        if self.fmt == "pcap":  # every byte the records use is written below
            stage = np.empty((n, w_pre), np.uint8)
        else:
            stage = np.zeros((n, w_pre + int(self.post[s:e].max())), np.uint8)
        # Record header.
        ts = t.ts_ns[s:e]
        if self.fmt == "pcap":
            rec = np.empty((n, 4), "<u4")
            div = 1 if self.nano else 1000
            rec[:, 0] = ts // 10**9
            rec[:, 1] = (ts % 10**9) // div
            rec[:, 2] = caplen
            rec[:, 3] = caplen
            stage[:, 0:16] = rec.view(np.uint8)
        else:
            rec = np.empty((n, 7), "<u4")
            units = ts if self.nano else ts // 1000
            rec[:, 0] = 6
            rec[:, 1] = self.rec_len[s:e]
            rec[:, 2] = 0
            rec[:, 3] = units >> 32
            rec[:, 4] = units & 0xFFFFFFFF
            rec[:, 5] = caplen
            rec[:, 6] = caplen
            stage[:, 0:28] = rec.view(np.uint8)
        p = self.pre
        stage[:, p : p + 12] = self.mac[s:e]
        stage[:, p + 12] = 0x08
        stage[:, p + 13] = 0x00
        ip0 = p + _ETH
        ihl = self.ihl[s:e]
        w_ip = min(60, w_pre - ip0)
        if w_ip > 0:
            stage[:, ip0 : ip0 + w_ip] = t.ip[s:e, :w_ip]
        for h in np.flatnonzero(np.bincount(ihl >> 2)) * 4:  # a handful of header lengths
            h = int(h)
            w_l4 = min(60, w_pre - ip0 - h)
            if w_l4 <= 0:
                continue
            rows = ihl == h
            if rows.all():
                stage[:, ip0 + h : ip0 + h + w_l4] = t.l4[s:e, :w_l4]
            else:
                stage[rows, ip0 + h : ip0 + h + w_l4] = t.l4[s:e][rows, :w_l4]
        return stage, pre_len, w_pre

    def build(self, s: int, e: int, out: NDArray[np.uint8]) -> None:
        """Write the records of packets ``s:e`` at the start of ``out``.

        ``out`` holds their total length plus ``_SLACK`` bytes, which may be overwritten.
        """
        if self.fmt == "pcap":
            self._build_blocks(s, e, out)
        else:
            self._build_masked(s, e, out[: int(self.ends[e - 1] - self.ends[s] + self.rec_len[s])])

    def _build_blocks(self, s: int, e: int, out: NDArray[np.uint8]) -> None:
        """pcap records: payloads first, copied in fixed-size blocks, then headers over them.

        Blocks are ``g`` bytes, ``g`` the shortest record header of the chunk; a payload's last
        block may run up to ``g - 1`` bytes past it, into the next record's header only, which
        is written afterwards, one group of equal header lengths at a time. Every copy moves
        whole rows of bytes (no mask or index per byte of the output).
        """
        t = self.t
        stage, pre_len, _ = self._stage(s, e)
        buf = t.payload if t.payload.strides[0] == 1 else np.ascontiguousarray(t.payload)
        rec_at = self.ends[s:e] - self.rec_len[s:e] - (self.ends[s] - self.rec_len[s])
        plen = t.payload_len[s:e].astype(np.int64)
        g = int(pre_len.min())
        n_blk = (plen + (g - 1)) // g
        nb = int(n_blk.sum())
        if nb:
            src0 = t.payload_off[s:e]
            dst0 = rec_at + pre_len
            first = np.cumsum(n_blk) - n_blk
            src = np.repeat(src0 - first * g, n_blk) + np.arange(0, nb * g, g, dtype=np.int64)
            dst = np.repeat(dst0 - src0, n_blk) + src
            cut = int(np.searchsorted(src, len(buf) - g, side="right")) if len(buf) >= g else 0
            if cut:  # blocks that can be read whole
                _items(out, g)[dst[:cut]] = _items(buf, g)[src[:cut]]
            if cut < nb:  # the last bytes of the buffer, byte by byte (fewer than g)
                q = np.arange(src[cut], int(t.payload_off[e]), dtype=np.int64)
                row = np.searchsorted(t.payload_off[s : e + 1], q, side="right") - 1
                out[q - src0[row] + dst0[row]] = buf[q]
        counts = np.bincount(pre_len)
        for h in np.flatnonzero(counts):  # a handful of header lengths
            h = int(h)
            rows_v = stage[:, :h].view(f"V{h}")[:, 0]  # each row's first h bytes, one item
            if counts[h] == len(pre_len):
                _items(out, h)[rec_at] = rows_v
            else:
                rows = pre_len == h
                _items(out, h)[rec_at[rows]] = rows_v[rows]

    def _build_masked(self, s: int, e: int, out: NDArray[np.uint8]) -> None:
        """pcapng records: headers and trailers staged, interleaved with payloads by a mask."""
        t = self.t
        n = e - s
        post = self.post[s:e]
        stage, pre_len, w_pre = self._stage(s, e)
        w_post = stage.shape[1] - w_pre
        cols = np.arange(w_pre + w_post, dtype=np.int16)[None, :]
        keep = cols < pre_len.astype(np.int16)[:, None]
        flow_row = self.flow_row[s:e]
        pad = self.pad[s:e]
        o_len = self.opt_len[flow_row]
        w_opt = self.opts.shape[1]
        for k in range(4):  # the four paddings after a frame
            rows = pad == k
            if rows.any():
                stage[rows, w_pre + k : w_pre + k + w_opt] = self.opts[flow_row[rows]]
        trailer = self.rec_len[s:e].astype("<u4").view(np.uint8).reshape(n, 4)
        tcol = w_pre + pad + o_len
        stage[np.arange(n)[:, None], tcol[:, None] + np.arange(4)[None, :]] = trailer
        keep |= (cols >= w_pre) & (cols < w_pre + post[:, None].astype(np.int16))
        hdr_bytes = stage[keep]
        plen = t.payload_len[s:e].astype(np.int64)
        seg = np.empty((n, 3), np.int64)
        seg[:, 0] = pre_len
        seg[:, 1] = plen
        seg[:, 2] = post
        is_hdr = np.zeros((n, 3), np.bool_)
        is_hdr[:, 0] = True
        is_hdr[:, 2] = True
        mask = np.repeat(is_hdr.ravel(), seg.ravel())
        out[mask] = hdr_bytes
        if plen.any():
            np.logical_not(mask, out=mask)
            off = t.payload_off
            out[mask] = t.payload[off[s] : off[e]]

    def records(self) -> NDArray[np.uint8]:
        """All records in one buffer."""
        out = np.empty(self.total + _SLACK, np.uint8)
        for s, e in self.ranges():  # chunks of packets, each vectorized
            self.build(s, e, out[int(self.ends[s] - self.rec_len[s]) :])
        return out[: self.total]

    def write_to(self, fh: BinaryIO) -> int:
        """Write all records to ``fh`` chunk by chunk through one reused buffer; returns bytes."""
        ranges = self.ranges()
        if not ranges:
            return 0
        at = [int(self.ends[s] - self.rec_len[s]) for s, _ in ranges] + [self.total]
        sizes = [b - a for a, b in itertools.pairwise(at)]
        out = np.empty(max(sizes) + _SLACK, np.uint8)
        for (s, e), size in zip(ranges, sizes, strict=True):
            self.build(s, e, out)
            fh.write(memoryview(out[:size]))
        return self.total


def _items(a: NDArray[np.uint8], width: int) -> NDArray[np.void]:
    """Every run of ``width`` bytes of the 1-D ``a`` as one item (item ``i`` starts at byte ``i``).

    Fancy indexing over these items copies whole runs of bytes at once.
    """
    runs = as_strided(
        a, (len(a) - width + 1, width), (a.strides[0], 1), writeable=a.flags.writeable
    )
    return runs.view(f"V{width}")[:, 0]


def _out_of_order(ts: NDArray[np.int64]) -> int:
    return int((np.diff(ts) < 0).sum()) if len(ts) > 1 else 0


def _write(
    traffic: Traffic,
    path: str | os.PathLike[str],
    fmt: Format,
    nanosecond: bool,
    snaplen: int,
    mtu: int | None,
) -> WriteReport:
    target = Path(path)
    if snaplen <= 0:
        raise EmitError(f"{target}: snaplen must be positive, not {snaplen}")
    _check(traffic, target, fmt, nanosecond, mtu)
    builder = _Builder(traffic, fmt, nanosecond)
    snap = max(snaplen, builder.max_frame)
    head = _pcap_header(nanosecond, snap) if fmt == "pcap" else _pcapng_header(nanosecond, snap)[0]
    with atomic_output(target) as fh:
        fh.write(head)
        body = builder.write_to(fh)
    return WriteReport(
        path=target,
        format=fmt,
        packets=traffic.n_packets,
        bytes=len(head) + body,
        linktype=LINKTYPE_ETHERNET,
        snaplen=snap,
        nanosecond=nanosecond,
        max_frame=builder.max_frame,
        derived_macs=builder.derived,
        out_of_order=_out_of_order(traffic.ts_ns),
    )


def write_pcap(
    traffic: Traffic,
    path: str | os.PathLike[str],
    *,
    nanosecond: bool = False,
    snaplen: int = DEFAULT_SNAPLEN,
    mtu: int | None = DEFAULT_MTU,
) -> WriteReport:
    """Write ``traffic`` as an Ethernet classic pcap (microsecond or nanosecond timestamps)."""
    return _write(traffic, path, "pcap", nanosecond, snaplen, mtu)


def write_pcapng(
    traffic: Traffic,
    path: str | os.PathLike[str],
    *,
    nanosecond: bool = False,
    snaplen: int = DEFAULT_SNAPLEN,
    mtu: int | None = DEFAULT_MTU,
) -> WriteReport:
    """Write ``traffic`` as pcapng with a ``class=... flow=...`` comment on every packet."""
    return _write(traffic, path, "pcapng", nanosecond, snaplen, mtu)


# -- records in memory --------------------------------------------------------------------------


@dataclass(frozen=True)
class PcapRecords:
    """Classic-pcap records (record header + Ethernet frame) of a run of packets, in memory.

    The records are ``data[:nbytes]``, record ``i`` ending at ``ends[i]``; ``data`` holds at least
    ``256`` spare bytes after them (scratch room for block copies). ``ts_ns`` and ``derived``
    (MACs derived from the IP addresses) are per record. Built by :func:`pcap_records` (in any
    process: the arrays pickle), appended to a file by :meth:`PcapWriter.write_records`.
    """

    data: NDArray[np.uint8]
    ends: NDArray[np.int64]
    ts_ns: NDArray[np.int64]
    derived: NDArray[np.bool_]
    nanosecond: bool = False

    @property
    def n_packets(self) -> int:
        """Number of records."""
        return len(self.ends)

    @property
    def nbytes(self) -> int:
        """Bytes of all records."""
        return int(self.ends[-1]) if len(self.ends) else 0

    @property
    def starts(self) -> NDArray[np.int64]:
        """Start offset of each record in ``data``."""
        out = np.zeros(len(self.ends), np.int64)
        out[1:] = self.ends[:-1]
        return out

    @property
    def max_frame(self) -> int:
        """Longest frame (record length less its 16-byte header)."""
        if not len(self.ends):
            return 0
        return int(np.diff(self.ends, prepend=0).max()) - 16

    def head(self, n: int) -> PcapRecords:
        """The first ``n`` records (a view)."""
        return PcapRecords(
            self.data, self.ends[:n], self.ts_ns[:n], self.derived[:n], self.nanosecond
        )

    def tail(self, n: int, copy: bool = False) -> PcapRecords:
        """The records from ``n`` on (a view, or a compact copy with its spare bytes)."""
        at = int(self.ends[n - 1]) if n > 0 else 0
        data = self.data[at:]
        if copy:
            data = np.concatenate([data[: self.nbytes - at], np.empty(_SLACK, np.uint8)])
        return PcapRecords(
            data, self.ends[n:] - at, self.ts_ns[n:], self.derived[n:], self.nanosecond
        )


def pcap_records(
    traffic: Traffic,
    *,
    nanosecond: bool = False,
    mtu: int | None = DEFAULT_MTU,
    path: str | os.PathLike[str] = "<memory>",
) -> PcapRecords:
    """The classic-pcap records of ``traffic``, validated as :func:`write_pcap` does (``path``
    only names the output in error messages)."""
    _check(traffic, Path(path), "pcap", nanosecond, mtu)
    builder = _Builder(traffic, "pcap", nanosecond)
    data = np.empty(builder.total + _SLACK, np.uint8)
    for s, e in builder.ranges():  # chunks of packets, each vectorized
        builder.build(s, e, data[int(builder.ends[s] - builder.rec_len[s]) :])
    return PcapRecords(
        data=data,
        ends=builder.ends.astype(np.int64, copy=False),
        ts_ns=traffic.ts_ns.copy(),
        derived=np.asarray(builder.derived_mask, np.bool_).copy(),
        nanosecond=nanosecond,
    )


class PcapWriter:
    """Stream chunks of traffic into one pcap (or pcapng) file, renamed into place on success.

    Use as a context manager; each :meth:`write` appends a chunk's records. The header's snaplen
    is patched on close to cover the longest frame written. On an exception inside the block (or
    from :meth:`write`) the temporary file is removed and ``path`` is left untouched.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        pcapng: bool = False,
        nanosecond: bool = False,
        snaplen: int = DEFAULT_SNAPLEN,
        mtu: int | None = DEFAULT_MTU,
    ) -> None:
        self.path = Path(path)
        if snaplen <= 0:
            raise EmitError(f"{self.path}: snaplen must be positive, not {snaplen}")
        self.fmt: Format = "pcapng" if pcapng else "pcap"
        self.nanosecond = nanosecond
        self.snaplen = snaplen
        self.mtu = mtu
        self._stack: contextlib.ExitStack | None = None
        self._fh: BinaryIO | None = None
        self._snap_at = 16
        self._packets = 0
        self._bytes = 0
        self._max_frame = 0
        self._derived = 0
        self._disorder = 0
        self._last_ts: int | None = None
        self.report: WriteReport | None = None

    def __enter__(self) -> PcapWriter:
        stack = contextlib.ExitStack()
        self._fh = stack.enter_context(atomic_output(self.path))
        self._stack = stack
        if self.fmt == "pcap":
            head = _pcap_header(self.nanosecond, self.snaplen)
        else:
            head, self._snap_at = _pcapng_header(self.nanosecond, self.snaplen)
        self._fh.write(head)
        self._bytes = len(head)
        return self

    def write(self, traffic: Traffic) -> None:
        """Append the records of ``traffic`` (validated as :func:`write_pcap` does)."""
        if self._fh is None:
            raise EmitError(f"{self.path}: PcapWriter.write outside its with block")
        _check(traffic, self.path, self.fmt, self.nanosecond, self.mtu)
        if traffic.n_packets == 0:
            return
        builder = _Builder(traffic, self.fmt, self.nanosecond)
        body = builder.write_to(self._fh)
        ts = traffic.ts_ns
        self._disorder += _out_of_order(ts)
        if self._last_ts is not None and int(ts[0]) < self._last_ts:
            self._disorder += 1
        self._last_ts = int(ts[-1])
        self._packets += traffic.n_packets
        self._bytes += body
        self._max_frame = max(self._max_frame, builder.max_frame)
        self._derived += builder.derived

    def write_records(self, records: PcapRecords) -> None:
        """Append records built by :func:`pcap_records` (classic pcap, same timestamp unit)."""
        if self._fh is None:
            raise EmitError(f"{self.path}: PcapWriter.write_records outside its with block")
        if self.fmt != "pcap" or records.nanosecond != self.nanosecond:
            raise EmitError(f"{self.path}: records do not match the file's format")
        if records.n_packets == 0:
            return
        self._fh.write(memoryview(records.data[: records.nbytes]))
        ts = records.ts_ns
        self._disorder += _out_of_order(ts)
        if self._last_ts is not None and int(ts[0]) < self._last_ts:
            self._disorder += 1
        self._last_ts = int(ts[-1])
        self._packets += records.n_packets
        self._bytes += records.nbytes
        self._max_frame = max(self._max_frame, records.max_frame)
        self._derived += int(records.derived.sum())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        stack, fh = self._stack, self._fh
        self._stack = self._fh = None
        assert stack is not None and fh is not None
        snap = max(self.snaplen, self._max_frame)
        if exc_type is None and snap != self.snaplen:
            fh.seek(self._snap_at)
            fh.write(struct.pack("<I", snap))
            fh.seek(0, os.SEEK_END)
        suppressed = stack.__exit__(exc_type, exc, tb)
        if exc_type is None:
            self.report = WriteReport(
                path=self.path,
                format=self.fmt,
                packets=self._packets,
                bytes=self._bytes,
                linktype=LINKTYPE_ETHERNET,
                snaplen=snap,
                nanosecond=self.nanosecond,
                max_frame=self._max_frame,
                derived_macs=self._derived,
                out_of_order=self._disorder,
            )
        return bool(suppressed)
