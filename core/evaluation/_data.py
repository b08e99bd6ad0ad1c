"""The sides of an evaluation: real flows, synthetic flows, the model's training flows.

Real captures (``--real``) are split **by capture file**, per class, into two halves:

- ``ref``: the real flows every figure is measured against (the test set);
- ``resample``: the other half, the "real resample" baseline (held-out real flows) and, without
  ``--train``, the real training set of the utility figures.

Flows of one capture are correlated, so a split by file is the honest one; a class whose flows
all sit in one file is split by flow instead. ``train`` is the model's own training flows
(``--train``, or the ``train_files`` of a model directory's ``heldout.json`` when they can be
found beside the ``--real`` files); privacy figures need it.

The synthetic side is either captures (labelled like the real ones) or a model directory
(``default``: the bundled model), which then generates, per class, as many flows as the larger
of the real side and the training set hold (at most ``--flows`` per class). Real flows are then
cut to the model's ``max_packets`` first packets, as generated ones are. Only classes present
on both sides are evaluated.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import Traffic

__all__ = [
    "EvaluationError",
    "Sides",
    "class_counts",
    "first_packets",
    "flow_files",
    "keep_classes",
    "load_sides",
    "match_counts",
    "model_split",
    "read_side",
    "split_by_file",
    "take_flows",
]


class EvaluationError(ValueError):
    """Bad input to an evaluation (one line, naming the file or option and the reason)."""


@dataclass
class Sides:
    """Everything an evaluation compares (each a labelled :class:`Traffic` over ``classes``)."""

    ref: Traffic
    resample: Traffic
    synthetic: Traffic
    train: Traffic | None
    classes: list[str]
    #: Capture files per side, for tools that read files (tshark); None: written on demand.
    files: dict[str, list[Path] | None] = field(default_factory=dict)
    #: What the synthetic side is: ``"captures"``, or the model directory.
    synthetic_source: str = "captures"
    notes: list[str] = field(default_factory=list)

    @property
    def real_train(self) -> Traffic:
        """Real flows a classifier trains on for TRTR: ``train`` when known, else ``resample``."""
        return self.train if self.train is not None else self.resample


# -- flow-level helpers --------------------------------------------------------------------------


def first_packets(t: Traffic) -> NDArray[np.int64]:
    """Index of the first packet (in table order) of every flow; -1 for a flow without any."""
    first = np.full(t.n_flows, -1, np.int64)
    rows = np.flatnonzero(t.flow >= 0)[::-1]
    first[t.flow[rows]] = rows
    return first


def flow_files(t: Traffic) -> NDArray[np.int32]:
    """Capture file index of every flow (that of its first packet; -1: none)."""
    first = first_packets(t)
    out = np.full(t.n_flows, -1, np.int32)
    ok = first >= 0
    out[ok] = t.file[first[ok]]
    return out


def take_flows(t: Traffic, flows: NDArray[np.integer]) -> Traffic:
    """The packets of ``flows`` (flow indices), flows renumbered in ascending order."""
    flows = np.unique(np.asarray(flows, np.int64))
    remap = np.full(t.n_flows + 1, -1, np.int64)
    remap[flows] = np.arange(len(flows))
    packet_flow = np.where(t.flow >= 0, t.flow, t.n_flows)
    keep = remap[packet_flow] >= 0
    out = t.take(keep)
    out.flow = remap[np.where(out.flow >= 0, out.flow, t.n_flows)]
    return replace(out, flow_label=t.flow_label[flows].astype(np.int32))


def keep_classes(t: Traffic, classes: Sequence[str]) -> Traffic:
    """Flows of ``classes`` only, relabelled so that label ``i`` is ``classes[i]``."""
    remap = np.array([classes.index(c) if c in classes else -1 for c in t.classes] + [-1], np.int32)
    labels = remap[t.flow_label] if t.n_flows else np.zeros(0, np.int32)
    out = take_flows(replace(t, flow_label=labels), np.flatnonzero(labels >= 0))
    out.classes = list(classes)
    return out


def class_counts(t: Traffic) -> dict[str, int]:
    """Flows per class name (classes without flows left out)."""
    lab = t.flow_label[t.flow_label >= 0]
    n = np.bincount(lab, minlength=len(t.classes))
    return {c: int(n[i]) for i, c in enumerate(t.classes) if n[i]}


def match_counts(t: Traffic, counts: dict[str, int], *, seed: int = 0) -> Traffic:
    """A random subset of ``t``'s flows with at most ``counts[c]`` flows of each class ``c``."""
    rng = np.random.default_rng(seed)
    keep = []
    for i, c in enumerate(t.classes):
        rows = np.flatnonzero(t.flow_label == i)
        n = min(len(rows), int(counts.get(c, 0)))
        if n:
            keep.append(rng.choice(rows, n, replace=False))
    idx = np.concatenate(keep) if keep else np.zeros(0, np.int64)
    return take_flows(t, idx)


def split_by_file(
    t: Traffic, *, frac: float = 0.5, seed: int = 0
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Flow indices of two parts (``frac`` of each class's files in the first).

    Each file goes wholly to one part (assigned by the class most of its flows have); a class
    whose flows all come from one file is split by flow. Both parts get at least one flow of
    every class that has two or more.
    """
    rng = np.random.default_rng(seed)
    ffile = flow_files(t)
    labels = t.flow_label
    part = np.zeros(t.n_flows, np.int8)  # 0: first part, 1: second
    for ci in range(len(t.classes)):
        rows = np.flatnonzero(labels == ci)
        if not len(rows):
            continue
        files = np.unique(ffile[rows])
        if len(files) >= 2:
            files = rng.permutation(files)
            n_first = min(max(round(frac * len(files)), 1), len(files) - 1)
            second = np.isin(ffile[rows], files[n_first:])
            part[rows] = second
        elif len(rows) >= 2:
            perm = rng.permutation(rows)
            n_first = min(max(round(frac * len(rows)), 1), len(rows) - 1)
            part[perm[n_first:]] = 1
    return np.flatnonzero(part == 0), np.flatnonzero(part == 1)


# -- reading -------------------------------------------------------------------------------------


def read_side(
    paths: Sequence[str | os.PathLike[str]],
    *,
    labels: str | None = "folder",
    label_column: str = "ndpi_proto",
    what: str = "captures",
    on_refused: Callable[[str], None] | None = None,
) -> tuple[Traffic, list[Path]]:
    """Labelled flows of captures (files or folders) and the capture files read."""
    from netdiffusion.inputs import expand_captures, read_flows

    files = expand_captures(paths)
    if not files:
        raise EvaluationError(f"{what}: no capture files given")
    traffic, summary, _ = read_flows(
        files, labels=labels, label_column=label_column, keep_payload=True, progress=False,
        on_refused=on_refused,
    )  # fmt: skip
    if traffic.n_flows == 0:
        raise EvaluationError(f"{what}: no IPv4 TCP/UDP/ICMP flows in {files[0]} ...")
    if not (traffic.flow_label >= 0).any():
        raise EvaluationError(f"{what}: no flow got a label (see --labels)")
    return traffic, [f for f in files if str(f) not in set(summary.refused)]


def is_model_spec(spec: Sequence[str | os.PathLike[str]]) -> bool:
    """True when ``--synthetic`` names a model (``default`` or a model directory)."""
    if len(spec) != 1:
        return False
    one = Path(spec[0])
    return str(spec[0]) == "default" or (one.is_dir() and (one / "netdiffusion.json").is_file())


def model_split(model_dir: Path, real_files: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """(train files, held-out files) of a model's ``heldout.json``, resolved against the folder
    (an ancestor of ``real_files``) that ends with the file's ``source``; ([], []) when the
    model has no ``heldout.json`` or the folder is not found."""
    path = model_dir / "heldout.json"
    if not path.is_file():
        return [], []
    held = json.loads(path.read_text())
    source = Path(held.get("source", ""))
    for f in real_files:
        for parent in Path(f).resolve().parents:
            if source.parts and parent.parts[-len(source.parts) :] == source.parts:
                train = [parent / p for p in held.get("train_files", [])]
                heldout = [parent / p for p in held.get("held_out_files", [])]
                return [p for p in train if p.is_file()], heldout
    return [], []


def _cap(t: Traffic, max_packets: int | None) -> Traffic:
    if max_packets is None:
        return t
    from netdiffusion.flows import cap_flows

    return cap_flows(t, max_packets)[0]


def load_sides(
    real: Sequence[str | os.PathLike[str]],
    synthetic: Sequence[str | os.PathLike[str]],
    *,
    train: Sequence[str | os.PathLike[str]] | None = None,
    labels: str | None = "folder",
    label_column: str = "ndpi_proto",
    flows: int | None = None,
    seed: int = 0,
    device: str | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Sides:
    """Read (and, for a model, generate) every side of an evaluation; see the module docstring."""
    notes: list[str] = []

    def note(text: str) -> None:
        notes.append(text)
        if on_note is not None:
            on_note(text)

    real_t, real_files = read_side(
        real, labels=labels, label_column=label_column, what="--real", on_refused=note
    )
    model = None
    model_dir: Path | None = None
    if is_model_spec(synthetic):
        from netdiffusion.model import DEFAULT_MODEL_DIR, load_model

        model_dir = (
            Path(DEFAULT_MODEL_DIR) if str(synthetic[0]) == "default" else Path(synthetic[0])
        )
        model = load_model(None if str(synthetic[0]) == "default" else model_dir, device=device)
    train_paths: list[Path] = [Path(p) for p in train or []]
    if model is not None and model_dir is not None and not train_paths:
        train_paths, _ = model_split(model_dir, real_files)
        if train_paths:
            note(f"training files of the model: {len(train_paths)} (from its heldout.json)")
    train_t = None
    if train_paths:
        train_t, train_files = read_side(
            train_paths, labels=labels, label_column=label_column, what="--train", on_refused=note
        )
        seen = {p.resolve() for p in train_files} & {p.resolve() for p in real_files}
        if seen:
            note(f"{len(seen)} --real files are training files too (e.g. {sorted(seen)[0]})")

    if model is not None:
        classes = [c for c in model.classes if c in real_t.classes]
    else:
        syn_t, syn_files = read_side(
            synthetic, labels=labels, label_column=label_column, what="--synthetic",
            on_refused=note,
        )  # fmt: skip
        classes = [c for c in real_t.classes if c in syn_t.classes]
    if not classes:
        raise EvaluationError(
            "no class is on both the real and the synthetic side (real: "
            + ", ".join(real_t.classes[:5])
            + ")"
        )
    dropped = [c for c in real_t.classes if c not in classes]
    if dropped:
        note(f"real classes without synthetic flows, left out: {', '.join(dropped)}")

    max_packets = model.max_packets if model is not None else None
    real_t = keep_classes(_cap(real_t, max_packets), classes)
    if train_t is not None:
        train_t = keep_classes(_cap(train_t, max_packets), classes)
    a, b = split_by_file(real_t, seed=seed)
    ref, resample = take_flows(real_t, a), take_flows(real_t, b)
    if ref.n_flows == 0 or resample.n_flows == 0:
        raise EvaluationError("--real: too few flows to split into a reference and a resample half")

    syn_paths: list[Path] | None
    if model is not None:
        want = class_counts(real_t)
        if train_t is not None:
            want = {c: max(n, class_counts(train_t).get(c, 0)) for c, n in want.items()}
        if flows is not None:
            want = {c: min(n, flows) for c, n in want.items()}
        syn_t = model.generate(sum(want.values()), classes=want, seed=seed)
        syn_t = keep_classes(syn_t, classes)
        syn_paths = None
        source = str(model_dir)
    else:
        syn_t = keep_classes(syn_t, classes)
        if flows is not None:
            syn_t = match_counts(syn_t, {c: flows for c in classes}, seed=seed)
        syn_paths = syn_files
        source = "captures"
    if syn_t.n_flows == 0:
        raise EvaluationError("--synthetic: no flows of the evaluated classes")

    used = {int(i) for i in np.unique(flow_files(ref)) if i >= 0}
    ref_files = [Path(ref.files[i]) for i in sorted(used)]
    used = {int(i) for i in np.unique(flow_files(resample)) if i >= 0}
    resample_files = [Path(resample.files[i]) for i in sorted(used)]
    return Sides(
        ref=ref,
        resample=resample,
        synthetic=syn_t,
        train=train_t,
        classes=classes,
        files={"real": ref_files, "real_resample": resample_files, "synthetic": syn_paths},
        synthetic_source=source,
        notes=notes,
    )
