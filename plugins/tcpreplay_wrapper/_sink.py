"""``netdiffusion generate ... --replay IFACE``: generate, then replay the written capture."""

from __future__ import annotations

import os
from typing import Any

from netdiffusion._traffic import Traffic

__all__ = ["ReplaySink", "open_replay_sink"]


class ReplaySink:
    """A generate sink that replays the finished capture onto one interface (its own timing).

    The interface is checked when the sink opens, so a wrong name fails before any generation.
    """

    def __init__(self, iface: str, client_net: str) -> None:
        from netdiffusion_tcpreplay._iface import interface_info

        interface_info(iface)  # unknown interface: one-line ReplayError now, not after the work
        self.iface = iface
        self.client_net = client_net

    def add(self, traffic: Traffic) -> None:
        """Nothing to do per chunk: the replay reads the written capture."""

    def close(self, output: os.PathLike[str]) -> str:
        """Replay ``output`` onto the interface; tcpreplay's statistics as lines."""
        from netdiffusion_tcpreplay._replay import replay

        result = replay(output, self.iface, roles="client-net", client_net=self.client_net)
        return "\n".join(result.lines())


def open_replay_sink(value: str, *, client_net: str = "10.0.0.0/16", **_context: Any) -> ReplaySink:
    """The ``--replay IFACE`` sink."""
    return ReplaySink(value, client_net)
