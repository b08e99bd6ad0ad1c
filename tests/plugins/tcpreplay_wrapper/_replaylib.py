"""Helpers of the tcpreplay tests: generated traffic, raw frames of a pcap, namespaces."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from netdiffusion._traffic import Traffic


def require_tool(name: str) -> str:
    """Path of the executable ``name``, or skip the test with a reason."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def generate(n_flows: int = 200, seed: int = 7) -> Traffic:
    """Traffic from the bundled model, on the CPU."""
    from netdiffusion.model import load_model

    return load_model(device="cpu").generate(n_flows, seed=seed)


def pcap_frames(path: str | Path) -> list[bytes]:
    """The frames of a classic little-endian pcap, in order (test helper: small files)."""
    data = Path(path).read_bytes()
    assert data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"), "not a little-endian pcap"
    out, at = [], 24
    while at + 16 <= len(data):
        cap = int.from_bytes(data[at + 8 : at + 12], "little")
        out.append(data[at + 16 : at + 16 + cap])
        at += 16 + cap
    assert at == len(data), f"{path}: trailing bytes"
    return out


def pcap_times(path: str | Path) -> np.ndarray:
    """Record timestamps (seconds, float) of a classic little-endian microsecond pcap."""
    data = Path(path).read_bytes()
    ts, at = [], 24
    while at + 16 <= len(data):
        sec = int.from_bytes(data[at : at + 4], "little")
        usec = int.from_bytes(data[at + 4 : at + 8], "little")
        ts.append(sec + usec / 1e6)
        at += 16 + int.from_bytes(data[at + 8 : at + 12], "little")
    return np.array(ts)


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def netns_unavailable() -> str | None:
    """Why named network namespaces with veth pairs cannot be used here (None: they can)."""
    import os

    if os.geteuid() != 0:
        return "needs root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    name = f"ndprobe-{uuid.uuid4().hex[:8]}"
    made = _run("ip", "netns", "add", name)
    if made.returncode != 0:
        return f"ip netns add does not work here: {made.stderr.strip()}"
    try:
        veth = _run("ip", "-n", name, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
        if veth.returncode != 0:
            return f"veth pairs do not work here: {veth.stderr.strip()}"
    finally:
        _run("ip", "netns", "del", name)
    return None


@contextmanager
def veth_namespace(pairs: int = 1, mtu: int = 1500) -> Iterator[str]:
    """A fresh named namespace with veth pairs ``a0``-``b0``, ``a1``-``b1``, ... (up, no IPv6)."""
    name = f"ndtest-{uuid.uuid4().hex[:8]}"
    assert _run("ip", "netns", "add", name).returncode == 0
    try:
        for conf in ("all", "default"):
            _run(
                "ip", "netns", "exec", name, "sysctl", "-qw", f"net.ipv6.conf.{conf}.disable_ipv6=1"
            )
        for k in range(pairs):
            made = _run(
                "ip", "-n", name, "link", "add", f"a{k}", "type", "veth", "peer", "name", f"b{k}"
            )
            assert made.returncode == 0, made.stderr
            for dev in (f"a{k}", f"b{k}"):
                up = _run("ip", "-n", name, "link", "set", dev, "mtu", str(mtu), "up")
                assert up.returncode == 0, up.stderr
        yield name
    finally:
        _run("ip", "netns", "del", name)
