"""tcpprep cache files, written from the roles we know, or by tcpprep itself for foreign captures.

The format (tcpprep cache version 04, as tcpreplay 4.x reads it): a 24-byte header, all integers
big-endian::

    magic "tcpprep\\0" (8) | version "04\\0\\0" (4) | packets u64 | packets per byte u16 (4)
    | comment length u16

then the comment bytes, then two bits per packet, four packets per byte, packet ``k`` (from 0)
in byte ``k // 4`` at bits ``2 * (k % 4)`` (interface: 1 = primary ``-i``, client to server;
0 = secondary ``-I``, server to client) and ``2 * (k % 4) + 1`` (1 = send, 0 = skip).

Roles (``build_cache(..., roles=...)``):

- ``"flows"``: the originator of each flow is the client (``netdiffusion.flows.assemble_flows``:
  the sender of the first SYN, else the first sender). A flow split off by an idle gap that
  shows no SYN of its own keeps the roles of the first flow of the same endpoints, so a long
  flow's quiet spell does not swap client and server. Matches generated traffic's own
  direction column exactly.
- ``"client-net"``: packets whose source address is in ``client_net`` (generate's
  ``--client-net``, default 10.0.0.0/16) are client to server.
- ``"auto"``, ``"port"``: tcpprep's own ``--auto=bridge`` / ``--port`` modes, for foreign captures.

Records that are not IPv4 TCP/UDP/ICMP (ARP, IPv6, ...) go out the primary interface.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from netdiffusion._atomic import atomic_output
from netdiffusion._traffic import PROTO_TCP, Traffic
from netdiffusion.flows import assemble_flows, flow_keys

from ._iface import ReplayError
from ._scan import scan_capture

__all__ = [
    "C2S",
    "DEFAULT_CLIENT_NET",
    "NOSEND",
    "ROLES",
    "S2C",
    "CacheReport",
    "build_cache",
    "cache_bytes",
    "originator_sent",
    "read_cache",
    "write_cache",
]

MAGIC = b"tcpprep\0"
VERSION = b"04\0\0"
_HEADER = struct.Struct(">8s4sQHH")
C2S, S2C, NOSEND = 0, 1, -1
DEFAULT_CLIENT_NET = "10.0.0.0/16"
ROLES = ("flows", "client-net", "auto", "port")
_TCPPREP_MODES = {"auto": ["--auto=bridge"], "port": ["--port"]}


@dataclass(frozen=True)
class CacheReport:
    """What :func:`build_cache` wrote."""

    path: Path
    roles: str
    packets: int
    client_to_server: int
    server_to_client: int
    not_sent: int
    command: list[str] | None = None  # the tcpprep command, when tcpprep built it


def cache_bytes(direction: NDArray[np.integer], comment: str = "") -> bytes:
    """A whole cache file for per-packet ``direction`` (C2S, S2C or NOSEND per packet)."""
    d = np.asarray(direction, np.int64)
    note = comment.encode("utf-8")
    if len(note) > 0xFFFF:
        raise ValueError("cache comment longer than 65535 bytes")
    code = np.where(d == NOSEND, 0, np.where(d == C2S, 3, 2)).astype(np.uint8)  # send|primary
    pad = (-len(code)) % 4
    quads = np.concatenate([code, np.zeros(pad, np.uint8)]).reshape(-1, 4)
    data = quads[:, 0] | (quads[:, 1] << 2) | (quads[:, 2] << 4) | (quads[:, 3] << 6)
    head = _HEADER.pack(MAGIC, VERSION, len(d), 4, len(note))
    return head + note + data.astype(np.uint8).tobytes()


def write_cache(
    direction: NDArray[np.integer], out_path: str | os.PathLike[str], comment: str = ""
) -> Path:
    """Write a tcpprep cache for per-packet ``direction`` to ``out_path`` (atomically)."""
    target = Path(out_path)
    with atomic_output(target) as fh:
        fh.write(cache_bytes(direction, comment))
    return target


def read_cache(path: str | os.PathLike[str]) -> tuple[NDArray[np.int8], str]:
    """Per-packet directions and the comment of a tcpprep cache file (ours or tcpprep's)."""
    raw = Path(path).read_bytes()
    if len(raw) < _HEADER.size:
        raise ReplayError(f"{path}: not a tcpprep cache (shorter than its 24-byte header)")
    magic, version, packets, per_byte, clen = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise ReplayError(f"{path}: not a tcpprep cache (magic {magic!r})")
    if version.rstrip(b"\0") != b"04" or per_byte != 4:
        raise ReplayError(f"{path}: unsupported tcpprep cache version {version!r}")
    body = np.frombuffer(raw, np.uint8, offset=_HEADER.size + clen)
    if len(body) * 4 < packets:
        raise ReplayError(f"{path}: cache data shorter than its {packets} packets")
    comment = raw[_HEADER.size : _HEADER.size + clen].decode("utf-8", "replace")
    bits = (body[: (packets + 3) // 4, None] >> np.array([0, 2, 4, 6], np.uint8)) & 3
    code = bits.reshape(-1)[:packets]
    out = np.where(code & 2, np.where(code & 1, C2S, S2C), NOSEND).astype(np.int8)
    return out, comment


def _in_net(addr: NDArray[np.uint8], net: str) -> NDArray[np.bool_]:
    """Rows of 4 address bytes that fall in the IPv4 network ``net``."""
    try:
        network = ipaddress.IPv4Network(net, strict=False)
    except ValueError as exc:
        raise ValueError(f"bad client network {net!r}: {exc}") from None
    a = addr.astype(np.uint32)
    value = (a[:, 0] << 24) | (a[:, 1] << 16) | (a[:, 2] << 8) | a[:, 3]
    return (value & np.uint32(int(network.netmask))) == np.uint32(int(network.network_address))


def originator_sent(traffic: Traffic) -> NDArray[np.bool_]:
    """Per packet: sent by its flow's originator (see ``"flows"`` in the module docstring)."""
    a = assemble_flows(traffic)
    keys = flow_keys(traffic)
    n_flows = int(a.flow.max()) + 1 if a.n_packets else 0
    origin = np.where(a.direction == 0, keys.src, keys.dst)  # originator endpoint per packet
    flow_origin = np.zeros(n_flows, np.int64)
    flow_origin[a.flow] = origin
    tcp = traffic.proto == PROTO_TCP
    has_syn = np.zeros(n_flows, np.bool_)
    has_syn[a.flow[tcp & ((traffic.l4[:, 13] & 0x02) != 0)]] = True
    cols = np.stack([traffic.proto.astype(np.int64), keys.lo, keys.hi, keys.extra], axis=1)
    _, kid = np.unique(cols, axis=0, return_inverse=True)
    kid = kid.reshape(-1)
    first = np.full(int(kid.max()) + 1 if len(kid) else 0, n_flows, np.int64)
    np.minimum.at(first, kid, a.flow)  # flows are numbered by start time
    inherited = flow_origin[first[kid]]
    owner = np.where(has_syn[a.flow], origin, inherited)
    return keys.src == owner


def _tcpprep(pcap: Path, out: Path, roles: str) -> list[str]:
    exe = shutil.which("tcpprep")
    if exe is None:
        raise ReplayError("tcpprep is not installed: apt-get install tcpreplay")
    cmd = [exe, *_TCPPREP_MODES[roles], "-i", str(pcap), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.is_file():
        lines = [s.strip() for s in (proc.stderr + proc.stdout).splitlines() if s.strip()]
        fatal = [s for s in lines if not s.startswith(("Fatal Error", "Warning"))]
        why = fatal[0] if fatal else (lines[0] if lines else f"exit status {proc.returncode}")
        raise ReplayError(f"{pcap}: tcpprep --{roles} failed: {why}")
    return cmd


def build_cache(
    pcap_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    roles: str = "flows",
    *,
    client_net: str = DEFAULT_CLIENT_NET,
) -> CacheReport:
    """Write a tcpprep cache for ``pcap_path`` splitting client and server traffic by ``roles``.

    ``roles`` is one of :data:`ROLES` (see the module docstring). Raises :class:`ReplayError`
    (or :class:`netdiffusion.capture.CaptureError` for an unreadable capture).
    """
    pcap, out = Path(pcap_path), Path(out_path)
    if roles not in ROLES:
        raise ValueError(f"unknown roles {roles!r}: choose one of {', '.join(ROLES)}")
    if roles in _TCPPREP_MODES:
        if not pcap.is_file():
            raise ReplayError(f"{pcap}: no such file")
        tmp = out.with_name(f".{out.name}.tcpprep")
        try:
            cmd = _tcpprep(pcap, tmp, roles)
            direction, _ = read_cache(tmp)
            os.replace(tmp, out)
            cmd = [str(out) if c == str(tmp) else c for c in cmd]
        finally:
            tmp.unlink(missing_ok=True)
        return _report(out, roles, direction, cmd)
    scan = scan_capture(pcap)
    if scan.n_records == 0:
        raise ReplayError(f"{pcap}: no packets to build a cache for")
    direction = np.full(scan.n_records, C2S, np.int8)  # records we do not decode: primary
    t = scan.traffic
    if t.n_packets:
        if roles == "flows":
            side = np.where(originator_sent(t), C2S, S2C).astype(np.int8)
        else:
            side = np.where(_in_net(t.ip[:, 12:16], client_net), C2S, S2C).astype(np.int8)
        direction[scan.rec] = side
    note = f"netdiffusion tcpreplay cache: roles={roles}"
    if roles == "client-net":
        note += f" client_net={client_net}"
    write_cache(direction, out, f"{note} pcap={pcap.name}")
    return _report(out, roles, direction, None)


def _report(
    out: Path, roles: str, direction: NDArray[np.int8], cmd: list[str] | None
) -> CacheReport:
    return CacheReport(
        path=out,
        roles=roles,
        packets=len(direction),
        client_to_server=int((direction == C2S).sum()),
        server_to_client=int((direction == S2C).sum()),
        not_sent=int((direction == NOSEND).sum()),
        command=cmd,
    )
