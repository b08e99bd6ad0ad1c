"""One evaluation: every figure of every family for the synthetic side and the baselines."""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from netdiffusion._traffic import Traffic
from netdiffusion.evaluation import fidelity as fid
from netdiffusion.evaluation import privacy as priv
from netdiffusion.evaluation import utility as util
from netdiffusion.evaluation import validity as val
from netdiffusion.evaluation._data import Sides, class_counts, match_counts
from netdiffusion.evaluation._features import flow_features, nprint_features
from netdiffusion.evaluation.baselines import (
    Source,
    independent_marginals_source,
    traffic_source,
)

__all__ = ["Evaluation", "evaluate"]


@dataclass
class Evaluation:
    """The figures (flat dotted names) and what the plots need."""

    figures: dict[str, Any]
    sources: dict[str, Source] = field(default_factory=dict)
    roc: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    conn_state: dict[str, Counter[str]] = field(default_factory=dict)
    history: dict[str, Counter[str]] = field(default_factory=dict)
    tcp_analysis: dict[str, Counter[str]] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


STAGES = ("fidelity", "discriminator", "utility", "privacy", "validity")


def _prefixed(prefix: str, figs: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in figs.items()}


def _feature_sets(src: Source) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(x, y) per feature set of a side: ``flow`` always, ``nprint`` when it has packets."""
    out = {"flow": (flow_features(src.flows), src.flows.label)}
    if src.traffic is not None:
        out["nprint"] = (nprint_features(src.traffic), src.traffic.flow_label)
    return out


def evaluate(
    sides: Sides,
    *,
    seed: int = 0,
    tshark: bool = True,
    trees: int = 100,
    progress: Callable[[str], None] | None = None,
) -> Evaluation:
    """Every figure (see ``docs/evaluation.md``) of ``sides``; random forests of ``trees`` trees;
    ``progress`` is called with each stage's name as it starts."""

    def stage(name: str) -> None:
        if progress is not None:
            progress(name)

    classes = sides.classes
    figs: dict[str, Any] = {}
    ev = Evaluation(figs, classes=list(classes), notes=list(sides.notes))
    figs["meta.classes"] = len(classes)
    figs["meta.seed"] = seed
    figs["meta.trees"] = trees
    figs["meta.synthetic"] = sides.synthetic_source
    for name, t in (("real", sides.ref), ("real_resample", sides.resample),
                    ("synthetic", sides.synthetic), ("train", sides.train)):  # fmt: skip
        if t is not None:
            figs[f"counts.{name}.flows"] = t.n_flows
            figs[f"counts.{name}.packets"] = t.n_packets

    # -- fidelity: synthetic matched to the resample's flows per class, so both sit on samples
    # of the same size
    stage("fidelity")
    ref = traffic_source("real", sides.ref)
    resample = traffic_source("real_resample", sides.resample)
    syn_all = traffic_source("synthetic", sides.synthetic)
    syn = traffic_source(
        "synthetic", match_counts(sides.synthetic, class_counts(sides.resample), seed=seed)
    )
    train = traffic_source("train", sides.real_train)
    marg = independent_marginals_source(train, resample, seed=seed)
    ev.sources = {"real": ref, "synthetic": syn, "real_resample": resample,
                  "independent_marginals": marg}  # fmt: skip
    ref_cols = fid.column_distributions(sides.ref)
    for prefix, src in (("", syn), ("baselines.real_resample.", resample),
                        ("baselines.independent_marginals.", marg)):  # fmt: skip
        figs.update(_prefixed(f"{prefix}fidelity", fid.field_figures(
            ref.flows, ref.packets, src.flows, src.packets)))  # fmt: skip
        if src.traffic is not None:
            figs.update(_prefixed(f"{prefix}fidelity.nprint", fid.nprint_figures(
                ref_cols, src.traffic)))  # fmt: skip
        for c in classes:
            rf_, rp_ = ref.flows.of_class(c), ref.packets.of_class(c)
            ff = fid.field_figures(rf_, rp_, src.flows.of_class(c), src.packets.of_class(c))
            key = f"{prefix}fidelity.per_class.{c}"
            for k in ("flow.mean_jsd", "packet.mean_jsd", "netshare.mean_jsd",
                      "netshare.mean_emd"):  # fmt: skip
                figs[f"{key}.{k}"] = ff[k]
            if src.traffic is not None:
                i = classes.index(c)
                nf = fid.nprint_figures(
                    _class_traffic(sides.ref, i), _class_traffic(src.traffic, i)
                )
                for k in ("jsd", "tv", "hellinger"):
                    figs[f"{key}.nprint.{k}"] = nf[k]

    # -- discriminator: real reference against each side, flow statistics and nPrint bits
    stage("discriminator")
    ref_sets = _feature_sets(ref)
    for prefix, name, src in (("", "synthetic", syn_all), ("baselines.real_resample.",
                              "real_resample", resample),
                              ("baselines.independent_marginals.", "independent_marginals",
                               marg)):  # fmt: skip
        sets = _feature_sets(src)
        auc, fpr, tpr = util.discriminator(
            ref_sets["flow"][0], sets["flow"][0], seed=seed, trees=trees
        )
        figs[f"{prefix}discriminator.roc_auc"] = auc
        ev.roc[name] = (fpr, tpr)
        if "nprint" in sets:
            figs[f"{prefix}discriminator.nprint.roc_auc"] = util.discriminator(
                ref_sets["nprint"][0], sets["nprint"][0], seed=seed, trees=trees
            )[0]
        for i, c in enumerate(classes):
            a = ref_sets["flow"][0][ref_sets["flow"][1] == i]
            b = sets["flow"][0][sets["flow"][1] == i]
            figs[f"{prefix}discriminator.per_class.{c}.roc_auc"] = util.discriminator(
                a, b, seed=seed, trees=trees
            )[0]

    # -- utility
    stage("utility")
    test = ref_sets
    train_sets = _feature_sets(train)
    figs.update(_prefixed("utility", util.utility_figures(
        train_sets, _feature_sets(syn_all), test, classes, seed=seed, trees=trees)))  # fmt: skip
    figs.update(_prefixed("baselines.real_resample.utility", util.utility_figures(
        train_sets, _feature_sets(resample), test, classes, seed=seed,
        cases=("tstr",), trees=trees)))  # fmt: skip
    figs.update(_prefixed("baselines.independent_marginals.utility", util.utility_figures(
        {"flow": train_sets["flow"]}, _feature_sets(marg), {"flow": test["flow"]}, classes,
        seed=seed, cases=("tstr",), trees=trees)))  # fmt: skip

    # -- privacy: against the model's training flows, when known
    stage("privacy")
    if sides.train is not None:
        figs.update(_prefixed("privacy", priv.privacy_figures(
            sides.train, sides.synthetic, sides.ref, seed=seed)))  # fmt: skip
        figs.update(_prefixed("baselines.real_resample.privacy", priv.privacy_figures(
            sides.train, sides.resample, sides.ref, seed=seed)))  # fmt: skip
    else:
        ev.notes.append("privacy figures need the model's training captures (--train)")

    # -- validity, like for like
    stage("validity")
    for name, t in (("real", sides.ref), ("synthetic", sides.synthetic)):
        figs.update(_prefixed(f"validity.{name}", val.structural_figures(t)))
        states, hist = val.zeek_states(t)
        ev.conn_state[name], ev.history[name] = states, hist
        n = sum(states.values())
        figs[f"validity.{name}.zeek.connections"] = n
        for s, k in sorted(states.items()):
            figs[f"validity.{name}.zeek.conn_state.{s}"] = k / n
        for h, k in hist.most_common(10):
            figs[f"validity.{name}.zeek.history.{h}"] = k / n
    figs["validity.zeek.conn_state_jsd"] = val.distribution_jsd(
        ev.conn_state["real"], ev.conn_state["synthetic"]
    )
    figs["validity.zeek.history_jsd"] = val.distribution_jsd(
        ev.history["real"], ev.history["synthetic"]
    )
    exe = shutil.which("tshark") if tshark else None
    if exe is not None:
        with tempfile.TemporaryDirectory(prefix="netdiffusion-eval-") as tmp:
            for name, t in (("real", sides.ref), ("synthetic", sides.synthetic)):
                files = sides.files.get(name)
                if not files:
                    files = [_write_temp(t, Path(tmp) / f"{name}.pcap")]
                rates, kinds, total = val.tshark_rates(files, tshark=exe, display_filter="ip")
                figs[f"validity.{name}.tshark.packets"] = total
                for k, v in rates.items():
                    figs[f"validity.{name}.tshark.{k}_rate"] = v
                ev.tcp_analysis[name] = kinds
    else:
        ev.notes.append(
            "tshark figures skipped ("
            + ("--no-tshark" if not tshark else "tshark is not installed")
            + ")"
        )
    return ev


def _class_traffic(t: Traffic, label: int) -> Traffic:
    """Packets of the flows of class ``label``."""
    flows = np.flatnonzero(t.flow_label == label)
    mask = np.isin(t.flow, flows)
    return t.take(mask)


def _write_temp(t: Traffic, path: Path) -> Path:
    from netdiffusion.emit import write_pcap

    write_pcap(t.sorted_by_time(), path, mtu=None)
    return path
