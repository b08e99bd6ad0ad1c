"""Fixtures of the tcpreplay tests: one small generated capture per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from netdiffusion._traffic import Traffic
from netdiffusion.emit import write_pcap, write_pcapng
from tests.plugins.tcpreplay_wrapper._replaylib import generate


@dataclass(frozen=True)
class Generated:
    """~200 generated flows as Traffic, classic pcap and pcapng (with class/flow comments)."""

    traffic: Traffic
    pcap: Path
    pcapng: Path


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    traffic = generate(200, seed=7)
    root = tmp_path_factory.mktemp("generated")
    root.chmod(0o755)
    pcap, pcapng = root / "gen.pcap", root / "gen.pcapng"
    write_pcap(traffic, pcap)
    write_pcapng(traffic, pcapng)
    return Generated(traffic, pcap, pcapng)
