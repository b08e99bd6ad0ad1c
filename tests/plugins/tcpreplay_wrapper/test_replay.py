"""Replay onto real interfaces (root + network namespaces) and into files (no root)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from netdiffusion.cli import create_cli
from netdiffusion.emit import write_pcap
from netdiffusion_tcpreplay import (
    Capture,
    ReplayError,
    parse_stats,
    read_cache,
    replay,
    replay_to_file,
)
from netdiffusion_tcpreplay._replay import _fatal
from tests.plugins.tcpreplay_wrapper._replaylib import (
    netns_unavailable,
    pcap_frames,
    require_tool,
    veth_namespace,
)

_NETNS_WHY = netns_unavailable()
needs_netns = pytest.mark.skipif(_NETNS_WHY is not None, reason=str(_NETNS_WHY))


def _cli_in(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``netdiffusion ARGS`` run inside the namespace ``ns``."""
    cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "netdiffusion", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@needs_netns
def test_veth_complete_and_byte_identical(generated, tmp_path: Path) -> None:
    """Generated traffic replayed onto a0 arrives on b0 complete and byte for byte."""
    require_tool("tcpreplay")
    require_tool("tcpdump")
    want = pcap_frames(generated.pcap)
    with veth_namespace(1) as ns:
        with Capture("b0", tmp_path / "b0.pcap", netns=ns, tool="tcpdump"):
            res = _cli_in(ns, "replay", str(generated.pcap), "-i", "a0", "--topspeed", "--json")
        assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["packets"] == result["successful"] == len(want)
    assert result["failed"] == 0
    got = pcap_frames(tmp_path / "b0.pcap")
    assert len(got) == len(want)
    assert got == want


@needs_netns
def test_dual_interface_split_by_cache(generated, tmp_path: Path) -> None:
    """-i a0 -I a1: client-to-server packets leave a0, server-to-client a1, as the cache says."""
    require_tool("tcpreplay")
    require_tool("tcpdump")
    frames = pcap_frames(generated.pcap)
    c2s = generated.traffic.direction == 0  # the generator's own roles
    with veth_namespace(2) as ns:
        with (
            Capture("b0", tmp_path / "b0.pcap", netns=ns, tool="tcpdump"),
            Capture("b1", tmp_path / "b1.pcap", netns=ns, tool="tcpdump"),
        ):
            res = _cli_in(
                ns, "replay", str(generated.pcap), "-i", "a0", "-I", "a1", "--pps", "20000",
                "--json",
            )  # fmt: skip
        assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["cache"]["roles"] == "flows"
    assert result["cache"]["client_to_server"] == int(c2s.sum())
    assert result["successful"] == len(frames)
    assert pcap_frames(tmp_path / "b0.pcap") == [f for f, c in zip(frames, c2s, strict=True) if c]
    assert pcap_frames(tmp_path / "b1.pcap") == [
        f for f, c in zip(frames, c2s, strict=True) if not c
    ]


@needs_netns
def test_mtu_too_small_and_unknown_interface(generated) -> None:
    with veth_namespace(1, mtu=200) as ns:
        res = _cli_in(ns, "replay", str(generated.pcap), "-i", "a0", "--topspeed")
        assert res.returncode == 1
        assert res.stderr.count("\n") == 1 and "MTU too small" in res.stderr
        assert "MTU 200" in res.stderr and "Traceback" not in res.stderr
        res = _cli_in(ns, "replay", str(generated.pcap), "-i", "eth9", "--topspeed")
        assert res.returncode == 1 and "unknown interface 'eth9'" in res.stderr


def _userns_unavailable() -> str | None:
    unshare = shutil.which("unshare")
    if unshare is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(
        [unshare, "--user", "--map-root-user", "--net", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"user namespaces are not available: {probe.stderr.strip()}"
    return None


@pytest.mark.skipif(_userns_unavailable() is not None, reason=str(_userns_unavailable()))
@pytest.mark.parametrize("kind", ["tcp", "udp", "icmp"])
def test_file_output_without_root(generated, tmp_path: Path, kind: str) -> None:
    """Each kind of traffic the bundled model generates, through tcpreplay into a file, with
    no root: tcpreplay -w where it exists, else an unprivileged user + network namespace."""
    require_tool("tcpreplay")
    t = generated.traffic
    proto = {"tcp": 6, "udp": 17, "icmp": 1}[kind]
    part = t.take(t.proto == proto)
    assert part.n_packets > 0, f"the bundled model generated no {kind}"
    src = tmp_path / f"{kind}.pcap"
    write_pcap(part, src)
    out = tmp_path / f"{kind}-sent.pcap"
    res = replay_to_file(src, out, topspeed=True, userns=True, timeout=60)
    assert res.method in ("tcpreplay -w", "sandbox")
    assert res.packets == res.successful == part.n_packets and res.failed == 0
    assert pcap_frames(out) == pcap_frames(src)


def test_errors_are_one_line(generated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="one rate option"):
        replay(generated.pcap, "lo", pps=10, topspeed=True)
    with pytest.raises(ValueError, match="positive"):
        replay(generated.pcap, "lo", pps=0)
    with pytest.raises(ReplayError, match="unknown interface 'nope0'"):
        replay(generated.pcap, "nope0", dry_run=True)
    monkeypatch.setenv("PATH", str(tmp_path))  # no tcpreplay on it
    with pytest.raises(ReplayError, match="apt-get install tcpreplay"):
        replay(generated.pcap, "lo", dry_run=True)
    res = CliRunner().invoke(create_cli(), ["replay", str(generated.pcap), "-i", "lo"])
    assert res.exit_code == 1
    assert res.output == "Error: tcpreplay is not installed: apt-get install tcpreplay\n"


def test_no_permission_message(generated, tmp_path: Path) -> None:
    """tcpreplay's own refusal as an unprivileged user becomes one clear line."""
    tcpreplay = require_tool("tcpreplay")
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0:
        if setpriv is None:
            pytest.skip("setpriv is not installed (needed to drop root)")
        src = tmp_path / "perm.pcap"
        shutil.copy(generated.pcap, src)
        tmp_path.chmod(0o755)
        src.chmod(0o644)
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", tcpreplay]
    else:
        src, cmd = generated.pcap, [tcpreplay]
    proc = subprocess.run([*cmd, "-i", "lo", str(src)], capture_output=True, text=True)
    if proc.returncode == 0:
        pytest.skip("this tcpreplay may send without root (capabilities set)")
    err = _fatal(proc.stderr, str(src), ["lo"], proc.returncode)
    assert str(err).startswith("no permission to send on lo: run as root")


def test_parse_stats_dual() -> None:
    text = """Actual: 1138 packets (162536 bytes) sent in 0.227401 seconds
Rated: 714754.9 Bps, 5.71 Mbps, 5004.37 pps
Flows: 373 flows, 1640.27 fps, 1138 unique flow packets, 0 unique non-flow packets
Statistics for network device: a0
\tSuccessful packets:        659
\tFailed packets:            1
\tTruncated packets:         0
\tRetried packets (ENOBUFS): 0
\tRetried packets (EAGAIN):  0
Statistics for network device: a1
\tSuccessful packets:        478
\tFailed packets:            0
\tTruncated packets:         0
\tRetried packets (ENOBUFS): 2
\tRetried packets (EAGAIN):  0
"""
    s = parse_stats(text)
    assert (s["packets"], s["bytes"], s["flows"]) == (1138, 162536, 373)
    assert (s["seconds"], s["bytes_per_s"], s["mbps"], s["pps"]) == (
        0.227401,
        714754.9,
        5.71,
        5004.37,
    )
    assert (s["successful"], s["failed"], s["retried_enobufs"]) == (1137, 1, 2)


def test_dry_run_dual_builds_the_cache(generated, tmp_path: Path) -> None:
    """--dry-run with two interfaces: the cache is built (and removed), the command shown."""
    require_tool("tcpreplay")
    cache = tmp_path / "mine.cache"
    from netdiffusion_tcpreplay import build_cache

    build_cache(generated.pcap, cache, "client-net")
    # the two interfaces of this host with the largest MTUs (the preflight refuses frames above)
    mtu = {p.name: int((p / "mtu").read_text()) for p in Path("/sys/class/net").iterdir()}
    ifaces = sorted(mtu, key=lambda name: (-mtu[name], name))[:2]
    ip_len = (generated.traffic.ip[:, 2].astype(int) << 8) | generated.traffic.ip[:, 3]
    if len(ifaces) < 2 or mtu[ifaces[1]] < ip_len.max():
        pytest.skip(f"needs two interfaces with an MTU of at least {ip_len.max()}: {mtu}")
    res = replay(generated.pcap, ifaces[0], ifaces[1], cache=cache, dry_run=True, pps=100)
    assert res.command[1:] == [
        "-i", ifaces[0], "-I", ifaces[1], f"--cachefile={cache}", "--pps=100", str(generated.pcap)
    ]  # fmt: skip
    assert len(read_cache(cache)[0]) == generated.traffic.n_packets
    built = replay(generated.pcap, ifaces[0], ifaces[1], dry_run=True, topspeed=True)
    assert built.cache is not None and built.cache["packets"] == generated.traffic.n_packets
    assert not Path(built.cache["path"]).exists()  # temporary: gone after the call
    assert built.cache["client_to_server"] == int((generated.traffic.direction == 0).sum())
