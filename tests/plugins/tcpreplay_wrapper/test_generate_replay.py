"""``netdiffusion generate ... --replay IFACE``: generated, written, then replayed in one go."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from netdiffusion_tcpreplay import Capture
from tests.plugins.tcpreplay_wrapper._replaylib import (
    netns_unavailable,
    pcap_frames,
    require_tool,
    veth_namespace,
)

_NETNS_WHY = netns_unavailable()


def _cli(*args: str, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    pre = ["ip", "netns", "exec", netns] if netns else []
    cmd = [*pre, sys.executable, "-m", "netdiffusion", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(_NETNS_WHY is not None, reason=str(_NETNS_WHY))
def test_generate_then_replay_arrives_whole(tmp_path: Path) -> None:
    require_tool("tcpreplay")
    require_tool("tcpdump")
    out = tmp_path / "gen.pcap"
    with veth_namespace(1) as ns:
        with Capture("b0", tmp_path / "b0.pcap", netns=ns, tool="tcpdump"):
            res = _cli("generate", "--flows", "6", "--seed", "2", "--replay", "a0",
                       "-o", str(out), netns=ns)  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
    want = pcap_frames(out)
    assert f"{len(want)} packets written" in res.stdout
    assert f"sent {len(want)} packets" in res.stdout
    assert pcap_frames(tmp_path / "b0.pcap") == want


def test_generate_replay_refuses_bad_interface_before_work(tmp_path: Path) -> None:
    out = tmp_path / "gen.pcap"
    res = _cli("generate", "--flows", "3", "--replay", "no-such-if0", "-o", str(out))
    assert res.returncode != 0
    assert res.stderr.strip().splitlines()[-1].startswith("Error: unknown interface 'no-such-if0'")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    res = _cli("generate", "--flows", "3", "--replay", "lo", "-o", str(tmp_path / "g.csv"))
    assert res.returncode != 0 and "--replay needs a pcap or pcapng output" in res.stderr
