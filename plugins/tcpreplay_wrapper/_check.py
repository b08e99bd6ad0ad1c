"""Replay checks: what tcpreplay, tcpprep and tcpcapinfo would trip over in a capture, and more.

Every check is a vectorized pass over the records of :func:`~._scan.scan_capture`; each problem
kind is reported once with its count (:class:`Problem`). Kinds, in report order:

``compressed``    the file is compressed; tcpreplay (libpcap) reads only plain pcap / pcapng
``damaged``       the reader stopped at damage (records after it are not replayed)
``empty``         no records at all
``link_type``     records whose link type is not Ethernet (tcpreplay sends frames as they are)
``snaplen``       captured length above the file's snaplen (tcpcapinfo: TOOBIG, "damaged")
``truncated``     captured short of their original length (they go out short)
``mtu``           frames whose layer-3 size exceeds the interface MTU (the kernel refuses them)
``timestamps``    timestamps going backwards (tcpcapinfo: BAD_TS)
``ip_checksum``   IPv4 header checksum wrong
``tcp_checksum`` / ``udp_checksum`` / ``icmp_checksum``  L4 checksum wrong (whole payload held)

Checksums and lengths are checked in IPv4 TCP/UDP/ICMP packets (what netdiffusion decodes);
other records (ARP, IPv6, IGMP, ...) count only for the record-level checks.
``length``        header lengths that disagree with each other or with the frame
``dns``           DNS over UDP (port 53) shorter than the 12-byte DNS header (tcpprep --auto
                  stops on it)
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from netdiffusion._traffic import PROTO_ICMP, PROTO_TCP, PROTO_UDP
from netdiffusion.capture import SKIP_REASONS
from netdiffusion.checksum import verify_checksums

from ._scan import Scan, scan_capture

__all__ = ["BLOCKING", "DEFAULT_MTU", "CheckReport", "Problem", "check_capture", "check_scan"]

DEFAULT_MTU = 1500
#: Problem kinds that make a replay fail or send something else than the file holds.
BLOCKING = frozenset({"compressed", "damaged", "empty", "link_type", "snaplen", "mtu"})

_LINK_NAMES = {
    0: "BSD loopback",
    1: "Ethernet",
    101: "raw IP",
    113: "Linux cooked (SLL)",
    228: "raw IPv4",
    229: "raw IPv6",
    276: "Linux cooked v2 (SLL2)",
    -1: "unknown interface",
}
_SKIP = {name: i + 1 for i, name in enumerate(SKIP_REASONS)}


@dataclass(frozen=True)
class Problem:
    """One kind of problem: how many records (or files) have it, and a one-line explanation."""

    kind: str
    count: int
    message: str

    @property
    def blocking(self) -> bool:
        """True when a replay would fail or send other bytes than the file holds."""
        return self.kind in BLOCKING


@dataclass
class CheckReport:
    """The result of :func:`check_capture`."""

    path: str
    packets: int
    ipv4_packets: int
    link_types: list[int]
    snaplen: int | None
    mtu: int
    mtu_source: str
    largest_l3: int
    duration_s: float
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    @property
    def blocking(self) -> list[Problem]:
        """The problems that stop a replay (see :data:`BLOCKING`)."""
        return [p for p in self.problems if p.blocking]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (problems keyed by kind)."""
        out = asdict(self)
        out["ok"] = self.ok
        out["problems"] = {
            p.kind: {"count": p.count, "message": p.message, "blocking": p.blocking}
            for p in self.problems
        }
        return out

    def lines(self) -> list[str]:
        """The human-readable report: a summary line, then one line per problem kind."""
        verdict = "OK" if self.ok else f"FAIL ({len(self.problems)} problem kinds)"
        head = (
            f"{self.path}: {self.packets} packets ({self.ipv4_packets} IPv4), "
            f"link types {self.link_types}, snaplen {self.snaplen}, "
            f"largest L3 {self.largest_l3} B vs MTU {self.mtu} ({self.mtu_source}): {verdict}"
        )
        return [head] + [f"  {p.kind:<14}{p.count:>9}  {p.message}" for p in self.problems]


def check_capture(
    path: str | os.PathLike[str], *, mtu: int | None = None, mtu_source: str | None = None
) -> CheckReport:
    """Check ``path`` for replay problems against ``mtu`` (default 1500, Ethernet's).

    Raises :class:`netdiffusion.capture.CaptureError` when the file is not a readable capture.
    """
    return check_scan(scan_capture(path), mtu=mtu, mtu_source=mtu_source)


def check_scan(scan: Scan, *, mtu: int | None = None, mtu_source: str | None = None) -> CheckReport:
    """:func:`check_capture` on an existing :class:`~._scan.Scan`."""
    if mtu is None:
        mtu, source = DEFAULT_MTU, mtu_source or "Ethernet default"
    else:
        source = mtu_source or "given"
    if mtu < 68:
        raise ValueError(f"MTU {mtu} is below IPv4's minimum of 68")
    rep = scan.report
    probs: list[Problem] = []
    n = scan.n_records
    t = scan.traffic

    def add(kind: str, count: int, message: str) -> None:
        if count:
            probs.append(Problem(kind, int(count), message))

    if rep.compression:
        add(
            "compressed",
            1,
            f"{rep.compression}-compressed: tcpreplay reads only uncompressed pcap/pcapng "
            "(decompress it first)",
        )
    damage = [w for w in rep.warnings if "stopped" in w or "damaged" in w or "clipped" in w]
    add("damaged", len(damage), damage[0] if damage else "")
    if n == 0:
        add("empty", 1, "no packets: nothing to replay")

    # -- link type ----------------------------------------------------------------------------
    lt = scan.link_type
    other = lt != 1
    if other.any():
        kinds = sorted(set(np.unique(lt[other]).tolist()))
        names = ", ".join(f"{k} ({_LINK_NAMES.get(k, 'other')})" for k in kinds)
        add(
            "link_type",
            int(other.sum()),
            f"link type {names}, not Ethernet (1): tcpreplay sends frames as they are; "
            "convert with tcprewrite --dlt=enet",
        )

    # -- lengths against the snaplen ----------------------------------------------------------
    snap = max(scan.snaplens) if scan.snaplens else None
    if snap:  # 0 in pcapng means no limit
        over = scan.caplen > snap
        add(
            "snaplen",
            int(over.sum()),
            f"captured length above the snaplen {snap} (largest "
            f"{int(scan.caplen.max()) if n else 0}): tcpcapinfo calls the file damaged",
        )
    short = scan.caplen < scan.wirelen
    if short.any():
        add(
            "truncated",
            int(short.sum()),
            f"captured short of their length (up to {int((scan.wirelen - scan.caplen).max())} "
            f"bytes missing, snaplen {snap}): tcpreplay sends them short",
        )

    # -- MTU: what tcpreplay sends is the captured bytes --------------------------------------
    l3 = np.where(scan.l2_len > 0, scan.caplen - scan.l2_len, scan.caplen)
    largest = int(l3.max()) if n else 0
    over_mtu = l3 > mtu
    add(
        "mtu",
        int(over_mtu.sum()),
        f"frames above MTU {mtu} ({source}): largest layer-3 size {largest} bytes; the kernel "
        "refuses them (raise the MTU, or tcprewrite --mtu-trunc)",
    )

    # -- time ---------------------------------------------------------------------------------
    back = int((np.diff(scan.ts_ns) < 0).sum()) if n > 1 else 0
    add("timestamps", back, "timestamps going backwards (tcpcapinfo: BAD_TS); sort by time")

    # -- checksums ----------------------------------------------------------------------------
    proto = t.proto
    if t.n_packets:
        verdict, _ = verify_checksums(t)
        add("ip_checksum", int((~verdict["ip"]).sum()), "IPv4 header checksum wrong")
        bad_l4 = ~verdict["l4"]
        for p, name in ((PROTO_TCP, "tcp"), (PROTO_UDP, "udp"), (PROTO_ICMP, "icmp")):
            add(
                f"{name}_checksum",
                int((bad_l4 & (proto == p)).sum()),
                f"{name.upper()} checksum wrong (tcprewrite --fixcsum or netdiffusion repair)",
            )

    # -- lengths ------------------------------------------------------------------------------
    bad_hdr = int((scan.net == _SKIP["bad_header"]).sum())
    whole = scan.caplen == scan.wirelen
    cut = int(((scan.net == _SKIP["truncated"]) & whole).sum())  # frame shorter than headers
    ip_over = 0
    udp_bad = 0
    if t.n_packets:
        rec_whole = whole[scan.rec]
        ip_over = int(((t.held_payload_len < t.payload_len) & rec_whole).sum())
        ip_payload = t.l4_hdr_len + t.payload_len.astype(np.int64)
        udp_len = (t.l4[:, 4].astype(np.int64) << 8) | t.l4[:, 5]
        udp_bad = int(((proto == PROTO_UDP) & (udp_len != ip_payload)).sum())
    parts = [
        (bad_hdr, "bad IPv4/TCP header lengths"),
        (cut, "frames shorter than their headers"),
        (ip_over, "IPv4 total length beyond the frame"),
        (udp_bad, "UDP length not the IP payload length"),
    ]
    add(
        "length",
        bad_hdr + cut + ip_over + udp_bad,
        "; ".join(f"{c} {what}" for c, what in parts if c),
    )

    # -- DNS shorter than its header ----------------------------------------------------------
    if t.n_packets:
        sport = (t.l4[:, 0].astype(np.int64) << 8) | t.l4[:, 1]
        dport = (t.l4[:, 2].astype(np.int64) << 8) | t.l4[:, 3]
        dns = (proto == PROTO_UDP) & ((sport == 53) | (dport == 53)) & (t.payload_len < 12)
        add(
            "dns",
            int(dns.sum()),
            "UDP port 53 with less than a 12-byte DNS header: tcpprep --auto stops on it, "
            "tshark calls it malformed",
        )

    ts = scan.ts_ns
    return CheckReport(
        path=scan.path,
        packets=n,
        ipv4_packets=t.n_packets,
        link_types=sorted(set(rep.link_types)),
        snaplen=snap,
        mtu=int(mtu),
        mtu_source=source,
        largest_l3=largest,
        duration_s=float(ts.max() - ts.min()) / 1e9 if n else 0.0,
        problems=probs,
    )
