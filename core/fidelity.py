"""Fidelity measures: per-flow and per-packet fields, Jensen-Shannon divergence, naive baselines.

Synthetic traffic is compared with real traffic field by field. Two tables of fields, each a
:class:`Fields` (numpy columns plus a class label per row):

- :func:`flow_fields`, one row per flow: ``packets``, ``bytes`` (sum of IPv4 total lengths),
  ``duration`` (seconds, last minus first packet), ``direction_pattern`` (the first
  :data:`PATTERN_PACKETS` directions and the length, as one small integer: bit ``i`` is packet
  ``i``'s direction, 1 = responder, and a sentinel bit ``1 << min(packets, 8)`` marks the length),
  ``mean_size`` / ``std_size`` (IPv4 total length), ``mean_iat`` (seconds, duration / (packets - 1),
  0 for one-packet flows), ``service_port`` (the responder's port; -1 for ICMP), ``protocol``;
- :func:`packet_fields`, one row per packet: ``size`` (IPv4 total length), ``log_iat`` (log10 of
  the seconds since the previous packet of the same flow; NaN for a flow's first packet, -9 for a
  zero gap), ``ttl``, ``tcp_flags`` and ``tcp_window`` (NaN for non-TCP packets),
  ``service_port``, ``direction`` and ``protocol``.

A NaN means "not applicable" and is left out of that field's histogram.

Jensen-Shannon divergence (:func:`jsd`) is computed in **bits** (log base 2), so it lies in
``[0, 1]``: 0 for identical histograms, 1 for histograms with disjoint support. Both sides are
binned with the same fixed rule per field (:data:`BINNING`), so the histograms share their bins:

- ``cat``: every distinct value is its own bin (protocol, ports, TTL, TCP flags, direction);
- ``int``: one bin per integer up to 32, then quarter-octave bins (``packets``);
- ``log2``: ``0`` gets its own bin, else ``floor(4 * log2(v))`` after scaling (bytes, window,
  duration and mean IAT in microseconds): quarter-octave bins;
- ``lin``: ``floor(v / width)`` (``mean_size``, ``std_size``, ``size``: 16-byte bins);
- ``log_iat``: quarter-decade bins of log10 seconds.

Baselines (a model must beat them to be worth anything):

- :func:`independent_marginals`: every column resampled independently from the training rows of
  the same class (flow fields, or packet fields, as given). Its per-field marginals are those of
  the training data, so it sits at the real-vs-real floor on one-field figures and is told apart
  only by joint measures (a discriminator);
- :func:`independent_packet_flows`, the naive generator: flows whose length comes from the
  class's flow-length marginal and whose packets have every field (size, gap, direction, service
  port, protocol) drawn independently from the class's packet marginals; the flow fields are
  then computed from those packets (a flow's port and protocol are its first packet's): what a
  generator that resamples per-field marginals, ignoring how packets make up a flow, produces.

Classifier helpers (:func:`train_random_forest`, :func:`discriminator_auc`) use scikit-learn,
imported inside the functions: it is a test and benchmark dependency, not a runtime one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import PROTO_TCP, PROTO_UDP, Traffic

__all__ = [
    "BINNING",
    "FLOW_FIELDS",
    "PACKET_FIELDS",
    "PATTERN_PACKETS",
    "Fields",
    "bin_ids",
    "discriminator_auc",
    "field_jsd",
    "flow_fields",
    "flow_matrix",
    "independent_marginals",
    "independent_packet_flows",
    "jsd",
    "packet_fields",
    "train_random_forest",
]

FLOW_FIELDS = (
    "packets",
    "bytes",
    "duration",
    "direction_pattern",
    "mean_size",
    "std_size",
    "mean_iat",
    "service_port",
    "protocol",
)
PACKET_FIELDS = ("size", "log_iat", "ttl", "tcp_flags", "tcp_window", "service_port")
#: Directions of a flow's first packets that make up its direction pattern.
PATTERN_PACKETS = 8

#: Field -> (binning kind, parameter); see the module docstring.
BINNING: dict[str, tuple[str, float]] = {
    "packets": ("int", 32),
    "bytes": ("log2", 1.0),
    "duration": ("log2", 1e6),  # seconds -> microseconds
    "direction_pattern": ("cat", 0),
    "mean_size": ("lin", 16),
    "std_size": ("lin", 16),
    "mean_iat": ("log2", 1e6),
    "service_port": ("cat", 0),
    "protocol": ("cat", 0),
    "size": ("lin", 16),
    "log_iat": ("log_iat", 4),
    "ttl": ("cat", 0),
    "tcp_flags": ("cat", 0),
    "tcp_window": ("log2", 1.0),
    "direction": ("cat", 0),
}
_ZERO_GAP_LOG = -9.0


@dataclass
class Fields:
    """Rows of named float64 columns, each row labelled with a class index into ``classes``."""

    columns: dict[str, NDArray[np.float64]]
    label: NDArray[np.int32]
    classes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.label)

    def take(self, idx: NDArray[np.int64] | NDArray[np.bool_]) -> Fields:
        """Rows ``idx`` (indices or a mask)."""
        return Fields({k: v[idx] for k, v in self.columns.items()}, self.label[idx], self.classes)

    def of_class(self, name: str) -> Fields:
        """Rows of class ``name`` (none when it is not one of ``classes``)."""
        if name not in self.classes:
            return self.take(np.zeros(len(self), np.bool_))
        return self.take(self.label == self.classes.index(name))

    @staticmethod
    def concat(parts: Sequence[Fields]) -> Fields:
        """Rows of every part; class names are merged."""
        classes: list[str] = []
        for p in parts:
            classes += [c for c in p.classes if c not in classes]
        labels = []
        for p in parts:
            remap = np.array([classes.index(c) for c in p.classes] + [-1], np.int32)
            labels.append(remap[p.label])
        names = list(parts[0].columns) if parts else []
        cols = {k: np.concatenate([p.columns[k] for p in parts]) for k in names}
        return Fields(cols, np.concatenate(labels) if labels else np.zeros(0, np.int32), classes)


# -- field extraction ----------------------------------------------------------------------------


def _be16(cols: NDArray[np.uint8]) -> NDArray[np.int64]:
    return (cols[:, 0].astype(np.int64) << 8) | cols[:, 1]


def _packet_basics(t: Traffic) -> dict[str, NDArray[Any]]:
    """Per-packet quantities for packets that belong to a flow, sorted by (flow, time)."""
    keep = np.flatnonzero(t.flow >= 0)
    order = keep[np.lexsort((keep, t.ts_ns[keep], t.flow[keep]))]
    flow = t.flow[order]
    proto = t.proto[order].astype(np.int64)
    direction = t.direction[order].astype(np.int64)
    src_port = _be16(t.l4[order, 0:2])
    dst_port = _be16(t.l4[order, 2:4])
    has_port = (proto == PROTO_TCP) | (proto == PROTO_UDP)
    port = np.where(direction == 0, dst_port, src_port)
    ts = t.ts_ns[order]
    first = np.ones(len(order), np.bool_)
    first[1:] = flow[1:] != flow[:-1]
    gap_s = np.zeros(len(order), np.float64)
    gap_s[1:] = (ts[1:] - ts[:-1]) / 1e9
    gap_s[first] = np.nan
    return {
        "order": order,
        "flow": flow,
        "first": first,
        "proto": proto,
        "direction": direction,
        "service_port": np.where(has_port, port, -1),
        "size": _be16(t.ip[order, 2:4]),
        "ts": ts,
        "gap_s": gap_s,
    }


def _flow_label(t: Traffic, flow: NDArray[np.int64]) -> NDArray[np.int32]:
    if len(t.flow_label) == 0:
        return np.full(len(flow), -1, np.int32)
    return t.flow_label[flow].astype(np.int32)


def packet_fields(t: Traffic) -> Fields:
    """One row per packet of an assembled flow (see the module docstring for the columns)."""
    b = _packet_basics(t)
    o = b["order"]
    gap = b["gap_s"]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_iat = np.where(gap > 0, np.log10(np.where(gap > 0, gap, 1.0)), _ZERO_GAP_LOG)
    log_iat[np.isnan(gap)] = np.nan
    is_tcp = b["proto"] == PROTO_TCP
    nan = np.full(len(o), np.nan)
    cols = {
        "size": b["size"].astype(np.float64),
        "log_iat": log_iat,
        "ttl": t.ip[o, 8].astype(np.float64),
        "tcp_flags": np.where(is_tcp, t.l4[o, 13], nan),
        "tcp_window": np.where(is_tcp, _be16(t.l4[o, 14:16]), nan),
        "service_port": b["service_port"].astype(np.float64),
        "direction": b["direction"].astype(np.float64),
        "protocol": b["proto"].astype(np.float64),
    }
    return Fields(cols, _flow_label(t, b["flow"]), list(t.classes))


def _flow_table(
    seg: NDArray[np.int64],
    n: int,
    size: NDArray[np.float64],
    gap_s: NDArray[np.float64],
    direction: NDArray[np.int64],
) -> dict[str, NDArray[np.float64]]:
    """Flow columns from packets grouped by flow (``seg``: 0..n-1, non-decreasing; ``gap_s``:
    NaN at each flow's first packet)."""
    packets = np.bincount(seg, minlength=n).astype(np.float64)
    total = np.bincount(seg, weights=size, minlength=n)
    sq = np.bincount(seg, weights=size * size, minlength=n)
    mean = total / np.maximum(packets, 1)
    std = np.sqrt(np.maximum(sq / np.maximum(packets, 1) - mean * mean, 0.0))
    duration = np.bincount(seg, weights=np.nan_to_num(gap_s, nan=0.0), minlength=n)
    mean_iat = np.where(packets > 1, duration / np.maximum(packets - 1, 1), 0.0)
    start = np.zeros(n + 1, np.int64)
    np.cumsum(packets.astype(np.int64), out=start[1:])
    rank = np.arange(len(seg)) - start[seg]
    early = rank < PATTERN_PACKETS
    bits = np.bincount(
        seg[early], weights=(direction[early] << rank[early]).astype(np.float64), minlength=n
    )
    sentinel = np.left_shift(1, np.minimum(packets, PATTERN_PACKETS).astype(np.int64))
    return {
        "packets": packets,
        "bytes": total,
        "duration": duration,
        "direction_pattern": (bits.astype(np.int64) | sentinel).astype(np.float64),
        "mean_size": mean,
        "std_size": std,
        "mean_iat": mean_iat,
    }


def flow_fields(t: Traffic) -> Fields:
    """One row per flow that has packets (see the module docstring for the columns)."""
    b = _packet_basics(t)
    first_rows = np.flatnonzero(b["first"])
    seg = np.cumsum(b["first"]) - 1
    n = len(first_rows)
    cols = _flow_table(seg, n, b["size"].astype(np.float64), b["gap_s"], b["direction"])
    cols["service_port"] = b["service_port"][first_rows].astype(np.float64)
    cols["protocol"] = b["proto"][first_rows].astype(np.float64)
    return Fields(cols, _flow_label(t, b["flow"][first_rows]), list(t.classes))


# -- histograms and divergence -------------------------------------------------------------------


def bin_ids(name: str, values: NDArray[np.floating]) -> NDArray[np.int64]:
    """Bin of every non-NaN value of field ``name`` under :data:`BINNING` (NaNs dropped)."""
    kind, param = BINNING[name]
    v = np.asarray(values, np.float64)
    v = v[~np.isnan(v)]
    if kind == "cat":
        return np.rint(v).astype(np.int64)
    if kind == "lin":
        return np.floor(v / param).astype(np.int64)
    if kind == "int":
        x = np.maximum(v, 1.0)
        fine = np.rint(x).astype(np.int64)
        coarse = int(param) + np.floor(4 * np.log2(x / param)).astype(np.int64) + 1
        return np.where(x <= param, fine, coarse)
    if kind == "log2":
        x = v * param
        with np.errstate(divide="ignore"):
            ids = np.floor(4 * np.log2(np.where(x > 0, x, 1.0))).astype(np.int64) + 1
        return np.where(x > 0, np.maximum(ids, 1), 0)
    if kind == "log_iat":
        return np.floor(v * param).astype(np.int64)
    raise ValueError(f"unknown binning kind {kind!r} for field {name!r}")


def jsd(a: NDArray[np.integer], b: NDArray[np.integer]) -> float:
    """Jensen-Shannon divergence in bits between the histograms of two arrays of bin ids
    (0: same distribution, 1: disjoint support); NaN when either side is empty."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    bins, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    p = np.bincount(inv[: len(a)], minlength=len(bins)) / len(a)
    q = np.bincount(inv[len(a) :], minlength=len(bins)) / len(b)
    m = 0.5 * (p + q)

    def kl(x: NDArray[np.float64]) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return min(max(0.5 * kl(p) + 0.5 * kl(q), 0.0), 1.0)


def field_jsd(a: Fields, b: Fields, names: Sequence[str] | None = None) -> dict[str, float]:
    """JSD (bits) of each field (default: every column both have) between ``a`` and ``b``."""
    names = [k for k in a.columns if k in b.columns] if names is None else list(names)
    return {k: jsd(bin_ids(k, a.columns[k]), bin_ids(k, b.columns[k])) for k in names}


# -- baselines -----------------------------------------------------------------------------------


def _class_counts(counts: Mapping[str, int] | Fields) -> dict[str, int]:
    if isinstance(counts, Fields):
        lab = counts.label[counts.label >= 0]
        n = np.bincount(lab, minlength=len(counts.classes))
        return {c: int(n[i]) for i, c in enumerate(counts.classes) if n[i]}
    return {c: int(n) for c, n in counts.items() if n > 0}


def independent_marginals(
    train: Fields, counts: Mapping[str, int] | Fields, *, seed: int = 0
) -> Fields:
    """Rows whose every column is drawn independently (with replacement) from the training rows
    of the same class: ``counts`` maps class -> rows wanted (or give a :class:`Fields` to match
    its class counts). Classes absent from ``train`` are skipped."""
    rng = np.random.default_rng(seed)
    cols: dict[str, list[NDArray[np.float64]]] = {k: [] for k in train.columns}
    labels = []
    classes = list(train.classes)
    for name, n in _class_counts(counts).items():
        if name not in classes:
            continue
        rows = np.flatnonzero(train.label == classes.index(name))
        if not len(rows):
            continue
        for k, v in train.columns.items():
            cols[k].append(v[rows[rng.integers(0, len(rows), n)]])
        labels.append(np.full(n, classes.index(name), np.int32))
    return Fields(
        {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()},
        np.concatenate(labels) if labels else np.zeros(0, np.int32),
        classes,
    )


def independent_packet_flows(
    train_flows: Fields,
    train_packets: Fields,
    counts: Mapping[str, int] | Fields,
    *,
    seed: int = 0,
) -> Fields:
    """Flow fields of flows built from independent draws (see the module docstring): per class,
    the length from the flow marginal, then every packet's size, gap, direction, service port
    and protocol from the packet marginals, each independently."""
    rng = np.random.default_rng(seed)
    classes = list(train_flows.classes)
    parts = []
    for name, n in _class_counts(counts).items():
        if name not in classes or name not in train_packets.classes:
            continue
        frows = np.flatnonzero(train_flows.label == classes.index(name))
        prows = np.flatnonzero(train_packets.label == train_packets.classes.index(name))
        if not len(frows) or not len(prows):
            continue

        length = _draw(rng, train_flows.columns["packets"], frows, n).astype(np.int64)
        seg = np.repeat(np.arange(n), length)
        m = len(seg)
        size = _draw(rng, train_packets.columns["size"], prows, m)
        log_iat = train_packets.columns["log_iat"]
        gap_rows = prows[~np.isnan(log_iat[prows])]
        if len(gap_rows):
            lg = log_iat[gap_rows[rng.integers(0, len(gap_rows), m)]]
            gap = np.where(lg <= _ZERO_GAP_LOG, 0.0, 10.0**lg)
        else:
            gap = np.zeros(m)
        first = np.ones(m, np.bool_)
        first[1:] = seg[1:] != seg[:-1]
        gap[first] = np.nan
        direction = _draw(rng, train_packets.columns["direction"], prows, m).astype(np.int64)
        cols = _flow_table(seg, n, size, gap, direction)
        # a flow's port and protocol are those drawn for its first packet
        heads = np.flatnonzero(first)
        cols["service_port"] = _draw(rng, train_packets.columns["service_port"], prows, m)[heads]
        cols["protocol"] = _draw(rng, train_packets.columns["protocol"], prows, m)[heads]
        parts.append(Fields(cols, np.full(n, classes.index(name), np.int32), classes))
    if not parts:
        return independent_marginals(train_flows, {}, seed=seed)
    return Fields.concat(parts)


def _draw(
    rng: np.random.Generator, col: NDArray[np.float64], rows: NDArray[np.int64], m: int
) -> NDArray[np.float64]:
    """``m`` values of ``col`` at rows drawn uniformly (with replacement) from ``rows``."""
    return col[rows[rng.integers(0, len(rows), m)]]


# -- classifiers ---------------------------------------------------------------------------------


def flow_matrix(f: Fields, names: Sequence[str] = FLOW_FIELDS) -> NDArray[np.float32]:
    """Feature matrix ``[rows, len(names)]`` for a classifier; NaN becomes -1."""
    if not len(f):
        return np.zeros((0, len(names)), np.float32)
    x = np.stack([f.columns[k] for k in names], axis=1)
    return np.nan_to_num(x, nan=-1.0).astype(np.float32)


def train_random_forest(
    x: NDArray[np.floating],
    y: NDArray[np.integer],
    *,
    seed: int = 0,
    n_estimators: int = 100,
    n_jobs: int | None = None,
) -> Any:
    """A fitted scikit-learn ``RandomForestClassifier`` (class-balanced) on ``x``, ``y``."""
    from netdiffusion.evaluation.utility import make_classifier

    clf = make_classifier("rf", seed, trees=n_estimators).set_params(n_jobs=n_jobs)
    clf.fit(x, y)
    return clf


def discriminator_auc(
    real: Fields,
    other: Fields,
    *,
    names: Sequence[str] = FLOW_FIELDS,
    seed: int = 0,
    folds: int = 3,
    max_rows: int = 4000,
) -> float:
    """Cross-validated ROC AUC of a random forest telling ``real`` rows from ``other`` rows on
    the flow fields ``names`` (0.5: indistinguishable, 1: fully separable): the evaluation
    suite's :func:`~netdiffusion.evaluation.utility.discriminator` (sides subsampled to one
    size, equal rows kept in one fold); NaN when a side has fewer than ``folds`` rows."""
    from netdiffusion.evaluation.utility import discriminator

    x_real, x_other = flow_matrix(real, names), flow_matrix(other, names)
    return discriminator(x_real, x_other, seed=seed, folds=folds, max_rows=max_rows)[0]
