"""ML utility: does synthetic traffic train classifiers that work on real traffic?

Every case trains a classifier of the flow's class and tests it on the same real test flows
(``ref``, files the classifier never saw), scored by macro-F1 (the mean of per-class F1 over the
classes present in the test set) and per-class F1:

- ``trtr``: train on real (the real training flows), test on real;
- ``tstr``: train on synthetic (per class as many flows as the real training set, when there are
  that many), test on real;
- ``augment.<p>``: real training flows plus ``p`` % as many synthetic flows (per class), for
  p = 10, 25, 50, 100;
- ``imbalance``: the minority classes (the half of the classes with the fewest real training
  flows, at least one) are cut to 10 % of their flows (at least one): ``imbalance.real`` trains
  on that; ``imbalance.augmented`` tops each minority class back up to its full count with
  synthetic flows. ``minority_f1`` is the mean F1 over the minority classes.

Classifiers: ``rf``, a class-balanced random forest (100 trees,
:func:`netdiffusion.fidelity.train_random_forest`), and ``mlp``, a neural network (scikit-learn
``MLPClassifier``, one hidden layer of 128, standardised inputs). Features: ``flow`` (flow
statistics) and ``nprint`` (the first packets' nPrint bits), see :mod:`._features`. Columns that
are constant in a training set are dropped first. The headline names (``utility.trtr.macro_f1``,
``utility.tstr.macro_f1``, ...) are the random forest on flow statistics.

The discriminator (:func:`discriminator`) is a random forest telling real from other flows,
cross-validated; its ROC AUC is 0.5 when they cannot be told apart, 1 when always.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "AUGMENT_SHARES",
    "CLASSIFIERS",
    "discriminator",
    "macro_f1",
    "make_classifier",
    "utility_figures",
]

#: Synthetic flows added per class in the augmentation cases, as % of the real training flows.
AUGMENT_SHARES = (10, 25, 50, 100)
CLASSIFIERS = ("rf", "mlp")
#: Most training rows a classifier sees (a stratified subsample beyond).
MAX_TRAIN_ROWS = 20000
XY = tuple[NDArray[Any], NDArray[np.integer]]


def make_classifier(kind: str, seed: int = 0, *, trees: int = 100) -> Any:
    """An unfitted scikit-learn classifier: ``rf`` (``trees`` trees) or ``mlp`` (a pipeline with
    a scaler)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "rf":
        from sklearn.ensemble import RandomForestClassifier

        clf = RandomForestClassifier(
            n_estimators=trees, random_state=seed, class_weight="balanced", min_samples_leaf=2,
            n_jobs=-1,
        )  # fmt: skip
        return clf
    if kind == "mlp":
        from sklearn.neural_network import MLPClassifier

        clf = MLPClassifier(
            hidden_layer_sizes=(128,), max_iter=100, early_stopping=True, n_iter_no_change=10,
            random_state=seed,
        )  # fmt: skip
        return make_pipeline(StandardScaler(), clf)
    raise ValueError(f"unknown classifier {kind!r} (use rf or mlp)")


def _fit_predict(
    kind: str, train: XY, test_x: NDArray[Any], seed: int, trees: int
) -> NDArray[np.integer]:
    x, y = train
    if len(np.unique(y)) == 1:  # one class: every prediction is that class
        return np.full(len(test_x), y[0])
    varies = (x != x[:1]).any(axis=0)
    if not varies.any():
        varies[0] = True
    clf = make_classifier(kind, seed, trees=trees)
    if kind == "mlp" and len(y) < 200:  # too few rows to hold out a validation share
        clf.set_params(mlpclassifier__early_stopping=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings
        clf.fit(np.asarray(x[:, varies], np.float32), y)
        return clf.predict(np.asarray(test_x[:, varies], np.float32))


def macro_f1(
    y_true: NDArray[np.integer], y_pred: NDArray[np.integer], classes: Sequence[str]
) -> tuple[float, dict[str, float]]:
    """Macro-F1 over the classes present in ``y_true`` and the F1 of each of them."""
    from sklearn.metrics import f1_score

    present = np.unique(y_true)
    if not len(present):
        return float("nan"), {}
    f1 = f1_score(y_true, y_pred, labels=present, average=None, zero_division=0)
    per = {classes[int(c)]: float(v) for c, v in zip(present, f1, strict=True)}
    return float(np.mean(f1)), per


def _subsample(xy: XY, counts: Mapping[int, int], rng: np.random.Generator) -> XY:
    """At most ``counts[c]`` rows of each class ``c`` (random, without replacement)."""
    x, y = xy
    keep = []
    for c, n in counts.items():
        rows = np.flatnonzero(y == c)
        n = min(int(n), len(rows))
        if n > 0:
            keep.append(rng.choice(rows, n, replace=False))
    idx = np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
    return x[idx], y[idx]


def _counts(y: NDArray[np.integer]) -> dict[int, int]:
    vals, n = np.unique(y, return_counts=True)
    return {int(v): int(k) for v, k in zip(vals, n, strict=True)}


def _cap(xy: XY, rng: np.random.Generator) -> XY:
    y = xy[1]
    if len(y) <= MAX_TRAIN_ROWS:
        return xy
    share = MAX_TRAIN_ROWS / len(y)
    return _subsample(xy, {c: max(1, int(n * share)) for c, n in _counts(y).items()}, rng)


def _join(a: XY, b: XY) -> XY:
    return np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])


def utility_figures(
    train: Mapping[str, XY],
    synthetic: Mapping[str, XY],
    test: Mapping[str, XY],
    classes: Sequence[str],
    *,
    seed: int = 0,
    classifiers: Sequence[str] = CLASSIFIERS,
    cases: Sequence[str] = ("trtr", "tstr", "augment", "imbalance"),
    trees: int = 100,
) -> dict[str, float]:
    """Utility figures (see the module docstring) for every feature set of ``test`` (the
    mappings hold ``(x, y)`` per feature set name, rows labelled by index into ``classes``).

    Keys: ``<case>.<classifier>.<features>.macro_f1`` (and ``.f1.<class>`` for trtr and tstr,
    ``.minority_f1`` for the imbalance cases), ``tstr_ratio`` and the headline
    ``<case>.macro_f1`` (random forest on ``flow`` features, when computed).
    """
    out: dict[str, float] = {}
    for feat, (tx, ty) in test.items():
        if feat not in train or feat not in synthetic:
            continue
        for kind in classifiers:
            rng = np.random.default_rng(seed)
            real = _cap(train[feat], rng)
            syn = synthetic[feat]
            real_counts = _counts(real[1])
            runs: dict[str, XY] = {}
            if "trtr" in cases:
                runs["trtr"] = real
            if "tstr" in cases:
                runs["tstr"] = _subsample(syn, real_counts, rng)
            if "augment" in cases:
                for p in AUGMENT_SHARES:
                    extra = {c: round(n * p / 100) for c, n in real_counts.items()}
                    runs[f"augment.{p}"] = _join(real, _subsample(syn, extra, rng))
            minority: list[int] = []
            if "imbalance" in cases and len(real_counts) >= 2:
                minority = _minority(real_counts)
                cut_counts = {
                    c: (max(1, round(0.1 * n)) if c in minority else n)
                    for c, n in real_counts.items()
                }
                cut = _subsample(real, cut_counts, rng)
                top = {c: real_counts[c] - cut_counts[c] for c in minority}
                runs["imbalance.real"] = cut
                runs["imbalance.augmented"] = _join(cut, _subsample(syn, top, rng))
            for case, xy in runs.items():
                key = f"{case}.{kind}.{feat}"
                if not len(xy[1]):
                    out[f"{key}.macro_f1"] = float("nan")
                    continue
                pred = _fit_predict(kind, xy, tx, seed, trees)
                score, per = macro_f1(ty, pred, classes)
                out[f"{key}.macro_f1"] = score
                if case in ("trtr", "tstr"):
                    for c, v in per.items():
                        out[f"{key}.f1.{c}"] = v
                if case.startswith("imbalance"):
                    names = [classes[c] for c in minority if classes[c] in per]
                    out[f"{key}.minority_f1"] = (
                        float(np.mean([per[c] for c in names])) if names else float("nan")
                    )
            if minority:
                a = out.get(f"imbalance.real.{kind}.{feat}.minority_f1", float("nan"))
                b = out.get(f"imbalance.augmented.{kind}.{feat}.minority_f1", float("nan"))
                out[f"imbalance.{kind}.{feat}.minority_gain"] = b - a
    head = "rf.flow"
    for key in list(out):
        if f".{head}." in key:
            case, rest = key.split(f".{head}.", 1)
            out.setdefault(f"{case}.{rest}", out[key])
    if f"imbalance.{head}.minority_gain" in out:
        out["imbalance.minority_gain"] = out[f"imbalance.{head}.minority_gain"]
    tr, ts = out.get("trtr.macro_f1"), out.get("tstr.macro_f1")
    if tr is not None and ts is not None:
        out["tstr_ratio"] = ts / tr if tr > 0 else float("nan")
    return out


def _minority(counts: Mapping[int, int]) -> list[int]:
    """The half of the classes (rounded down, at least one) with the fewest flows."""
    order = sorted(counts, key=lambda c: (counts[c], c))
    return order[: max(1, len(order) // 2)]


#: False positive rates at which repeated discriminators' ROC curves are averaged.
_ROC_GRID = np.linspace(0.0, 1.0, 201)


def discriminator(
    real_x: NDArray[Any],
    other_x: NDArray[Any],
    *,
    seed: int = 0,
    folds: int = 3,
    max_rows: int = 4000,
    trees: int = 100,
    repeats: int = 5,
) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """Cross-validated ROC AUC of a random forest telling ``real_x`` rows from ``other_x`` rows,
    and the ROC curve (false and true positive rates).

    Both sides are balanced: each is cut to ``n`` rows, the smaller side's size (at most
    ``max_rows``). When a side has more rows than that, it is split into up to ``repeats``
    disjoint random subsamples of ``n`` rows, each told from the other side by its own forest:
    the AUC is their mean and the curve their vertical average (true positive rates averaged
    at fixed false positive rates). That is the same figure as one subsample's, with less of
    the luck of which rows were drawn (with 658 real flows against 4,199 synthetic ones, one
    subsample's AUC moved by +-0.03 from draw to draw). Equal rows stay in one fold (grouped
    cross-validation): a row and its copy on the other side would otherwise each be predicted
    from the other, with the opposite label, pushing the AUC of identical data far below 0.5.
    NaN and empty curves when a side has fewer than ``folds`` rows or there are fewer than
    ``folds`` distinct rows."""
    rng = np.random.default_rng(seed)
    n = min(len(real_x), len(other_x), max_rows)
    empty = np.zeros(0, np.float64)
    if n < folds:
        return float("nan"), empty, empty
    draws = []
    for x in (real_x, other_x):
        k = max(1, min(int(repeats), len(x) // n))
        order = rng.permutation(len(x)) if len(x) > n else np.arange(len(x))
        draws.append([np.sort(order[i * n : (i + 1) * n]) for i in range(k)])
    runs = max(len(d) for d in draws)
    real, other = np.asarray(real_x, np.float32), np.asarray(other_x, np.float32)
    aucs, tprs = [], []
    for i in range(runs):
        a = real[draws[0][i % len(draws[0])]]
        b = other[draws[1][i % len(draws[1])]]
        auc, fpr, tpr = _discriminate(a, b, seed + i, folds, trees)
        if np.isnan(auc):
            return float("nan"), empty, empty
        if runs == 1:
            return auc, fpr, tpr
        aucs.append(auc)
        tprs.append(np.interp(_ROC_GRID, fpr, tpr))
    tpr = np.mean(tprs, axis=0)
    tpr[0] = 0.0
    return float(np.mean(aucs)), _ROC_GRID.copy(), tpr


def _discriminate(
    a: NDArray[np.float32], b: NDArray[np.float32], seed: int, folds: int, trees: int
) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """One cross-validated forest on ``a`` (real, label 0) against ``b`` (label 1), same size."""
    from sklearn.metrics import roc_auc_score, roc_curve
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    empty = np.zeros(0, np.float64)
    x = np.concatenate([a, b])
    y = np.r_[np.zeros(len(a), np.int64), np.ones(len(b), np.int64)]
    groups = np.unique(x, axis=0, return_inverse=True)[1].reshape(-1)
    if groups.max() + 1 < folds:
        return float("nan"), empty, empty
    clf = make_classifier("rf", seed, trees=trees)
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prob = cross_val_predict(clf, x, y, groups=groups, cv=cv, method="predict_proba")[:, 1]
    fpr, tpr, _ = roc_curve(y, prob)
    return float(roc_auc_score(y, prob)), fpr.astype(np.float64), tpr.astype(np.float64)
