"""Public data types of the repair engine: its report, its optional learned knowledge, its error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from netdiffusion._traffic import Traffic

__all__ = ["RepairError", "RepairReport", "RepairStats"]


class RepairError(ValueError):
    """Traffic the repair engine cannot work on; the message is one line naming the reason."""


@dataclass
class RepairReport:
    """What :func:`~netdiffusion.repair.repair` changed.

    ``fixed`` counts packets changed per kind (``ip_checksum``, ``tcp_ack``, ``udp_length``, ...;
    ``tcp_dup_ack_dropped`` counts packets removed). ``unfixed`` counts defects found and left
    alone (real captures: e.g. ``ts_backwards`` within a flow, ``l4_unverifiable`` for packets
    that do not hold their whole payload). ``payload_filler`` names what supplied missing payload
    bytes: ``"fill_payloads"`` (the emitter's protocol-aware filler), ``"zeros"`` (fallback) or
    ``""`` (nothing was filled).
    """

    fixed: dict[str, int] = field(default_factory=dict)
    unfixed: dict[str, int] = field(default_factory=dict)
    packets_in: int = 0
    packets_out: int = 0
    payload_filler: str = ""

    @property
    def total_fixed(self) -> int:
        """Sum of all ``fixed`` counts."""
        return sum(self.fixed.values())


@dataclass
class RepairStats:
    """Per-class knowledge learned from training traffic that guides repair of generated traffic.

    ``ttl_modes`` maps a class name to its most common IPv4 TTL values; generated TTLs of a flow
    of that class are snapped to the nearest of them.
    """

    ttl_modes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @classmethod
    def learn(cls, traffic: Traffic, top: int = 4, min_share: float = 0.02) -> RepairStats:
        """The ``top`` most frequent TTLs per class (each at least ``min_share`` of its packets)."""
        modes: dict[str, tuple[int, ...]] = {}
        if traffic.n_packets == 0 or traffic.n_flows == 0:
            return cls(modes)
        flow = traffic.flow
        label = np.where(flow >= 0, traffic.flow_label[np.maximum(flow, 0)], -1)
        counts = np.bincount(
            np.where(label >= 0, label * 256 + traffic.ip[:, 8], 0),
            weights=(label >= 0).astype(np.float64),
            minlength=256 * max(len(traffic.classes), 1),
        ).reshape(-1, 256)
        for c, name in enumerate(traffic.classes):
            row = counts[c]
            total = row.sum()
            if total == 0:
                continue
            best = np.argsort(-row, kind="stable")[:top]
            keep = [int(v) for v in best if row[v] >= max(1.0, min_share * total)]
            if keep:
                modes[name] = tuple(sorted(keep))
        return cls(modes)

    def ttl_table(self, classes: list[str]) -> Mapping[int, tuple[int, ...]]:
        """Class index (in ``classes``) to TTL modes, for the classes known here."""
        return {i: self.ttl_modes[c] for i, c in enumerate(classes) if self.ttl_modes.get(c)}
