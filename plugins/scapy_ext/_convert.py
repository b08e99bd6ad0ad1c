"""Scapy packets to :class:`netdiffusion.Traffic`: frame bytes and times once, then the core's
capture decoder.

Each packet is serialised once (``bytes(p)``, which Scapy answers from its cache for packets it
dissected) and its link type taken from its outermost layer (``conf.l2types``: Ether 1, IP 228,
CookedLinux 113, ...). The frames are laid end to end in one numpy buffer and handed to
:func:`netdiffusion.capture._decode.decode_records`, the decoder the pcap reader uses, so a
PacketList gives exactly the columns ``rdpcap``'s file would. Non-IPv4 or unsupported records
are counted by reason in the :class:`~netdiffusion.capture.ReadReport`, never decoded here.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import numpy as np

from netdiffusion._traffic import Traffic
from netdiffusion.capture import SKIP_REASONS, ReadReport

__all__ = ["ConversionError", "is_packets", "packets_to_traffic", "to_traffic"]

#: Link type given to packets whose outermost layer has no DLT number (LINKTYPE_USER0: the
#: decoder does not know it, so they are counted as ``unsupported_link_type``).
_NO_LINKTYPE = 147
_NS = Decimal(10**9)


class ConversionError(ValueError):
    """Objects that cannot be turned into traffic; the message is one line."""


def is_packets(obj: object) -> bool:
    """Whether ``obj`` is a Scapy packet, PacketList or a non-empty list/tuple of packets.

    Looks only at type names and modules, so Scapy is never imported by the question."""
    mod = type(obj).__module__ or ""
    if mod.startswith("scapy."):
        return True
    if isinstance(obj, (list, tuple)) and obj:
        return (type(obj[0]).__module__ or "").startswith("scapy.")
    return False


def _ns(t: Any) -> int:
    """A Scapy packet time (float, Decimal or EDecimal seconds) as int nanoseconds."""
    return int((Decimal(t) * _NS).to_integral_value())


def packets_to_traffic(
    packets: Iterable[Any], *, name: str = "<packets>"
) -> tuple[Traffic, ReadReport]:
    """Convert Scapy packets (a PacketList, a list of packets, a single packet, or what
    ``rdpcap`` returns) to a :class:`Traffic` of their IPv4 TCP/UDP/ICMP packets.

    ``name`` is the ``files`` entry every packet gets (and names the input in errors). Returns
    the traffic (no flows assembled yet) and a report of what was kept and skipped. Raises
    :class:`ConversionError` for objects that are not Scapy packets.
    """
    from scapy.config import conf
    from scapy.packet import Packet

    from netdiffusion.capture._decode import SLACK, decode_records

    if isinstance(packets, Packet):
        items: list[Any] = [packets]
    elif isinstance(packets, (str, bytes)) or not isinstance(packets, Iterable):
        raise ConversionError(f"{name}: a {type(packets).__name__} is not a list of Scapy packets")
    else:
        items = list(packets)
    layer2num = conf.l2types.layer2num
    frames: list[bytes] = []
    for i, p in enumerate(items):  # the Scapy edge: one serialisation per packet
        if not isinstance(p, Packet):
            raise ConversionError(f"{name}: item {i} is a {type(p).__name__}, not a Scapy packet")
        try:
            frames.append(bytes(p))
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConversionError(f"{name}: packet {i} cannot be built ({reason})") from None
    n = len(items)
    report = ReadReport(path=name, format="scapy", packets_seen=n)
    cap = np.fromiter(map(len, frames), np.int64, n)
    doff = np.zeros(n, np.int64)
    if n:
        np.cumsum(cap[:-1], out=doff[1:])
    buf = np.frombuffer(b"".join(frames) + bytes(SLACK), np.uint8)
    ts = np.fromiter((_ns(p.time) for p in items), np.int64, n)
    wire = np.fromiter(
        (getattr(p, "wirelen", None) or len(f) for p, f in zip(items, frames, strict=True)),
        np.int64,
        n,
    )
    lts = np.fromiter((layer2num.get(type(p), _NO_LINKTYPE) for p in items), np.int64, n)
    for lt in np.unique(lts).tolist():
        report.add_link_type(int(lt))
    lt_arg: int | np.ndarray = int(lts[0]) if n and (lts == lts[0]).all() else lts
    d = decode_records(buf, doff, cap, ts, lt_arg, wire)
    counts = np.bincount(d.net, minlength=len(SKIP_REASONS) + 1)
    report.packets_kept = int(counts[0])
    report.skipped = {r: int(c) for r, c in zip(SKIP_REASONS, counts[1:], strict=True) if c}
    k = d.n
    traffic = Traffic(
        ts_ns=np.ascontiguousarray(d.ts_ns, np.int64),
        ip=d.ip,
        l4=d.l4,
        payload_len=np.ascontiguousarray(d.payload_len, np.int32),
        payload=d.payload,
        payload_off=d.payload_off,
        mac=d.mac,
        flow=np.full(k, -1, np.int64),
        direction=np.zeros(k, np.int8),
        file=np.zeros(k, np.int32),
        files=[name],
    )
    return traffic, report


def to_traffic(packets: Iterable[Any], *, name: str = "<packets>") -> Traffic:
    """:func:`packets_to_traffic` without the report (the ``to_traffic`` hook's answer)."""
    return packets_to_traffic(packets, name=name)[0]
