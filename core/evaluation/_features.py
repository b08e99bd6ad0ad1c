"""Per-flow feature matrices for the classifiers of the utility, discriminator and privacy figures.

- **flow statistics** (:func:`flow_features`): the columns of
  :data:`netdiffusion.fidelity.FLOW_FIELDS` (packets, bytes, duration, direction pattern, mean
  and std of packet size, mean inter-arrival, service port, protocol), the heavy-tailed ones
  (packets, bytes, duration, mean inter-arrival) as ``log10(1 + x)`` (microseconds for times);
  NaN becomes -1.
- **nPrint** (:func:`nprint_features`): the nPrint ``-4 -t -u -i`` bits of a flow's first
  :data:`NPRINT_PACKETS` packets (time order) side by side, the IPv4 address bits zeroed
  (addresses are assigned at emission, never learned); a flow with fewer packets is padded with
  -1 (nPrint's "absent"). ``[flows, NPRINT_PACKETS * 1088]`` int8.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from netdiffusion import fidelity as fd
from netdiffusion._traffic import Traffic
from netdiffusion.encoding import packet_bits
from netdiffusion.flows import rank_in_flow
from netdiffusion.nprint import N_BITS

__all__ = ["NPRINT_PACKETS", "flow_features", "nprint_features"]

#: Packets per flow in the nPrint feature vector.
NPRINT_PACKETS = 4
_LOG_COLUMNS = {"packets": 1.0, "bytes": 1.0, "duration": 1e6, "mean_iat": 1e6}


def flow_features(f: fd.Fields) -> NDArray[np.float32]:
    """``[rows, 9]`` flow-statistics features of :class:`~netdiffusion.fidelity.Fields` rows."""
    x = fd.flow_matrix(f).astype(np.float64)
    for j, name in enumerate(fd.FLOW_FIELDS):
        scale = _LOG_COLUMNS.get(name)
        if scale is not None:
            x[:, j] = np.log10(1.0 + np.maximum(x[:, j], 0.0) * scale)
    return x.astype(np.float32)


def nprint_features(t: Traffic, packets: int = NPRINT_PACKETS) -> NDArray[np.int8]:
    """``[flows, packets * 1088]`` nPrint bits of each flow's first packets (rows in flow order)."""
    out = np.full((t.n_flows, packets, N_BITS), -1, np.int8)
    keep = np.flatnonzero(t.flow >= 0)
    if len(keep):
        order, rank = rank_in_flow(t.flow, t.ts_ns, keep)
        flow = t.flow[order]
        sel = rank < packets
        rows = order[sel]
        out[flow[sel], rank[sel]] = packet_bits(t.take(rows), mask_addresses=True)
    return out.reshape(t.n_flows, packets * N_BITS)


def flow_labels(t: Traffic) -> NDArray[np.int32]:
    """Class index of every flow (rows in flow order, as :func:`nprint_features`)."""
    return t.flow_label.astype(np.int32)
