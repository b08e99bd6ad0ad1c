"""No verbatim copies of one-off training flows.

A model directory keeps the identities (:func:`netdiffusion.identity.flow_identity`) of the
flows that occur once in its training data, in ``fingerprints.safetensors`` (sorted 64-bit
integers, written by :func:`netdiffusion.model.train_model`). Generation checks every
generated, repaired flow against them and moves each flow whose identity is one of them off
it with the smallest change that makes it new (:func:`avoid_copies`):

- a flow of two or more packets: its last packet moves by whole microseconds, +1, -1, +2,
  -2, ... (at most :data:`MAX_ROUNDS` tries; never to within a microsecond of the packet
  before it), so one inter-arrival time changes by a few microseconds;
- a single packet: its TTL one lower, then two, ... (one more router on its way; up from the
  lowest, 1, when it gets there; the IPv4 header checksum is recomputed).

Why one-off flows only: a copy of a flow seen once is what memorising a training record looks
like, while a flow seen many times (a device's DNS query and its answer, the same number of
microseconds apart) is a pattern of the traffic that held-out real captures repeat too.
Moving every copy of those off the training values leaves holes exactly where real traffic
is densest: on the bundled model that raised the evaluation's discriminator ROC AUC from 0.65
to 0.76 (seed 0).

The identities tell whether a given one-off flow was in the training data (a membership test
for exact flows, though the model itself can emit such flows without them): train a model
that will be shared from private captures with ``--no-fingerprints`` (then generation has no
guard).
"""

from __future__ import annotations

import os
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import Traffic
from netdiffusion.checksum import ipv4_header_checksums
from netdiffusion.identity import flow_identity

__all__ = [
    "FINGERPRINTS_FILE",
    "MAX_ROUNDS",
    "avoid_copies",
    "read_fingerprints",
    "training_fingerprints",
    "write_fingerprints",
]

FINGERPRINTS_FILE = "fingerprints.safetensors"
#: Tries per flow before it is left as it is (counted as left).
MAX_ROUNDS = 64
_US = 1000


def training_fingerprints(traffic: Traffic, max_packets: int) -> NDArray[np.uint64]:
    """Sorted identities of the flows of ``traffic`` (cut to their first ``max_packets``
    packets, as the model learns them) that occur there once."""
    from netdiffusion.flows import cap_flows

    capped = cap_flows(traffic, max_packets)[0] if traffic.n_packets else traffic
    ids = flow_identity(capped)
    present = np.bincount(capped.flow[capped.flow >= 0], minlength=capped.n_flows) > 0
    distinct, counts = np.unique(ids[present], return_counts=True)
    return distinct[counts == 1]


def write_fingerprints(model_dir: str | os.PathLike[str], ids: NDArray[np.uint64]) -> Path:
    """Write ``ids`` (any order, repeats allowed) as the model directory's fingerprints."""
    from safetensors.numpy import save

    from netdiffusion._atomic import atomic_output

    path = Path(model_dir) / FINGERPRINTS_FILE
    data = save({"flows": np.unique(np.asarray(ids, np.uint64))}, metadata={"of": "flow_identity"})
    with atomic_output(path) as fh:
        fh.write(data)
    return path


@lru_cache(maxsize=4)
def _read(path: str, mtime_ns: int) -> NDArray[np.uint64]:
    from safetensors.numpy import load_file

    return np.ascontiguousarray(load_file(path)["flows"], np.uint64)


def read_fingerprints(model_dir: str | os.PathLike[str]) -> NDArray[np.uint64] | None:
    """The identities of the model directory's one-off training flows (sorted), or None when
    it has no fingerprints."""
    path = Path(model_dir) / FINGERPRINTS_FILE
    if not path.is_file():
        return None
    return _read(str(path), path.stat().st_mtime_ns)


def _known(ids: NDArray[np.uint64], known: NDArray[np.uint64]) -> NDArray[np.bool_]:
    at = np.minimum(np.searchsorted(known, ids), len(known) - 1)
    return known[at] == ids


def avoid_copies(
    t: Traffic, known: NDArray[np.uint64], *, rounds: int = MAX_ROUNDS
) -> tuple[Traffic, int, int]:
    """``t`` with every flow whose identity is in ``known`` (sorted) changed until it is not
    (see the module docstring); returns the traffic (``t`` itself when nothing was a copy,
    else a new object, sorted by time when ``t`` was), the flows changed and the flows left
    as copies (no try within ``rounds`` made them new)."""
    if not len(known) or not t.n_packets:
        return t, 0, 0
    ids = flow_identity(t)
    present = np.bincount(t.flow[t.flow >= 0], minlength=t.n_flows) > 0
    hit = np.flatnonzero(present & _known(ids, known))
    if not len(hit):
        return t, 0, 0
    rows = np.flatnonzero(np.isin(t.flow, hit))
    sub = t.take(rows)
    order = np.lexsort((np.arange(len(rows)), sub.ts_ns, sub.flow))
    f_sorted = sub.flow[order]
    is_last = np.r_[f_sorted[1:] != f_sorted[:-1], True]
    at = np.flatnonzero(is_last)
    last = order[at]  # each hit flow's last packet (rows of ``sub``), flows ascending
    flows = f_sorted[at]
    single = (at == 0) | (f_sorted[np.maximum(at - 1, 0)] != flows)
    prev = np.where(single, last, order[np.maximum(at - 1, 0)])
    ts0 = sub.ts_ns[last].copy()
    ttl0 = sub.ip[last, 8].astype(np.int64)
    pending = np.ones(len(last), np.bool_)
    for r in range(1, rounds + 1):
        step = ((r + 1) // 2) * (1 if r % 2 else -1) * _US  # +1, -1, +2, -2, ... us
        new_ts = ts0 + step
        new_ttl = np.where(ttl0 - r >= 1, ttl0 - r, r + 1)  # up from TTL 1 when it is lower
        can = pending & np.where(single, new_ttl <= 255, new_ts - sub.ts_ns[prev] >= _US)
        if not can.any():
            continue
        moved, lowered = can & ~single, can & single
        sub.ts_ns[last[moved]] = new_ts[moved]
        sub.ip[last[lowered], 8] = new_ttl[lowered]
        new = can & ~_known(flow_identity(sub)[flows], known)
        back = can & ~new
        sub.ts_ns[last[back & ~single]] = ts0[back & ~single]
        sub.ip[last[back & single], 8] = ttl0[back & single]
        pending &= ~new
        if not pending.any():
            break
    changed = ~pending
    out = replace(t, ts_ns=t.ts_ns.copy(), ip=t.ip.copy())
    dst = rows[last[changed]]
    out.ts_ns[dst] = sub.ts_ns[last[changed]]
    out.ip[dst, 8] = sub.ip[last[changed], 8]
    ttl_rows = rows[last[changed & single]]
    if len(ttl_rows):
        csum = ipv4_header_checksums(out.ip[ttl_rows]).astype(np.int64)
        out.ip[ttl_rows, 10] = csum >> 8
        out.ip[ttl_rows, 11] = csum & 0xFF
    was_sorted = bool((np.diff(t.ts_ns) >= 0).all())
    if was_sorted and not bool((np.diff(out.ts_ns) >= 0).all()):
        out = out.take(np.argsort(out.ts_ns, kind="stable"))
    return out, int(changed.sum()), int(pending.sum())
