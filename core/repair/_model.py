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
    ``tcp_ack_given_a_byte`` redundant pure ACKs sent as one-byte segments,
    ``tcp_dup_ack_dropped`` packets removed). ``unfixed`` counts defects found and left
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
    of that class are snapped to the nearest of them. ``service_ports`` maps a class name to its
    service ports as ``(protocol, port, flows)`` triples, most frequent first; a generated service
    port within :data:`PORT_SNAP_BITS` bit flips of one of its class's ports (for the flow's
    protocol) becomes that port (the nearest; ties to the more frequent), others are kept.
    """

    ttl_modes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    service_ports: dict[str, tuple[tuple[int, int, int], ...]] = field(default_factory=dict)

    @classmethod
    def learn(
        cls,
        traffic: Traffic,
        top: int = 4,
        min_share: float = 0.02,
        top_ports: int = 32,
        port_share: float = 0.002,
    ) -> RepairStats:
        """The ``top`` most frequent TTLs per class (each at least ``min_share`` of its packets)
        and the ``top_ports`` most frequent service ports per class and transport protocol (each
        the responder's port of at least ``port_share`` of the class's flows, and of 2 flows)."""
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
        return cls(modes, _learn_ports(traffic, top_ports, port_share))

    def ttl_table(self, classes: list[str]) -> Mapping[int, tuple[int, ...]]:
        """Class index (in ``classes``) to TTL modes, for the classes known here."""
        return {i: self.ttl_modes[c] for i, c in enumerate(classes) if self.ttl_modes.get(c)}

    def port_table(self, classes: list[str]) -> Mapping[int, tuple[tuple[int, int, int], ...]]:
        """Class index (in ``classes``) to service ports, for the classes known here."""
        ports = self.service_ports
        return {i: ports[c] for i, c in enumerate(classes) if ports.get(c)}

    def to_json(self) -> dict[str, object]:
        """A JSON-able form (``repair_stats`` in a model's ``netdiffusion.json``)."""
        return {
            "ttl_modes": {c: list(m) for c, m in self.ttl_modes.items()},
            "service_ports": {c: [list(t) for t in v] for c, v in self.service_ports.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> RepairStats:
        """Inverse of :meth:`to_json` (``service_ports`` may be absent: older models)."""
        ttl = data.get("ttl_modes", {}) or {}
        ports = data.get("service_ports", {}) or {}
        assert isinstance(ttl, Mapping) and isinstance(ports, Mapping)
        return cls(
            {str(c): tuple(int(v) for v in m) for c, m in ttl.items()},
            {str(c): tuple((int(a), int(b), int(n)) for a, b, n in v) for c, v in ports.items()},
        )


#: A generated service port this many bits or fewer from a class's port snaps to it.
PORT_SNAP_BITS = 3


def _learn_ports(
    traffic: Traffic, top: int, share: float
) -> dict[str, tuple[tuple[int, int, int], ...]]:
    """Per class: ``(protocol, responder port, flows)`` of its most common TCP/UDP services."""
    flow = traffic.flow
    n_flows = traffic.n_flows
    sel = np.flatnonzero(flow >= 0)
    if not len(sel) or not len(traffic.flow_label):
        return {}
    # each flow's first packet gives its protocol and service port (responder's side)
    first = np.full(n_flows, -1, np.int64)
    order = sel[np.argsort(flow[sel], kind="stable")]
    fo = flow[order]
    head = np.ones(len(order), np.bool_)
    head[1:] = fo[1:] != fo[:-1]
    first[fo[head]] = order[head]
    have = np.flatnonzero(first >= 0)
    rows = first[have]
    proto = traffic.ip[rows, 9].astype(np.int64)
    l4 = traffic.l4[rows]
    sport = (l4[:, 0].astype(np.int64) << 8) | l4[:, 1]
    dport = (l4[:, 2].astype(np.int64) << 8) | l4[:, 3]
    port = np.where(traffic.direction[rows] == 0, dport, sport)
    label = traffic.flow_label[have].astype(np.int64)
    ok = np.isin(proto, (6, 17)) & (label >= 0)
    key = (label[ok] * 256 + proto[ok]) * 65536 + port[ok]
    uniq, cnt = np.unique(key, return_counts=True)
    per_class = np.bincount(label[label >= 0], minlength=len(traffic.classes))
    out: dict[str, tuple[tuple[int, int, int], ...]] = {}
    for c, name in enumerate(traffic.classes):
        mine = (uniq // (256 * 65536)) == c
        u, n = uniq[mine], cnt[mine]
        keep = n >= max(2.0, share * per_class[c])
        u, n = u[keep], n[keep]
        best = np.argsort(-n, kind="stable")[:top]
        if len(best):
            out[name] = tuple(
                (int((u[i] // 65536) % 256), int(u[i] % 65536), int(n[i])) for i in best
            )
    return out
