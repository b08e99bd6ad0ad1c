"""Streaming pcap / pcapng reader: block reads, a tight record-boundary scan, vectorized decode."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import stat
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

from .._traffic import Traffic
from ._decode import SLACK, Decoded, Sink, decode_records, link_type_supported, rows
from ._report import SKIP_REASONS, CaptureError, ReadReport

__all__ = ["iter_capture", "iter_captures", "read_capture", "read_captures"]

_BLOCK = 1 << 20  # bytes read at a time: the scan and decode find them still in cache
_BATCH = 16384  # records decoded at a time (at most): small batches stay in cache
_ARENA = 4 << 20  # bytes of small files gathered before decoding them together
_MAX_RECORD = 64 << 20  # larger records or blocks are treated as damage
_DIRECT_MAX = _ARENA // 4  # captures up to this size (merged reads) are read whole into the arena
_DEFAULT_MAX_CAPLEN = 262144

_PCAP_MAGICS: dict[bytes, tuple[str, int, int]] = {
    # magic bytes as stored -> (byte order, ns per fraction unit, record header length)
    b"\xd4\xc3\xb2\xa1": ("<", 1000, 16),
    b"\xa1\xb2\xc3\xd4": (">", 1000, 16),
    b"\x4d\x3c\xb2\xa1": ("<", 1, 16),
    b"\xa1\xb2\x3c\x4d": (">", 1, 16),
    b"\x34\xcd\xb2\xa1": ("<", 1000, 24),  # Kuznetsov's modified pcap
    b"\xa1\xb2\xcd\x34": (">", 1000, 24),
}
_SPB_WARNING = "simple packet blocks carry no timestamp: their time is 0"
_SHB = 0x0A0D0D0A
_IDB, _PB, _SPB, _EPB = 1, 2, 3, 6
_COMPRESSED_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
)
_UNSUPPORTED_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x28\xb5\x2f\xfd", "zstd-compressed (decompress it first)"),
    (b"\x04\x22\x4d\x18", "lz4-compressed (decompress it first)"),
    (b"PK\x03\x04", "a zip archive"),
)


class _Stop(Exception):
    """Internal: reading ends here (the report already holds the warning)."""


class _Buffer:
    """A byte buffer over a (possibly decompressing) stream, refilled block by block.

    ``arr[start:end]`` holds unread bytes; ``arr`` always has :data:`SLACK` spare bytes past
    its capacity, so fixed-width header windows never index out of range.
    """

    def __init__(
        self,
        stream: BinaryIO,
        capacity: int,
        path: str,
        rep: ReadReport,
        scratch: NDArray[np.uint8] | None = None,
    ) -> None:
        self.stream = stream
        self.path = path
        self.rep = rep
        self.capacity = max(capacity, 64)
        if scratch is not None and len(scratch) >= self.capacity + SLACK:
            self.arr = scratch[: self.capacity + SLACK]  # reused: its pages are already mapped
        else:
            self.arr = np.empty(self.capacity + SLACK, np.uint8)
        self.arr[self.capacity :] = 0
        self.mv = memoryview(self.arr)
        self.start = 0
        self.end = 0
        self.base = 0  # stream offset of arr[0]
        self.eof = False

    @classmethod
    def whole(cls, arr: NDArray[np.uint8], size: int, path: str, rep: ReadReport) -> _Buffer:
        """A buffer over a whole file already read into ``arr[:size]`` (``arr`` is used as it
        is; it must hold :data:`SLACK` more bytes, which are zeroed)."""
        buf = cls.__new__(cls)
        buf.stream, buf.path, buf.rep = None, path, rep  # type: ignore[assignment]
        buf.capacity = size
        buf.arr = arr[: size + SLACK]
        buf.arr[size:] = 0
        buf.mv = memoryview(buf.arr)
        buf.start, buf.end, buf.base, buf.eof = 0, size, 0, True
        rep.bytes_read = size
        return buf

    def pos(self, offset: int) -> int:
        """Stream offset of buffer offset ``offset``."""
        return self.base + offset

    def fill(self, need: int) -> None:
        """Keep unread bytes, make room for ``need`` bytes from ``start`` and read to capacity."""
        if self.stream is None:  # a whole file: nothing more to read
            return
        keep = self.end - self.start
        if need > self.capacity:
            capacity = max(need, min(2 * self.capacity, need + _BLOCK))
            arr = np.empty(capacity + SLACK, np.uint8)
            arr[capacity:] = 0
            arr[:keep] = self.arr[self.start : self.end]
            self.arr, self.mv, self.capacity = arr, memoryview(arr), capacity
        elif self.start:
            self.arr[:keep] = self.arr[self.start : self.end].copy()
        self.base += self.start
        self.start, self.end = 0, keep
        while self.end < self.capacity and not self.eof:
            try:
                if self.rep.compression:  # one decompression step at a time: an error in
                    piece = self.stream.read1(min(self.capacity - self.end, 1 << 20))  # type: ignore[attr-defined]
                    got = len(piece)  # the stream keeps everything read before it
                    self.mv[self.end : self.end + got] = piece
                else:
                    got = self.stream.readinto(self.mv[self.end : self.capacity])  # type: ignore[attr-defined]
            except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
                if self.base + self.end == 0:
                    raise CaptureError(self.path, f"cannot read: {_one_line(exc)}") from None
                self.rep.warnings.append(
                    f"damaged compressed data at byte {self.base + self.end}: "
                    f"{_one_line(exc)}; kept what was read before it"
                )
                got = 0
            if not got:
                self.eof = True
            else:
                self.end += got
        self.rep.bytes_read = self.base + self.end


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _open(path: str, rep: ReadReport) -> tuple[BinaryIO, int]:
    """Open ``path``, decompressing when its magic says so; returns the stream and a size hint."""
    try:
        raw = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the caller
    except IsADirectoryError:
        raise CaptureError(path, "is a directory, not a capture") from None
    except OSError as exc:
        raise CaptureError(path, f"cannot open: {exc.strerror or _one_line(exc)}") from None
    try:
        head = raw.read(8)
        raw.seek(0)
        size = os.fstat(raw.fileno()).st_size
    except OSError as exc:
        raw.close()
        raise CaptureError(path, f"cannot read: {exc.strerror or _one_line(exc)}") from None
    for magic, what in _UNSUPPORTED_MAGICS:
        if head.startswith(magic):
            raw.close()
            raise CaptureError(path, f"not a capture: {what}")
    for magic, kind in _COMPRESSED_MAGICS:
        if head.startswith(magic):
            rep.compression = kind
            rep.gzip = kind == "gzip"
            if kind == "gzip":
                return gzip.GzipFile(fileobj=raw, mode="rb"), _BLOCK  # type: ignore[return-value]
            if kind == "bz2":
                return bz2.BZ2File(raw), _BLOCK  # type: ignore[return-value]
            return lzma.LZMAFile(raw), _BLOCK  # type: ignore[return-value]
    return raw, min(size, _BLOCK)


# -- the chunker: decoded batches -> Traffic chunks of chunk_packets ----------------------------


class _Chunker:
    """Collects decoded batches in a :class:`Sink` and cuts Traffic chunks of ``size`` packets."""

    def __init__(self, size: int, files: list[str]) -> None:
        self.size = size
        self.files = files
        self.sink = self._new_sink()

    def _new_sink(self) -> Sink:
        # room for a chunk and one more batch (a batch decodes at most _BATCH records)
        return Sink(min(self.size, 1 << 18) + min(self.size, _BATCH))

    def add(self, d: Decoded) -> Iterator[Traffic]:
        """Take a batch decoded into :attr:`sink` (its ``file`` column filled)."""
        while self.sink.n >= self.size:
            yield self._emit(self.size)

    def finish(self) -> Iterator[Traffic]:
        if self.sink.n:
            yield self._emit(self.sink.n)

    def _emit(self, k: int) -> Traffic:
        """The first ``k`` rows as a chunk (views); the rest move to a fresh sink."""
        sink = self.sink
        payload, off = sink.ragged()
        cut = int(off[k])
        cols = {name: getattr(sink, name)[:k] for name in Sink._COLUMNS}
        if 4 * k <= sink.capacity:  # a small chunk: do not hold on to the whole sink
            cols = {name: col.copy() for name, col in cols.items()}
        chunk = Traffic(
            **cols,
            payload=payload[:cut],
            payload_off=off[: k + 1],
            flow=np.full(k, -1, np.int64),
            direction=np.zeros(k, np.int8),
            files=list(self.files),
        )
        self.sink = self._new_sink()
        rest = sink.n - k
        if rest:
            new = self.sink
            at = new.reserve(rest)
            for name in Sink._COLUMNS:
                getattr(new, name)[at : at + rest] = getattr(sink, name)[k : sink.n]
            new.payloads.append((payload[cut:], off[k:] - cut))
        return chunk


# -- record batches ------------------------------------------------------------------------


@dataclass
class _Records:
    doff: NDArray[np.int64]
    cap: NDArray[np.int64]
    ts_ns: NDArray[np.int64]
    lt: int | NDArray[np.int64]
    wire: NDArray[np.int64]  # original (on the wire) length


def _words(arr: NDArray[np.uint8], offs: NDArray[np.int64], nbytes: int, order: str) -> NDArray:
    """``nbytes`` bytes at each offset, as rows of 32-bit words in byte order ``order``."""
    return rows(arr, offs, nbytes).view(np.dtype(order + "u4")).astype(np.int64)


def _damaged(rep: ReadReport, pos: int, what: str) -> None:
    rep.warnings.append(
        f"{what} at byte {pos}: stopped reading; {rep.packets_seen} packets read before it"
    )


# -- classic pcap ----------------------------------------------------------------------------


def _scan_pcap(mv: memoryview, o: int, end: int, hdr: int, unpack: Callable, out: list[int]) -> int:
    """Append the offset of every complete record in ``mv[o:end]``; return where it stopped."""
    ap = out.append
    while True:
        nx = o + hdr + unpack(mv, o + 8)[0]
        if nx > end:
            return o
        ap(o)
        o = nx


def _pcap(buf: _Buffer, rep: ReadReport) -> Iterator[_Records]:
    path = buf.path
    if buf.end < 24:
        raise CaptureError(path, "damaged header: shorter than the 24-byte pcap file header")
    order, frac_ns, hdr = _PCAP_MAGICS[bytes(buf.mv[0:4])]
    rep.format = "pcap"
    major, _minor, _zone, _sigfigs, snaplen, ltfield = struct.unpack_from(
        order + "HHiIII", buf.mv, 4
    )
    if major not in (1, 2):
        raise CaptureError(path, f"damaged header: pcap version {major}")
    lt = ltfield & 0xFFFF
    rep.add_link_type(lt)
    max_cap = max(_DEFAULT_MAX_CAPLEN, min(snaplen, _MAX_RECORD))
    unpack = struct.Struct(order + "I").unpack_from
    buf.start = 24
    offs: list[int] = []
    while True:
        offs.clear()
        o = _scan_pcap(buf.mv, buf.start, buf.end, hdr, unpack, offs)
        stop = None
        if offs:
            rec = np.array(offs, np.int64)
            words = _words(buf.arr, rec, 16, order)
            cap = words[:, 2]
            bad = np.flatnonzero(cap > max_cap)
            if len(bad):
                k = int(bad[0])
                stop = (buf.pos(int(rec[k])), f"damaged record (captured length {int(cap[k])})")
                rec, words, cap = rec[:k], words[:k], cap[:k]
            ts = words[:, 0] * 1_000_000_000 + words[:, 1] * frac_ns
            for a in range(0, len(rec), _BATCH):
                b = a + _BATCH
                yield _Records(rec[a:b] + hdr, cap[a:b], ts[a:b], lt, words[a:b, 3])
        if stop is not None:
            _damaged(rep, *stop)
            return
        buf.start = o
        if o + hdr <= buf.end:
            caplen = unpack(buf.mv, o + 8)[0]
            if caplen > max_cap:
                _damaged(rep, buf.pos(o), f"damaged record (captured length {caplen})")
                return
            need = hdr + caplen
        elif o == buf.end and buf.eof:
            return
        else:
            need = hdr
        if buf.eof:
            _damaged(rep, buf.pos(o), "record cut short by the end of the file")
            return
        buf.fill(need)


# -- pcapng ----------------------------------------------------------------------------------


@dataclass
class _Iface:
    link_type: int
    snaplen: int
    tsresol: int = 6
    tsoffset: int = 0


@dataclass
class _Section:
    order: str
    ifaces: list[_Iface] = field(default_factory=list)


def _scan_epb(mv: memoryview, o: int, end: int, unpack: Callable, out: list[int]) -> int:
    """Append the offset of each complete enhanced packet block from ``o``; stop at any other."""
    ap = out.append
    while True:
        t, length = unpack(mv, o)
        nx = o + length
        if t != _EPB or nx > end or length < 32:
            return o
        ap(o)
        o = nx


def _ts_to_ns(units: NDArray[np.uint64], iface: _Iface) -> NDArray[np.int64]:
    """pcapng timestamp units -> int64 ns (if_tsresol: 10^-v, or 2^-v with the top bit set)."""
    resol = iface.tsresol
    v = resol & 0x7F
    if resol & 0x80:
        sec = units >> np.uint64(v)
        frac = units & np.uint64((1 << v) - 1)
        if v > 34:  # keep frac * 1e9 within 64 bits
            frac = frac >> np.uint64(v - 34)
            v = 34
        ns = sec * np.uint64(10**9) + ((frac * np.uint64(10**9)) >> np.uint64(v))
    elif v <= 9:
        ns = units * np.uint64(10 ** (9 - v))
    elif v <= 19:
        ns = units // np.uint64(10 ** (v - 9))
    else:
        ns = np.zeros_like(units)
    out = ns.view(np.int64)
    if iface.tsoffset:
        out = out + iface.tsoffset * 1_000_000_000
    return out


def _ng_records(
    buf: _Buffer, rep: ReadReport, sec: _Section, epb: list[int], pb: list[int], spb: list[int]
) -> tuple[_Records, int | None]:
    """Vectorized fields of pending packet blocks; also the offset of the first damaged one."""
    arr, order = buf.arr, sec.order
    parts = []
    if epb or pb:
        for offs, kind in ((epb, _EPB), (pb, _PB)):
            if not offs:
                continue
            o = np.array(offs, np.int64)
            w = _words(arr, o, 28, order)
            ifid = w[:, 2]
            if kind == _PB:
                ifid = (ifid & 0xFFFF) if order == "<" else (ifid >> 16)
            units = (w[:, 3].astype(np.uint64) << np.uint64(32)) | w[:, 4].astype(np.uint64)
            parts.append((o, w[:, 1], ifid, units, w[:, 5], 28, 32, w[:, 6]))
    if spb:
        o = np.array(spb, np.int64)
        w = _words(arr, o, 12, order)
        cap = w[:, 2]
        snap0 = sec.ifaces[0].snaplen if sec.ifaces else 0
        if snap0 > 0:
            cap = np.minimum(cap, snap0)
        no_if = np.zeros(len(o), np.int64)
        parts.append((o, w[:, 1], no_if, np.zeros(len(o), np.uint64), cap, 12, 16, w[:, 2]))
    if len(parts) == 1:  # one kind of block (enhanced packet blocks, nearly always)
        offs_all, blen, ifid, units, cap, data_at, room_at, wire = parts[0]
        doff = offs_all + data_at
        room = blen - room_at
    else:
        offs_all = np.concatenate([p[0] for p in parts])
        blen = np.concatenate([p[1] for p in parts])
        ifid = np.concatenate([p[2] for p in parts])
        units = np.concatenate([p[3] for p in parts])
        cap = np.concatenate([p[4] for p in parts])
        doff = np.concatenate([p[0] + p[5] for p in parts])
        room = np.concatenate([p[1] - p[6] for p in parts])
        wire = np.concatenate([p[7] for p in parts])
        order_idx = np.argsort(offs_all, kind="stable")
        offs_all, blen, ifid, units = (
            offs_all[order_idx],
            blen[order_idx],
            ifid[order_idx],
            units[order_idx],
        )
        cap, doff, room = cap[order_idx], doff[order_idx], room[order_idx]
    if spb and _SPB_WARNING not in rep.warnings:
        rep.warnings.append(_SPB_WARNING)
    # the trailing copy of each block length must match the leading one
    tail = _words(arr, offs_all + blen - 4, 4, order)[:, 0]
    bad = np.flatnonzero(tail != blen)
    damaged_at = None
    if len(bad):
        k = int(bad[0])
        damaged_at = int(offs_all[k])
        offs_all, ifid, units, cap, doff, room, wire = (
            x[:k] for x in (offs_all, ifid, units, cap, doff, room, wire)
        )
    over = cap > room
    if over.any():
        rep.warnings.append(
            f"{int(over.sum())} packet block(s) claim more captured bytes than they hold: clipped"
        )
        cap = np.minimum(cap, room)
    n_if = len(sec.ifaces)
    lt_if = np.array([i.link_type for i in sec.ifaces] + [-1], np.int64)
    if n_if == 1:  # every block takes the first one's link type (-1: unknown interface)
        lt = lt_if[[0 if int(ifid[0]) == 0 else 1]] if len(ifid) else lt_if[:0]
    else:
        known = (ifid >= 0) & (ifid < n_if)
        lt = lt_if[np.where(known, ifid, n_if)]
    ts = np.zeros(len(units), np.int64)
    same = all(
        i.tsresol == sec.ifaces[0].tsresol and i.tsoffset == sec.ifaces[0].tsoffset
        for i in sec.ifaces
    )
    if n_if and same:
        ts = _ts_to_ns(units, sec.ifaces[0])
    else:
        for k, iface in enumerate(sec.ifaces):
            rows = np.flatnonzero(ifid == k)
            if len(rows):
                ts[rows] = _ts_to_ns(units[rows], iface)
    if n_if == 1 or (len(lt) and (lt == lt[0]).all()):
        lt_out: int | NDArray[np.int64] = int(lt[0]) if len(lt) else 0
    else:
        lt_out = lt
    return _Records(doff, cap, ts, lt_out, wire), damaged_at


def _parse_idb(mv: memoryview, o: int, length: int, order: str) -> _Iface:
    link_type, _res, snaplen = struct.unpack_from(order + "HHI", mv, o + 8)
    iface = _Iface(link_type, snaplen)
    p, end = o + 16, o + length - 4
    opt = struct.Struct(order + "HH")
    while p + 4 <= end:
        code, olen = opt.unpack_from(mv, p)
        if code == 0:
            break
        if p + 4 + olen > end:
            break
        if code == 9 and olen >= 1:
            iface.tsresol = mv[p + 4]
        elif code == 14 and olen >= 8:
            iface.tsoffset = struct.unpack_from(order + "q", mv, p + 4)[0]
        p += 4 + ((olen + 3) & ~3)
    return iface


def _pcapng(buf: _Buffer, rep: ReadReport) -> Iterator[_Records]:
    rep.format = "pcapng"
    path = buf.path
    sec: _Section | None = None
    unpack = struct.Struct("<II").unpack_from
    epb: list[int] = []
    pb: list[int] = []
    spb: list[int] = []
    o = buf.start

    def flush() -> Iterator[_Records]:
        if not (epb or pb or spb):
            return
        assert sec is not None
        recs, damaged_at = _ng_records(buf, rep, sec, epb, pb, spb)
        epb.clear(), pb.clear(), spb.clear()
        n = len(recs.doff)
        for a in range(0, n, _BATCH):
            b = a + _BATCH
            lt = recs.lt if isinstance(recs.lt, int) else recs.lt[a:b]
            yield _Records(recs.doff[a:b], recs.cap[a:b], recs.ts_ns[a:b], lt, recs.wire[a:b])
        if damaged_at is not None:
            _damaged(rep, buf.pos(damaged_at), "damaged block (its two lengths differ)")
            raise _Stop

    try:
        while True:
            if sec is not None:
                o = _scan_epb(buf.mv, o, buf.end, unpack, epb)
            # slow path: any block other than a complete enhanced packet block
            need = 0
            if o + 12 > buf.end:
                need = 12
            else:
                t = struct.unpack_from("<I", buf.mv, o)[0]
                if t == _SHB:
                    bom = bytes(buf.mv[o + 8 : o + 12])
                    if bom == b"\x4d\x3c\x2b\x1a":
                        order = "<"
                    elif bom == b"\x1a\x2b\x3c\x4d":
                        order = ">"
                    else:
                        if sec is None:
                            raise CaptureError(path, "damaged pcapng section header")
                        yield from flush()
                        _damaged(rep, buf.pos(o), "damaged section header")
                        raise _Stop
                    length = struct.unpack_from(order + "I", buf.mv, o + 4)[0]
                    min_len = 28
                else:
                    if sec is None:
                        raise CaptureError(path, "damaged pcapng: no section header")
                    order = sec.order
                    t, length = struct.unpack_from(order + "II", buf.mv, o)
                    min_len = {_EPB: 32, _PB: 32, _SPB: 16, _IDB: 20}.get(t, 12)
                if length < min_len or length % 4 or length > _MAX_RECORD:
                    if sec is None:
                        raise CaptureError(path, "damaged pcapng section header")
                    yield from flush()
                    _damaged(rep, buf.pos(o), f"damaged block (type {t:#x}, length {length})")
                    raise _Stop
                if o + length > buf.end:
                    need = length
                elif t == _SHB:
                    yield from flush()
                    major = struct.unpack_from(order + "H", buf.mv, o + 12)[0]
                    if major != 1:
                        if sec is None:
                            raise CaptureError(path, f"unsupported pcapng version {major}")
                        yield from flush()
                        _damaged(rep, buf.pos(o), f"section of pcapng version {major}")
                        raise _Stop
                    sec = _Section(order)
                    unpack = struct.Struct(order + "II").unpack_from
                elif t == _IDB:
                    assert sec is not None
                    yield from flush()  # records before it were decoded with the old table
                    iface = _parse_idb(buf.mv, o, length, order)
                    sec.ifaces.append(iface)
                    rep.add_link_type(iface.link_type)
                elif t == _EPB:
                    epb.append(o)
                elif t == _PB:
                    pb.append(o)
                elif t == _SPB:
                    spb.append(o)
                if not need:
                    o += length
            if need:
                yield from flush()
                if buf.eof:
                    if o < buf.end:
                        yield from flush()
                        _damaged(rep, buf.pos(o), "block cut short by the end of the file")
                    return
                buf.start = o
                buf.fill(need)
                o = buf.start
    except _Stop:
        return


# -- reading engine ---------------------------------------------------------------------------


def _file_records(
    name: str, rep: ReadReport, scratch: NDArray[np.uint8] | None = None
) -> Iterator[tuple[_Buffer, _Records]]:
    """Open one capture and yield its record batches with the buffer they point into.

    ``scratch`` is a buffer to read into when the file fits; each batch must be decoded or
    copied before the next one is asked for.
    """
    rep.path = name
    stream, hint = _open(name, rep)
    with stream:
        buf = _Buffer(stream, hint, name, rep, scratch)
        buf.fill(24)
        yield from _buffer_records(buf, name, rep)


def _buffer_records(buf: _Buffer, name: str, rep: ReadReport) -> Iterator[tuple[_Buffer, _Records]]:
    """The record batches of the capture whose first bytes ``buf`` holds."""
    if buf.end == 0:
        raise CaptureError(name, "not a capture: empty file")
    head = bytes(buf.mv[0 : min(4, buf.end)])
    if head in _PCAP_MAGICS:
        records = _pcap(buf, rep)
    elif head == b"\x0a\x0d\x0d\x0a":
        records = _pcapng(buf, rep)
    else:
        raise CaptureError(name, f"not a capture: unknown magic 0x{head.hex()}")
    for r in records:
        rep.packets_seen += len(r.doff)
        yield buf, r
    if rep.link_types and not any(link_type_supported(t) for t in rep.link_types):
        rep.warnings.append(f"unsupported link type(s) {rep.link_types}: no packet decoded")


def _direct_buffer(name: str, rep: ReadReport, pending: _Pending) -> _Buffer | None:
    """A small uncompressed capture read whole, in one go, into the pending arena's free room.

    The fast path of merged reading: one open, one stat and one read per file, and its records
    are decoded where they lie (no copy). Only a regular file of at most :data:`_DIRECT_MAX`
    bytes with a plain pcap or pcapng magic is taken; for anything else (or any error) this
    returns None having changed nothing, and the file is read the general way.
    """
    if not hasattr(os, "readv"):  # (POSIX only; elsewhere every file takes the general way)
        return None
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO: not here
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        size = st.st_size
        if not stat.S_ISREG(st.st_mode) or size < 24 or size > _DIRECT_MAX:
            return None
        if not pending.fits(size + SLACK):
            return None
        slot = pending.slot()
        got = os.readv(fd, [memoryview(slot)[: size + 1]])
    except OSError:
        return None
    finally:
        os.close(fd)
    head = bytes(slot[0:4])
    if got != size or not (head in _PCAP_MAGICS or head == b"\x0a\x0d\x0d\x0a"):
        return None
    rep.path = name
    return _Buffer.whole(slot, size, name, rep)


def _count(reports: list[ReadReport], d: Decoded, files: list[int], sizes: list[int]) -> None:
    """Add a decoded batch's kept and skipped counts to the reports of its files.

    The batch holds ``sizes[k]`` records of file ``files[k]``, in that order.
    """
    nr = len(SKIP_REASONS) + 1
    if len(files) == 1:
        counts = np.bincount(d.net, minlength=nr)[None, :]
    else:
        local = np.repeat(np.arange(len(files)), sizes)
        counts = np.bincount(local * nr + d.net, minlength=len(files) * nr).reshape(-1, nr)
    for row, fi in zip(counts.tolist(), files, strict=True):
        rep = reports[fi]
        rep.packets_kept += row[0]
        for reason, c in zip(SKIP_REASONS, row[1:], strict=True):
            if c:
                rep.skipped[reason] = rep.skipped.get(reason, 0) + c


class _Pending:
    """Small record batches of several files, copied into one arena and decoded together."""

    def __init__(self) -> None:
        self.arena = np.empty(0, np.uint8)
        self.used = 0
        self.recs: list[_Records] = []
        self.files: list[int] = []
        self.n = 0

    @staticmethod
    def span(r: _Records) -> tuple[int, int]:
        """Buffer range holding the records' data."""
        lo = int(r.doff[0])
        return lo, max(lo, int(r.doff[-1] + r.cap[-1]))

    def fits(self, nbytes: int) -> bool:
        return self.used + nbytes <= _ARENA

    def slot(self) -> NDArray[np.uint8]:
        """The arena from the first free byte on (to read a small file into)."""
        if not len(self.arena):
            self.arena = np.empty(_ARENA + SLACK, np.uint8)
            self.arena[_ARENA:] = 0
        return self.arena[self.used :]

    def add_in_place(self, r: _Records, fi: int, end: int) -> None:
        """Records already in the arena (offsets from its start); its bytes up to ``end`` are
        taken."""
        self.recs.append(r)
        self.files.append(fi)
        self.n += len(r.doff)
        self.used = max(self.used, end)

    def add(self, arr: NDArray[np.uint8], r: _Records, fi: int) -> None:
        lo, hi = self.span(r)
        self.slot()
        self.arena[self.used : self.used + hi - lo] = arr[lo:hi]
        self.recs.append(_Records(r.doff + (self.used - lo), r.cap, r.ts_ns, r.lt, r.wire))
        self.files.append(fi)
        self.n += len(r.doff)
        self.used += hi - lo

    def decode(self, reports: list[ReadReport], keep_payload: int | None, sink: Sink) -> Decoded:
        recs = self.recs
        doff = np.concatenate([r.doff for r in recs])
        cap = np.concatenate([r.cap for r in recs])
        ts = np.concatenate([r.ts_ns for r in recs])
        if all(isinstance(r.lt, int) for r in recs) and len({r.lt for r in recs}) == 1:
            lt: int | NDArray[np.int64] = int(recs[0].lt)  # type: ignore[arg-type]
        else:
            lt_arr = np.concatenate(
                [
                    r.lt if isinstance(r.lt, np.ndarray) else np.full(len(r.doff), r.lt, np.int64)
                    for r in recs
                ]
            )
            lt = int(lt_arr[0]) if (lt_arr == lt_arr[0]).all() else lt_arr
        sizes = [len(r.doff) for r in recs]
        rec_file = np.repeat(np.array(self.files, np.int32), sizes)
        wire = np.concatenate([r.wire for r in recs])
        d = decode_records(
            self.arena[: self.used + SLACK], doff, cap, ts, lt, wire, keep_payload, sink
        )
        if d.n:
            d.file[:] = rec_file[d.rec]  # type: ignore[index]
        _count(reports, d, self.files, sizes)
        self.recs, self.files, self.n, self.used = [], [], 0, 0
        return d


def _engine(
    names: list[str],
    chunk_packets: int,
    reports: list[ReadReport],
    skip_errors: bool,
    payload_bytes: int | None,
) -> Iterator[Traffic]:
    """Read ``names`` in order into Traffic chunks; small batches of many files are merged."""
    if chunk_packets < 1:
        raise ValueError("chunk_packets must be at least 1")
    chunker = _Chunker(chunk_packets, names)
    pending = _Pending()
    merge = len(names) > 1
    # one read buffer for every file: batches are decoded or copied before the next read
    scratch = np.empty(_BLOCK + SLACK, np.uint8) if merge else None
    for fi, name in enumerate(names):
        rep = reports[fi]
        direct = None  # a small file read straight into the arena: records stay where they are
        if merge:
            if pending.n and not pending.fits(_DIRECT_MAX + SLACK):
                yield from chunker.add(pending.decode(reports, payload_bytes, chunker.sink))
            base = pending.used
            direct = _direct_buffer(name, rep, pending)
        try:
            if direct is not None:
                batches = _buffer_records(direct, name, rep)
            else:
                batches = _file_records(name, rep, scratch)
            for buf, r in batches:
                lo, hi = pending.span(r)
                if merge and len(r.doff) < _BATCH // 4 and hi - lo < _ARENA // 4:
                    in_place = buf is direct
                    if pending.n + len(r.doff) > _BATCH or not (in_place or pending.fits(hi - lo)):
                        yield from chunker.add(pending.decode(reports, payload_bytes, chunker.sink))
                    if in_place:
                        r.doff = r.doff + base
                        pending.add_in_place(r, fi, base + hi)
                    else:
                        pending.add(buf.arr, r, fi)
                    continue
                if pending.n:  # (a direct file's bytes stay where they are)
                    yield from chunker.add(pending.decode(reports, payload_bytes, chunker.sink))
                d = decode_records(
                    buf.arr, r.doff, r.cap, r.ts_ns, r.lt, r.wire, payload_bytes, chunker.sink
                )
                if d.n:
                    d.file[:] = fi  # type: ignore[index]
                _count(reports, d, [fi], [len(r.doff)])
                yield from chunker.add(d)
        except CaptureError as exc:
            if not skip_errors:
                raise
            rep.error = str(exc)
    if pending.n:
        yield from chunker.add(pending.decode(reports, payload_bytes, chunker.sink))
    yield from chunker.finish()


# -- public API -------------------------------------------------------------------------------


def iter_capture(
    path: str | os.PathLike[str],
    *,
    chunk_packets: int = 262144,
    report: ReadReport | None = None,
    payload_bytes: int | None = None,
) -> Iterator[Traffic]:
    """Stream the IPv4 TCP/UDP/ICMP packets of a pcap or pcapng file (optionally compressed).

    Yields :class:`Traffic` chunks of at most ``chunk_packets`` packets, reading the file block
    by block (memory stays bounded whatever the file size). ``report`` is filled in as reading
    goes: format, link types, counts per skip reason, warnings about damage. With
    ``payload_bytes``, at most that many payload bytes are kept per packet (0: none; the
    ``payload_len`` column is unchanged). Raises :class:`CaptureError` when the file is not a
    readable capture.
    """
    rep = report if report is not None else ReadReport()
    return _engine([str(path)], chunk_packets, [rep], False, payload_bytes)


def read_capture(
    path: str | os.PathLike[str], *, payload_bytes: int | None = None
) -> tuple[Traffic, ReadReport]:
    """Read a whole capture into one :class:`Traffic`; see :func:`iter_capture`."""
    rep = ReadReport()
    chunks = list(iter_capture(path, report=rep, payload_bytes=payload_bytes))
    return _concat(chunks, [str(path)]), rep


def iter_captures(
    paths: Iterable[str | os.PathLike[str]],
    *,
    chunk_packets: int = 262144,
    reports: list[ReadReport] | None = None,
    skip_errors: bool = False,
    payload_bytes: int | None = None,
) -> Iterator[Traffic]:
    """Stream many captures; small files are decoded together, which is much faster.

    Chunks list every path in ``files`` and tell packets apart by their ``file`` column.
    ``reports`` (when given, it is cleared) receives one :class:`ReadReport` per path, complete
    once the iterator is exhausted. A file that is not a readable capture raises
    :class:`CaptureError`, or with ``skip_errors`` has its one-line reason in ``error``.
    ``payload_bytes`` is as for :func:`iter_capture`.
    """
    names = [str(p) for p in paths]
    reps = reports if reports is not None else []
    reps.clear()
    reps.extend(ReadReport(path=n) for n in names)
    return _engine(names, chunk_packets, reps, skip_errors, payload_bytes)


def read_captures(
    paths: Iterable[str | os.PathLike[str]],
    *,
    skip_errors: bool = False,
    payload_bytes: int | None = None,
) -> tuple[Traffic, list[ReadReport]]:
    """Read many captures into one :class:`Traffic`; see :func:`iter_captures`."""
    names = [str(p) for p in paths]
    reports: list[ReadReport] = []
    chunks = list(
        iter_captures(names, reports=reports, skip_errors=skip_errors, payload_bytes=payload_bytes)
    )
    return _concat(chunks, names), reports


def _concat(chunks: list[Traffic], names: list[str]) -> Traffic:
    if len(chunks) == 1:
        return chunks[0]
    if not chunks:
        empty = Traffic.empty()
        empty.files = list(names)
        return empty
    joined = Traffic.concat(chunks)
    return joined
