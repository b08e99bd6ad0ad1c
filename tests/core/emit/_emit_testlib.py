"""Test-only helpers for the emitter tests: independent readers, expected frames, tshark verdicts.

Loops per packet are fine here: these are the slow, obviously-correct references.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from netdiffusion import Traffic
from netdiffusion.emit.macs import frame_macs

MALFORMED_OR_WORSE = "_ws.malformed || _ws.expert.severity >= 6291456"  # warning and up


def require_tool(name: str) -> str:
    """Path of the executable ``name``, or skip the test with a reason."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def expected_frames(t: Traffic) -> list[bytes]:
    """Each packet's Ethernet frame, assembled one packet at a time."""
    mac, _ = frame_macs(t)
    out = []
    for i in range(t.n_packets):
        ihl = int(t.ihl_bytes[i])
        hl = int(t.l4_hdr_len[i])
        out.append(
            mac[i].tobytes()
            + b"\x08\x00"
            + t.ip[i, :ihl].tobytes()
            + t.l4[i, :hl].tobytes()
            + t.payload_of(i)
        )
    return out


@dataclass
class Record:
    ts_sec: int
    ts_frac: int
    caplen: int
    origlen: int
    data: bytes
    comment: str | None = None


def read_pcap(path: Path) -> tuple[dict[str, int], list[Record]]:
    """Header fields and records of a little-endian classic pcap."""
    data = path.read_bytes()
    magic, vmaj, vmin, _tz, _sig, snaplen, linktype = struct.unpack("<IHHiIII", data[:24])
    recs = []
    pos = 24
    while pos < len(data):
        sec, frac, incl, orig = struct.unpack("<IIII", data[pos : pos + 16])
        recs.append(Record(sec, frac, incl, orig, data[pos + 16 : pos + 16 + incl]))
        pos += 16 + incl
    assert pos == len(data)
    head = {"magic": magic, "major": vmaj, "minor": vmin, "snaplen": snaplen, "linktype": linktype}
    return head, recs


def read_pcapng(path: Path) -> tuple[dict[str, int], list[Record]]:
    """Interface fields and Enhanced Packet Blocks (with their comment) of a pcapng file."""
    data = path.read_bytes()
    pos = 0
    head: dict[str, int] = {}
    recs = []
    while pos < len(data):
        btype, blen = struct.unpack("<II", data[pos : pos + 8])
        assert blen % 4 == 0 and blen >= 12
        assert struct.unpack("<I", data[pos + blen - 4 : pos + blen])[0] == blen
        body = data[pos + 8 : pos + blen - 4]
        if btype == 1:
            head["linktype"], _, head["snaplen"] = struct.unpack("<HHI", body[:8])
            head["tsresol"] = 6
            opts = body[8:]
            while opts:
                code, olen = struct.unpack("<HH", opts[:4])
                if code == 0:
                    break
                if code == 9:
                    head["tsresol"] = opts[4]
                opts = opts[4 + olen + (-olen % 4) :]
        elif btype == 6:
            _if, hi, lo, cap, orig = struct.unpack("<IIIII", body[:20])
            frame = body[20 : 20 + cap]
            opts = body[20 + cap + (-cap % 4) :]
            comment = None
            while opts:
                code, olen = struct.unpack("<HH", opts[:4])
                if code == 0:
                    break
                if code == 1:
                    comment = opts[4 : 4 + olen].decode("utf-8")
                opts = opts[4 + olen + (-olen % 4) :]
            units = hi << 32 | lo
            recs.append(Record(units, 0, cap, orig, frame, comment))
        pos += blen
    return head, recs


def tshark_fields(path: Path, *fields: str, display_filter: str | None = None) -> list[list[str]]:
    """One row of the given fields per (matching) frame."""
    tshark = require_tool("tshark")
    cmd = [tshark, "-r", str(path), "-T", "fields"]
    if display_filter:
        cmd += ["-Y", display_filter]
    for f in fields:
        cmd += ["-e", f]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
    return [line.split("\t") for line in res.stdout.splitlines()]


def tshark_flagged(path: Path) -> list[list[str]]:
    """Frames tshark marks malformed or with an expert warning or error: number, protocol, why."""
    return tshark_fields(
        path,
        "frame.number",
        "_ws.col.Protocol",
        "_ws.expert.message",
        display_filter=MALFORMED_OR_WORSE,
    )


def tshark_expert_counts(path: Path) -> dict[str, int]:
    """Packets per verdict: malformed, error, warning (each packet counted once per verdict)."""
    out = {}
    for name, flt in (
        ("malformed", "_ws.malformed"),
        ("error", "_ws.expert.severity == 8388608"),
        ("warning", "_ws.expert.severity == 6291456"),
    ):
        out[name] = len(tshark_fields(path, "frame.number", display_filter=flt))
    return out


def be16(x: np.ndarray) -> np.ndarray:
    return x[:, 0].astype(np.int64) << 8 | x[:, 1]
