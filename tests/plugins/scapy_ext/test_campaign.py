"""The UTScapy campaign ``netdiffusion.uts`` passes (run as CI runs it), and loading the
extension costs the netdiffusion CLI nothing: the plugin imports neither Scapy nor torch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

CAMPAIGN = Path(__file__).resolve().parent / "netdiffusion.uts"
ROOT = Path(__file__).resolve().parents[3]


def test_utscapy_campaign_passes(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path)}  # no user Scapy config
    proc = subprocess.run(
        [sys.executable, "-m", "scapy.tools.UTscapy", "-t", str(CAMPAIGN), "-f", "text"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=240,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    counts = re.search(r"PASSED=(\d+) FAILED=(\d+)", out)
    assert counts and int(counts[1]) >= 10 and counts[2] == "0", out[-3000:]
    assert "does not look like a Scapy plugin" not in out
    assert "cannot be loaded" not in out


def test_plugin_import_is_light() -> None:
    code = (
        "import sys, netdiffusion, netdiffusion_scapy.plugin; "
        "print('scapy' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_star_import() -> None:
    code = (
        "from netdiffusion_scapy import *\n"
        "import netdiffusion_scapy\n"
        "assert sorted(k for k in netdiffusion_scapy.__all__ if k in globals()) == "
        "sorted(netdiffusion_scapy.__all__)\n"
        "from scapy.config import conf\n"
        "assert synth in conf.commands and SynthSocket.nonblocking_socket\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "ok", out.stderr
