"""The traffic object: packets and flows held as columns of numpy arrays.

Every stage of the pipeline (reader, flow assembly, encoder, decoder, repair engine, emitters)
consumes and produces a :class:`Traffic`. Nothing here is a Python object per packet.

Per packet (``N`` rows):

- ``ts_ns``: capture time, int64 nanoseconds since the epoch.
- ``ip``: uint8 ``[N, 60]``, the IPv4 header as on the wire, zero beyond ``IHL * 4``.
- ``l4``: uint8 ``[N, 60]``, the TCP, UDP or ICMP header as on the wire, zero beyond its length
  (TCP ``data offset * 4``, UDP 8, ICMP 8).
- ``payload_len``: int32, the L4 payload length the packet carries on the wire.
- ``payload`` / ``payload_off``: a ragged byte buffer; packet ``i`` holds
  ``payload[payload_off[i]:payload_off[i + 1]]``. It may hold fewer bytes than ``payload_len``
  (snapped captures, or generated traffic before payload filling): the rest is unknown.
- ``mac``: uint8 ``[N, 12]``, destination then source MAC as captured; all zero when unknown.
- ``flow``: int64, the packet's flow index (``-1`` before flow assembly).
- ``direction``: int8, 0 when sent by the flow's originator, 1 when sent by its responder.
- ``file``: int32, index into ``files`` of the capture the packet came from (``-1``: none).

Per flow (``F`` rows): ``flow_label`` int32, index into ``classes`` (``-1``: unlabelled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "IP_HDR_MAX",
    "L4_HDR_MAX",
    "PROTO_ICMP",
    "PROTO_TCP",
    "PROTO_UDP",
    "Traffic",
    "ragged_take",
]

IP_HDR_MAX = 60
L4_HDR_MAX = 60
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17


def ragged_take(
    buf: NDArray[np.uint8], off: NDArray[np.int64], idx: NDArray[np.int64]
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Rows ``idx`` of the ragged array ``(buf, off)``: the new buffer and offsets."""
    idx = np.asarray(idx, dtype=np.int64)
    starts = off[idx]
    lengths = off[idx + 1] - starts
    new_off = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_off[1:])
    total = int(new_off[-1])
    if total == 0:
        return np.zeros(0, dtype=np.uint8), new_off
    gather = np.repeat(starts - new_off[:-1], lengths) + np.arange(total, dtype=np.int64)
    return buf[gather], new_off


@dataclass(eq=False)
class Traffic:
    """Packets and flows as numpy columns; see the module docstring for each column."""

    ts_ns: NDArray[np.int64]
    ip: NDArray[np.uint8]
    l4: NDArray[np.uint8]
    payload_len: NDArray[np.int32]
    payload: NDArray[np.uint8]
    payload_off: NDArray[np.int64]
    mac: NDArray[np.uint8]
    flow: NDArray[np.int64]
    direction: NDArray[np.int8]
    file: NDArray[np.int32]
    flow_label: NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    classes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def empty(cls, n: int = 0) -> Traffic:
        """``n`` all-zero packets with no payload, no flows and no provenance."""
        return cls(
            ts_ns=np.zeros(n, np.int64),
            ip=np.zeros((n, IP_HDR_MAX), np.uint8),
            l4=np.zeros((n, L4_HDR_MAX), np.uint8),
            payload_len=np.zeros(n, np.int32),
            payload=np.zeros(0, np.uint8),
            payload_off=np.zeros(n + 1, np.int64),
            mac=np.zeros((n, 12), np.uint8),
            flow=np.full(n, -1, np.int64),
            direction=np.zeros(n, np.int8),
            file=np.full(n, -1, np.int32),
        )

    @classmethod
    def concat(cls, parts: Sequence[Traffic]) -> Traffic:
        """Join packet tables; flow indices, labels, classes and files are renumbered."""
        if not parts:
            return cls.empty()
        classes: list[str] = []
        files: list[str] = []
        class_index: dict[str, int] = {}
        file_index: dict[str, int] = {}
        cols: dict[str, list[np.ndarray]] = {k: [] for k in _PACKET_COLUMNS}
        payloads, offs, labels = [], [], []
        flow_base = 0
        pay_base = 0
        for part in parts:
            cmap = np.array(
                [*(_index(classes, class_index, c) for c in part.classes), -1], np.int32
            )
            fmap = np.array([*(_index(files, file_index, f) for f in part.files), -1], np.int32)
            for k in _PACKET_COLUMNS:
                cols[k].append(getattr(part, k))
            cols["flow"][-1] = np.where(part.flow >= 0, part.flow + flow_base, -1)
            cols["file"][-1] = fmap[part.file]
            labels.append(cmap[part.flow_label])
            payloads.append(part.payload)
            offs.append(part.payload_off[:-1] + pay_base)
            pay_base += int(part.payload_off[-1])
            flow_base += part.n_flows
        joined = {k: np.concatenate(v) for k, v in cols.items()}
        return cls(
            **joined,
            payload=np.concatenate(payloads),
            payload_off=np.concatenate([*offs, np.array([pay_base], np.int64)]),
            flow_label=np.concatenate(labels),
            classes=classes,
            files=files,
        )

    # -- shape ------------------------------------------------------------------------------

    @property
    def n_packets(self) -> int:
        """Number of packets."""
        return len(self.ts_ns)

    @property
    def n_flows(self) -> int:
        """Number of flows (rows of the per-flow columns)."""
        return len(self.flow_label)

    def __len__(self) -> int:
        return self.n_packets

    # -- derived header fields --------------------------------------------------------------

    @property
    def proto(self) -> NDArray[np.uint8]:
        """IPv4 protocol number of every packet."""
        return self.ip[:, 9]

    @property
    def ihl_bytes(self) -> NDArray[np.int64]:
        """IPv4 header length in bytes (IHL * 4)."""
        return (self.ip[:, 0] & 0x0F).astype(np.int64) * 4

    @property
    def l4_hdr_len(self) -> NDArray[np.int64]:
        """L4 header length in bytes: TCP data offset * 4, else 8 (UDP, ICMP), 0 for others."""
        tcp_len = (self.l4[:, 12] >> 4).astype(np.int64) * 4
        proto = self.proto
        return np.where(
            proto == PROTO_TCP,
            tcp_len,
            np.where((proto == PROTO_UDP) | (proto == PROTO_ICMP), 8, 0),
        )

    @property
    def held_payload_len(self) -> NDArray[np.int64]:
        """Payload bytes actually held per packet (<= ``payload_len``)."""
        return np.diff(self.payload_off)

    def payload_of(self, i: int) -> bytes:
        """Held payload bytes of packet ``i`` (edge use only; not for hot paths)."""
        return self.payload[self.payload_off[i] : self.payload_off[i + 1]].tobytes()

    # -- selection --------------------------------------------------------------------------

    def take(self, idx: NDArray[np.int64] | NDArray[np.bool_]) -> Traffic:
        """Packets ``idx`` (indices or a boolean mask), in that order; flows stay as they are."""
        idx = np.asarray(idx)
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        payload, off = ragged_take(self.payload, self.payload_off, idx)
        cols = {k: getattr(self, k)[idx] for k in _PACKET_COLUMNS}
        return replace(self, **cols, payload=payload, payload_off=off)

    def sorted_by_time(self) -> Traffic:
        """Packets in stable timestamp order."""
        order = np.argsort(self.ts_ns, kind="stable")
        return self.take(order)

    def with_payload(self, payload: NDArray[np.uint8], payload_off: NDArray[np.int64]) -> Traffic:
        """A copy holding a new ragged payload buffer."""
        return replace(self, payload=payload, payload_off=payload_off)

    def copy(self) -> Traffic:
        """A deep copy of every column."""
        arrays = {k: v.copy() for k, v in vars(self).items() if isinstance(v, np.ndarray)}
        return replace(self, **arrays, classes=list(self.classes), files=list(self.files))


_PACKET_COLUMNS = ("ts_ns", "ip", "l4", "payload_len", "mac", "flow", "direction", "file")


def _index(names: list[str], index: dict[str, int], name: str) -> int:
    """Index of ``name`` in ``names`` (``index`` maps each name to it), appending it when new."""
    at = index.get(name)
    if at is None:
        at = index[name] = len(names)
        names.append(name)
    return at
