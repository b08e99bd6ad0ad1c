"""No verbatim copies of training flows: the fingerprints guard on real captures and in a model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netdiffusion.checksum import checksum_ok
from netdiffusion.flows import cap_flows
from netdiffusion.identity import flow_identity
from netdiffusion.model.copies import (
    FINGERPRINTS_FILE,
    avoid_copies,
    read_fingerprints,
    training_fingerprints,
    write_fingerprints,
)


@pytest.fixture(scope="module")
def real(tiny_traffic):
    """Real flows cut to 16 packets, sorted by time (as generated traffic is)."""
    t = cap_flows(tiny_traffic, 16)[0]
    return t.take(np.argsort(t.ts_ns, kind="stable"))


def test_copies_of_real_flows_are_changed_by_the_least_that_makes_them_new(real) -> None:
    ids = flow_identity(real)
    present = np.bincount(real.flow, minlength=real.n_flows) > 0
    distinct, counts = np.unique(ids[present], return_counts=True)
    known = training_fingerprints(real, 16)
    assert np.array_equal(known, distinct[counts == 1])  # the flows seen once
    one_off = present & np.isin(ids, known)
    assert 0 < one_off.sum() < present.sum()
    out, changed, left = avoid_copies(real, known)  # every one-off flow is a copy of itself
    assert changed == int(one_off.sum()) and left == 0
    assert not np.isin(flow_identity(out)[present], known).any()
    assert out.n_packets == real.n_packets and (np.diff(out.ts_ns) >= 0).all()
    # per flow, one packet changed: the last one's time (by whole microseconds, never behind
    # the packet before it) or, for a lone packet, its TTL (lower unless it is 1; checksum
    # recomputed)
    back = out.take(np.lexsort((out.ts_ns, out.flow)))
    orig = real.take(np.lexsort((real.ts_ns, real.flow)))
    assert np.array_equal(back.flow, orig.flow)
    shift = back.ts_ns - orig.ts_ns
    ttl = orig.ip[:, 8].astype(np.int64) - back.ip[:, 8]
    touched = (shift != 0) | (ttl != 0)
    assert np.array_equal(np.bincount(back.flow[touched], minlength=real.n_flows), one_off)
    last = np.r_[back.flow[1:] != back.flow[:-1], True]
    lone = last & np.r_[True, back.flow[1:] != back.flow[:-1]]
    assert (shift[~last] == 0).all() and (shift % 1000 == 0).all()
    assert (np.abs(shift) <= 32_000).all() and np.median(np.abs(shift[shift != 0])) <= 3_000
    assert ((ttl != 0) == (touched & lone)).all() and (ttl[orig.ip[:, 8] > 1] >= 0).all()
    gaps = np.diff(back.ts_ns)[back.flow[1:] == back.flow[:-1]]
    assert (gaps >= 0).all()
    assert checksum_ok(out)["ip"].all()
    assert np.array_equal(out.payload, real.payload) or out.payload.size == real.payload.size


def test_new_flows_pass_unchanged(real) -> None:
    half = real.n_flows // 2
    first = real.take(real.flow < half)
    known = training_fingerprints(first, 16)
    rest = real.take(real.flow >= half)
    ids = flow_identity(rest)
    present = np.bincount(rest.flow, minlength=rest.n_flows) > 0
    copies = int(np.isin(ids[present], known).sum())
    out, changed, left = avoid_copies(rest, known)
    assert changed == copies and left == 0  # only the flows that repeat one of the first half
    if copies == 0:
        assert out is rest


def test_fingerprints_round_trip(tmp_path: Path) -> None:
    ids = np.array([5, 3, 2**64 - 1, 3], np.uint64)
    write_fingerprints(tmp_path, ids)
    assert read_fingerprints(tmp_path).tolist() == [3, 5, 2**64 - 1]
    assert read_fingerprints(tmp_path / "nowhere") is None


def test_training_writes_fingerprints_and_generation_avoids_them(
    tiny_model_dir: Path, tiny_traffic, tmp_path: Path
) -> None:
    import shutil

    from netdiffusion.model import load_model

    known = read_fingerprints(tiny_model_dir)
    assert known is not None and (tiny_model_dir / FINGERPRINTS_FILE).is_file()
    assert np.array_equal(known, training_fingerprints(tiny_traffic, 16))
    free = load_model(tiny_model_dir, device="cpu").generate(300, seed=5, allow_copies=True)
    assert not np.isin(flow_identity(free), known).any()  # a 200-step model copies nothing
    # a model whose "training flows" are every other flow that seed generates
    copy_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy_dir)
    ids = flow_identity(free)
    write_fingerprints(copy_dir, ids[::2])
    model = load_model(copy_dir, device="cpu")
    again = model.generate(300, seed=5, allow_copies=True)
    assert np.array_equal(flow_identity(again), ids)  # --allow-copies: no guard
    for workers in (0, 2):
        guarded = model.generate(300, seed=5, workers=workers)
        got = flow_identity(guarded)
        assert not np.isin(got, ids[::2]).any()
        assert np.array_equal(got[1::2], ids[1::2])  # the others are untouched
        assert guarded.n_packets == free.n_packets


def test_training_without_fingerprints_keeps_none(tiny_traffic, tmp_path: Path) -> None:
    from netdiffusion.model import load_model, train_model
    from netdiffusion.model.modeldir import read_meta

    from .conftest import TINY

    out = tmp_path / "private"
    train_model(
        tiny_traffic, out, max_packets=16, config=TINY, steps=2, batch_size=32, seed=0,
        checkpoint_every=0, progress=False, fingerprints=False,
    )  # fmt: skip
    assert not (out / FINGERPRINTS_FILE).exists() and read_fingerprints(out) is None
    assert "fingerprints" not in read_meta(out)["data"]
    assert "fingerprints.safetensors" not in (out / "README.md").read_text()
    assert load_model(out, device="cpu").generate(20, seed=1).n_flows > 0  # no guard needed
