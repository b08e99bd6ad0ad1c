"""Privacy: does synthetic traffic copy, or reveal, the flows the model was trained on?

- **Exact copies** (:func:`netdiffusion.identity.flow_identity`: the sequence of each packet's
  learned header fields and its gap in whole microseconds, plus the service port and packet
  count; addresses, client port, IP ID, checksums, sequence numbers, option contents and
  payload bytes left out). ``exact_copies`` counts synthetic flows whose identity is that of
  some training flow; ``exact_copy_rate`` divides by the synthetic flows;
  ``exact_copies_long`` counts only flows of :data:`LONG_FLOW` packets or more;
  ``exact_copies_unique`` only copies of a training flow that occurs once in the training set
  (common flows, a device's DNS query and its answer at the same microsecond gap, repeat in
  real traffic; a copy of a one-off flow is what memorisation looks like). A model with
  fingerprints generates none (:mod:`netdiffusion.model.copies` changes such flows by a few
  microseconds); the nearest-neighbour and membership figures say how close it still comes.
  ``header_copies`` (and ``header_copies_long``, ``header_copy_rate``) leave the gaps out:
  header sequences alone repeat all the time in real traffic (a device's DNS query and its
  answer), so compare them with the real-resample baseline's own rate.
- **Nearest-neighbour distance ratio**: flows as standardised flow-statistics vectors
  (:func:`netdiffusion.evaluation._features.flow_features`, each column scaled by the training
  flows' mean and standard deviation); the mean Euclidean distance from each synthetic flow to
  its nearest training flow, divided by the same mean for held-out real flows. Near 1: synthetic
  flows sit as far from the training flows as new real flows do; near 0: they hug the training
  flows (memorisation).
- **Membership inference AUC**: the attacker scores a candidate flow by minus its distance to
  the closest synthetic flow; members are training flows, non-members held-out real flows (as
  many of each, at most 4000). ROC AUC 0.5: membership cannot be told; 1: always.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from netdiffusion import fidelity as fd
from netdiffusion._traffic import Traffic
from netdiffusion.evaluation._features import flow_features
from netdiffusion.identity import flow_identity

__all__ = [
    "LONG_FLOW",
    "exact_copies",
    "flow_identity",
    "membership_auc",
    "nearest_distances",
    "privacy_figures",
    "unique_copies",
]

#: Flows of at least this many packets count in ``exact_copies_long``.
LONG_FLOW = 3


def exact_copies(synthetic: NDArray[np.uint64], train: NDArray[np.uint64]) -> tuple[int, float]:
    """Synthetic identities found among the training ones: (count, share of synthetic)."""
    hit = np.isin(synthetic, train)
    return int(hit.sum()), float(hit.mean()) if len(hit) else float("nan")


def unique_copies(synthetic: NDArray[np.uint64], train: NDArray[np.uint64]) -> int:
    """Synthetic identities equal to a training identity that occurs exactly once there."""
    ids, counts = np.unique(train, return_counts=True)
    return int(np.isin(synthetic, ids[counts == 1]).sum())


def _standardise(
    train: NDArray[np.float32], *others: NDArray[np.float32]
) -> list[NDArray[np.float64]]:
    mu = train.mean(axis=0)
    sd = train.std(axis=0)
    sd[sd == 0] = 1.0
    return [(x.astype(np.float64) - mu) / sd for x in (train, *others)]


def nearest_distances(
    query: NDArray[np.floating], ref: NDArray[np.floating]
) -> NDArray[np.float64]:
    """Euclidean distance from each ``query`` row to its nearest ``ref`` row."""
    from sklearn.neighbors import NearestNeighbors

    if not len(query) or not len(ref):
        return np.zeros(0, np.float64)
    nn = NearestNeighbors(n_neighbors=1).fit(ref)
    return nn.kneighbors(query)[0][:, 0].astype(np.float64)


def membership_auc(
    members: NDArray[np.floating],
    non_members: NDArray[np.floating],
    synthetic: NDArray[np.floating],
    *,
    seed: int = 0,
    max_rows: int = 4000,
) -> float:
    """ROC AUC of the distance-to-closest-synthetic attack telling ``members`` from
    ``non_members`` (as many of each, at most ``max_rows``); NaN when a side is empty."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    n = min(len(members), len(non_members), max_rows)
    if n == 0 or not len(synthetic):
        return float("nan")
    a = members[rng.choice(len(members), n, replace=False)]
    b = non_members[rng.choice(len(non_members), n, replace=False)]
    score = -nearest_distances(np.concatenate([a, b]), synthetic)
    y = np.r_[np.ones(n), np.zeros(n)]
    return float(roc_auc_score(y, score))


def privacy_figures(
    train: Traffic, synthetic: Traffic, heldout: Traffic, *, seed: int = 0
) -> dict[str, float]:
    """``exact_copies``, ``exact_copy_rate``, ``exact_copies_long``, ``exact_copies_unique``
    (and the first three for
    ``header_copies``: gaps left out), ``nn_distance_ratio``
    (with ``nn_distance.synthetic`` and ``nn_distance.heldout``) and ``membership_auc`` of
    ``synthetic`` against the training flows ``train``, held-out real flows ``heldout`` as
    the reference."""
    out: dict[str, float] = {}
    lengths = np.bincount(synthetic.flow[synthetic.flow >= 0], minlength=synthetic.n_flows)
    long = lengths >= LONG_FLOW
    for name, timing in (("exact_copies", True), ("header_copies", False)):
        ids_train = flow_identity(train, timing=timing)
        ids_syn = flow_identity(synthetic, timing=timing)
        count, rate = exact_copies(ids_syn, ids_train)
        out[name] = count
        out[f"{name.replace('_copies', '_copy')}_rate"] = rate
        out[f"{name}_long"] = exact_copies(ids_syn[long], ids_train)[0]
        if timing:
            out[f"{name}_unique"] = unique_copies(ids_syn, ids_train)
    x_train, x_syn, x_held = _standardise(
        flow_features(fd.flow_fields(train)),
        flow_features(fd.flow_fields(synthetic)),
        flow_features(fd.flow_fields(heldout)),
    )
    d_syn = nearest_distances(x_syn, x_train)
    d_held = nearest_distances(x_held, x_train)
    m_syn = float(d_syn.mean()) if len(d_syn) else float("nan")
    m_held = float(d_held.mean()) if len(d_held) else float("nan")
    out["nn_distance.synthetic"] = m_syn
    out["nn_distance.heldout"] = m_held
    out["nn_distance_ratio"] = m_syn / m_held if m_held > 0 else float("nan")
    out["membership_auc"] = membership_auc(x_train, x_held, x_syn, seed=seed)
    return out
