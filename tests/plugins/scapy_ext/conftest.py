"""Shared fixtures of the Scapy adapter tests: the bundled model, loaded once, and one
generated run of about 2,000 packets (TCP, UDP with DNS, ICMP) with the pcap records the
``generate`` command writes for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

#: The run every test compares against: 300 flows of the bundled model, seed 1.
RUN_FLOWS = 300
RUN_SEED = 1


@dataclass
class Run:
    """Packets from the socket and, for the same run, the pcap record bytes and times."""

    flows: int
    seed: int
    packets: list[Any]
    frames: list[bytes]
    sec: list[int]
    usec: list[int]


@pytest.fixture(scope="session")
def model() -> Any:
    """The bundled model (skips when this installation has none)."""
    from netdiffusion.model import DEFAULT_MODEL_DIR

    if not (DEFAULT_MODEL_DIR / "netdiffusion.json").is_file():
        pytest.skip("no bundled model in this installation")
    from netdiffusion_scapy._socket import get_model

    return get_model(None, "cpu")


@pytest.fixture(scope="session")
def run(model: Any) -> Run:
    """The socket's packets and the records ``generate_records`` builds, same arguments."""
    from netdiffusion.capture._decode import rows
    from netdiffusion_scapy import SynthSocket

    with SynthSocket(model=model, flows=RUN_FLOWS, seed=RUN_SEED, device="cpu") as sock:
        packets = list(sock)
    frames: list[bytes] = []
    sec: list[int] = []
    usec: list[int] = []
    for recs in model.generate_records(RUN_FLOWS, seed=RUN_SEED, device="cpu"):
        data = recs.data[: recs.nbytes].tobytes()
        starts = recs.starts
        head = rows(recs.data, starts, 8).view("<u4") if len(starts) else np.zeros((0, 2))
        frames += [
            data[s + 16 : e] for s, e in zip(starts.tolist(), recs.ends.tolist(), strict=True)
        ]
        sec += head[:, 0].tolist()
        usec += head[:, 1].tolist()
    return Run(RUN_FLOWS, RUN_SEED, packets, frames, sec, usec)
