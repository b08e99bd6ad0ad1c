"""Fidelity: how close synthetic traffic's distributions are to real traffic's.

Two families of figures, each per class and overall (see ``docs/evaluation.md``):

**nPrint bit level** (NetDiffusion's metrics). Every packet is nPrint's ``-4 -t -u -i`` vector
(:func:`netdiffusion.encoding.packet_bits`): 1088 columns, each -1 (header absent), 0 or 1. For
each column, each side gives a distribution over the three values {-1, 0, 1} (counts over all
packets / number of packets). Between the two distributions ``p`` and ``q`` of a column:

- Jensen-Shannon divergence in bits: ``JSD = KL(p||m)/2 + KL(q||m)/2``, ``m = (p+q)/2``, log 2;
- total variation: ``TV = sum |p - q| / 2``;
- Hellinger distance: ``H = sqrt(1 - sum sqrt(p q))``.

Each lies in [0, 1] (0: same distribution, 1: disjoint). The figure is the plain mean over the
1024 columns that are not the IPv4 source and destination address bits (addresses are assigned
at emission from user-chosen subnets, never learned, so they would measure the subnet choice).
Means per nPrint block (``ipv4``, ``tcp``, ``udp``, ``icmp``) are given too.

**Field level** (NetShare's set, on :mod:`netdiffusion.fidelity`'s fields). Jensen-Shannon
divergence (bits, fixed bins of :data:`netdiffusion.fidelity.BINNING`) of every per-flow and
per-packet field, and the earth mover's distance (Wasserstein-1) of the NetShare fields: service
port, packet length, inter-arrival, flow packets, flow bytes, duration. The EMD is computed on
the field's values after a fixed transform (log10 for packets, bytes and duration in
microseconds, ``log(1 + x)``; inter-arrival is already log10 seconds), then divided by the
pooled range of both sides, so it lies in [0, 1]: 0 for the same distribution, 1 when every
value of one side sits at the pooled minimum and every value of the other at the maximum.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from netdiffusion import fidelity as fd
from netdiffusion._traffic import Traffic
from netdiffusion.encoding import packet_bits
from netdiffusion.nprint import BLOCKS, IPV4_ADDR_SLICE, N_BITS

__all__ = [
    "EMD_FIELDS",
    "NETSHARE_FIELDS",
    "column_distributions",
    "emd",
    "field_figures",
    "nprint_figures",
    "nprint_mask",
    "per_column_distances",
]

#: (field level, field) pairs of NetShare's fidelity set, with the EMD transform of each.
EMD_FIELDS: dict[str, tuple[str, str]] = {
    "service_port": ("flow", "lin"),
    "size": ("packet", "lin"),
    "log_iat": ("packet", "lin"),
    "packets": ("flow", "log"),
    "bytes": ("flow", "log1p"),
    "duration": ("flow", "log1p_us"),
}
#: NetShare's field set as (level, field): ports, protocol, packet length, inter-arrival,
#: flow size (packets and bytes), duration.
NETSHARE_FIELDS: tuple[tuple[str, str], ...] = (
    ("flow", "service_port"),
    ("flow", "protocol"),
    ("packet", "size"),
    ("packet", "log_iat"),
    ("flow", "packets"),
    ("flow", "bytes"),
    ("flow", "duration"),
)
_CHUNK = 65536


def nprint_mask() -> NDArray[np.bool_]:
    """Columns that count in the nPrint means: all but the IPv4 address bits."""
    keep = np.ones(N_BITS, np.bool_)
    keep[IPV4_ADDR_SLICE] = False
    return keep


def column_distributions(t: Traffic) -> NDArray[np.float64]:
    """``[1088, 3]``: per nPrint column, the share of packets with value -1, 0, 1 (rows sum to 1;
    all zero for no packets)."""
    counts = np.zeros((N_BITS, 3), np.int64)
    for s in range(0, t.n_packets, _CHUNK):
        bits = packet_bits(t.take(np.arange(s, min(s + _CHUNK, t.n_packets))))
        for k, v in enumerate((-1, 0, 1)):
            counts[:, k] += (bits == v).sum(axis=0)
    return counts / max(t.n_packets, 1)


def per_column_distances(
    p: NDArray[np.float64], q: NDArray[np.float64]
) -> dict[str, NDArray[np.float64]]:
    """JSD (bits), total variation and Hellinger distance of each row pair of ``p`` and ``q``
    (rows are distributions over the same values)."""
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log2(p / np.where(m > 0, m, 1)), 0.0).sum(axis=1)
        kq = np.where(q > 0, q * np.log2(q / np.where(m > 0, m, 1)), 0.0).sum(axis=1)
    jsd = np.clip(0.5 * kp + 0.5 * kq, 0.0, 1.0)
    tv = np.clip(0.5 * np.abs(p - q).sum(axis=1), 0.0, 1.0)
    hel = np.sqrt(np.clip(1.0 - np.sqrt(p * q).sum(axis=1), 0.0, 1.0))
    return {"jsd": jsd, "tv": tv, "hellinger": hel}


def nprint_figures(
    p: NDArray[np.float64] | Traffic, q: NDArray[np.float64] | Traffic
) -> dict[str, float]:
    """Mean nPrint JSD / TV / Hellinger (non-address columns) overall and per block; NaN when a
    side has no packets. ``p``, ``q``: :func:`column_distributions` or traffic."""
    if isinstance(p, Traffic):
        p = column_distributions(p)
    if isinstance(q, Traffic):
        q = column_distributions(q)
    names = ("jsd", "tv", "hellinger")
    if not p.sum() or not q.sum():
        out = {k: float("nan") for k in names}
        out.update({f"{b}.{k}": float("nan") for b in BLOCKS for k in names})
        return out
    d = per_column_distances(p, q)
    keep = nprint_mask()
    out = {k: float(d[k][keep].mean()) for k in names}
    for block, sl in BLOCKS.items():
        cols = np.flatnonzero(keep[sl]) + sl.start
        for k in names:
            out[f"{block}.{k}"] = float(d[k][cols].mean())
    return out


def _transform(values: NDArray[np.float64], kind: str) -> NDArray[np.float64]:
    v = np.asarray(values, np.float64)
    v = v[~np.isnan(v)]
    if kind == "log":
        return np.log10(np.maximum(v, 1.0))
    if kind == "log1p":
        return np.log10(1.0 + np.maximum(v, 0.0))
    if kind == "log1p_us":
        return np.log10(1.0 + np.maximum(v, 0.0) * 1e6)
    return v


def emd(a: NDArray[np.floating], b: NDArray[np.floating], kind: str = "lin") -> float:
    """Earth mover's distance between two samples after ``kind``'s transform, divided by their
    pooled range (0: same, 1: all mass at opposite ends); NaN when a side is empty."""
    from scipy.stats import wasserstein_distance

    x, y = _transform(a, kind), _transform(b, kind)
    if not len(x) or not len(y):
        return float("nan")
    lo = min(x.min(), y.min())
    span = max(x.max(), y.max()) - lo
    if span <= 0:
        return 0.0
    return float(wasserstein_distance((x - lo) / span, (y - lo) / span))


def field_figures(
    real_f: fd.Fields,
    real_p: fd.Fields,
    other_f: fd.Fields,
    other_p: fd.Fields,
    *,
    flow_names: Sequence[str] = fd.FLOW_FIELDS,
    packet_names: Sequence[str] = fd.PACKET_FIELDS,
) -> dict[str, float]:
    """Field-level figures of ``other`` against ``real``: ``flow.<f>.jsd``, ``packet.<f>.jsd``,
    ``<level>.<f>.emd`` for :data:`EMD_FIELDS`, the means ``flow.mean_jsd``,
    ``packet.mean_jsd``, ``netshare.mean_jsd`` and ``netshare.mean_emd``."""
    out: dict[str, float] = {}
    fj = fd.field_jsd(other_f, real_f, flow_names)
    pj = fd.field_jsd(other_p, real_p, packet_names)
    for k, v in fj.items():
        out[f"flow.{k}.jsd"] = v
    for k, v in pj.items():
        out[f"packet.{k}.jsd"] = v
    for name, (level, kind) in EMD_FIELDS.items():
        a, b = (real_f, other_f) if level == "flow" else (real_p, other_p)
        out[f"{level}.{name}.emd"] = emd(a.columns[name], b.columns[name], kind)
    out["flow.mean_jsd"] = _nanmean(list(fj.values()))
    out["packet.mean_jsd"] = _nanmean(list(pj.values()))
    ns_jsd = []
    for level, name in NETSHARE_FIELDS:
        src = (real_f, other_f) if level == "flow" else (real_p, other_p)
        ns_jsd.append(
            fd.jsd(fd.bin_ids(name, src[1].columns[name]), fd.bin_ids(name, src[0].columns[name]))
        )
    out["netshare.mean_jsd"] = _nanmean(ns_jsd)
    out["netshare.mean_emd"] = _nanmean(
        [out[f"{lv}.{n}.emd"] for n, (lv, _k) in EMD_FIELDS.items()]
    )
    return out


def _nanmean(values: Sequence[float]) -> float:
    arr = np.asarray(values, np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if len(arr) else float("nan")
