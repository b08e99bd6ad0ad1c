"""The evaluation report: ``report.json`` (every figure, flat dotted names), ``report.md`` and
PNG plots under ``plots/``, all written atomically into one folder.

JSON values are numbers (NaN, "not measurable here", becomes ``null``) or, for ``meta.*``,
strings. Plots (matplotlib, Agg backend): real versus synthetic histograms and CDFs of packet
size, inter-arrival time, flow length, bytes per flow, TTL, TCP flags and service ports; Zeek
conn_state bars; the discriminator's ROC curves.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from netdiffusion._atomic import atomic_output
from netdiffusion.evaluation._data import EvaluationError
from netdiffusion.evaluation._run import Evaluation

__all__ = [
    "PLOTS",
    "SUMMARY",
    "check_report_dir",
    "format_value",
    "markdown",
    "summary_rows",
    "to_json",
    "write_plots",
    "write_report",
]

#: (label, figure, real-side figure or None, target) rows of the summary table.
SUMMARY: tuple[tuple[str, str, str | None, str], ...] = (
    ("discriminator ROC AUC (flow statistics)", "discriminator.roc_auc", None, "<= 0.65"),
    ("discriminator ROC AUC (nPrint bits)", "discriminator.nprint.roc_auc", None, "-"),
    ("nPrint bit JSD", "fidelity.nprint.jsd", None, "-"),
    ("nPrint bit total variation", "fidelity.nprint.tv", None, "-"),
    ("nPrint bit Hellinger", "fidelity.nprint.hellinger", None, "-"),
    ("flow fields, mean JSD", "fidelity.flow.mean_jsd", None, "-"),
    ("packet fields, mean JSD", "fidelity.packet.mean_jsd", None, "-"),
    ("NetShare fields, mean EMD", "fidelity.netshare.mean_emd", None, "-"),
    ("train-on-real macro-F1 (TRTR)", "utility.trtr.macro_f1", None, "-"),
    ("train-on-synthetic macro-F1 (TSTR)", "utility.tstr.macro_f1", None, ">= 0.9 x TRTR"),
    ("TSTR / TRTR", "utility.tstr_ratio", None, ">= 0.9"),
    ("imbalance: minority F1 gain", "utility.imbalance.minority_gain", None, "> 0"),
    ("exact copies of training flows", "privacy.exact_copies", None, "0"),
    ("exact copies, share of flows", "privacy.exact_copy_rate", None, "-"),
    ("exact copies, flows of 3+ packets", "privacy.exact_copies_long", None, "0"),
    ("exact copies of one-off training flows", "privacy.exact_copies_unique", None, "-"),
    ("header-sequence copies (gaps left out)", "privacy.header_copies", None, "-"),
    ("nearest-neighbour distance ratio", "privacy.nn_distance_ratio", None, "~1"),
    ("membership-inference AUC", "privacy.membership_auc", None, "~0.5"),
    ("tshark error rate", "validity.synthetic.tshark.error_rate",
     "validity.real.tshark.error_rate", "<= real"),
    ("tshark warning rate", "validity.synthetic.tshark.warning_rate",
     "validity.real.tshark.warning_rate", "<= real"),
    ("tshark TCP-analysis rate", "validity.synthetic.tshark.tcp_analysis_rate",
     "validity.real.tshark.tcp_analysis_rate", "<= real"),
    ("tshark malformed rate", "validity.synthetic.tshark.malformed_rate",
     "validity.real.tshark.malformed_rate", "<= real"),
    ("bad L4 checksums", "validity.synthetic.checksum.l4_bad_rate",
     "validity.real.checksum.l4_bad_rate", "0"),
    ("TCP handshakes", "validity.synthetic.tcp.handshake_rate",
     "validity.real.tcp.handshake_rate", "-"),
    ("Zeek conn_state JSD vs real", "validity.zeek.conn_state_jsd", None, "-"),
)  # fmt: skip

#: Plot file (under ``plots/``) -> (title, level, field, kind) for the distribution plots.
PLOTS: dict[str, tuple[str, str, str, str]] = {
    "packet_size.png": ("Packet size (IPv4 total length, bytes)", "packets", "size", "num"),
    "inter_arrival.png": ("Inter-arrival time (log10 s)", "packets", "log_iat", "num"),
    "flow_length.png": ("Flow length (packets)", "flows", "packets", "num"),
    "flow_bytes.png": ("Bytes per flow (log10)", "flows", "bytes", "log"),
    "ttl.png": ("TTL", "packets", "ttl", "cat"),
    "tcp_flags.png": ("TCP flags", "packets", "tcp_flags", "cat"),
    "service_port.png": ("Service port", "flows", "service_port", "cat"),
}


def check_report_dir(path: Path, force: bool) -> None:
    """Refuse a non-empty ``path`` unless ``force`` (before any work is done)."""
    if path.exists() and not path.is_dir():
        raise EvaluationError(f"{path}: exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise EvaluationError(f"{path}: folder is not empty (use --force to overwrite)")


def _clean(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def to_json(figures: dict[str, Any]) -> str:
    """The flat JSON text (keys sorted; NaN as null)."""
    return json.dumps({k: _clean(figures[k]) for k in sorted(figures)}, indent=1) + "\n"


def format_value(v: Any) -> str:
    """A figure for a table: ``n/a`` for missing or NaN, integers as they are, else 4 digits."""
    v = _clean(v)
    if v is None:
        return "n/a"
    if isinstance(v, bool | int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def summary_rows(ev: Evaluation) -> list[tuple[str, str, str, str, str]]:
    """(label, synthetic, real resample floor, independent marginals or real, target)."""
    f = ev.figures
    rows = []
    for label, key, real_key, target in SUMMARY:
        if key not in f and (real_key is None or real_key not in f):
            continue
        floor = f.get(real_key) if real_key else f.get(f"baselines.real_resample.{key}")
        marg = f.get(f"baselines.independent_marginals.{key}")
        if key == "utility.tstr.macro_f1":
            floor = f.get("baselines.real_resample.utility.tstr.macro_f1")
        rows.append((label, format_value(f.get(key)), format_value(floor),
                     format_value(marg), target))  # fmt: skip
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def markdown(ev: Evaluation, plots: Sequence[str] = ()) -> str:
    """The readable report."""
    f = ev.figures
    fv = format_value
    lines = [
        "# netdiffusion evaluation report",
        "",
        f"Synthetic side: `{f.get('meta.synthetic')}`; classes: {', '.join(ev.classes)}; "
        f"seed {f.get('meta.seed')}.",
        f"Real reference: {fv(f.get('counts.real.flows'))} flows "
        f"({fv(f.get('counts.real.packets'))} packets); real resample (held-out files): "
        f"{fv(f.get('counts.real_resample.flows'))} flows; synthetic: "
        f"{fv(f.get('counts.synthetic.flows'))} flows; model training set: "
        f"{fv(f.get('counts.train.flows'))} flows.",
        "",
        "How to read it: `docs/evaluation.md`. Every figure is measured against the real "
        "reference flows. **real resample** is real traffic from other capture files measured "
        "the same way: the real-versus-real floor (for validity rows: the real captures' own "
        "rate). **marginals** resamples each field independently from the training marginals.",
        "",
        "## Summary",
        "",
    ]
    lines += _table(["figure", "synthetic", "real resample / real", "marginals", "target"],
                    summary_rows(ev))  # fmt: skip
    lines += ["", "## Fidelity per class", ""]
    rows = []
    for c in ev.classes:
        k = f"fidelity.per_class.{c}"
        floor_auc = f"baselines.real_resample.discriminator.per_class.{c}.roc_auc"
        rows.append([c, fv(f.get(f"{k}.nprint.jsd")),
                     fv(f.get(f"baselines.real_resample.{k}.nprint.jsd")),
                     fv(f.get(f"{k}.flow.mean_jsd")),
                     fv(f.get(f"baselines.real_resample.{k}.flow.mean_jsd")),
                     fv(f.get(f"discriminator.per_class.{c}.roc_auc")),
                     fv(f.get(floor_auc))])  # fmt: skip
    lines += _table(["class", "nPrint JSD", "floor", "flow mean JSD", "floor",
                     "discriminator AUC", "floor"], rows)  # fmt: skip
    lines += ["", "## Fields (JSD in bits; EMD normalised to [0, 1])", ""]
    rows = []
    for key in sorted(k for k in f if k.startswith("fidelity.") and k.count(".") == 3
                      and k.split(".")[1] in ("flow", "packet")):  # fmt: skip
        base = key[len("fidelity.") :]
        rows.append([base, fv(f[key]), fv(f.get(f"baselines.real_resample.{key}")),
                     fv(f.get(f"baselines.independent_marginals.{key}"))])  # fmt: skip
    lines += _table(["field.metric", "synthetic", "real resample", "marginals"], rows)
    lines += ["", "## ML utility (macro-F1 on the real reference flows)", ""]
    rows = []
    cases = ["trtr", "tstr", *(f"augment.{p}" for p in (10, 25, 50, 100)), "imbalance.real",
             "imbalance.augmented"]  # fmt: skip
    for case in cases:
        cells = []
        for clf in ("rf", "mlp"):
            for feat in ("flow", "nprint"):
                cells.append(fv(f.get(f"utility.{case}.{clf}.{feat}.macro_f1")))
        rows.append([case, *cells])
    lines += _table(["case", "rf flow", "rf nprint", "mlp flow", "mlp nprint"], rows)
    mf = [(c, f.get(f"utility.imbalance.{c}.minority_f1")) for c in ("real", "augmented")]
    lines += ["", "Imbalance case, minority-class F1 (rf, flow statistics): "
              + ", ".join(f"{c} {fv(v)}" for c, v in mf), ""]  # fmt: skip
    lines += ["## Validity (per packet unless noted)", ""]
    rows = []
    for key in sorted(k for k in f if k.startswith("validity.real.")):
        sub = key[len("validity.real.") :]
        rows.append([sub, fv(f[key]), fv(f.get(f"validity.synthetic.{sub}"))])
    for key in sorted(k for k in f if k.startswith("validity.synthetic.")):
        sub = key[len("validity.synthetic.") :]
        if f"validity.real.{sub}" not in f:
            rows.append([sub, "n/a", fv(f[key])])
    lines += _table(["figure", "real", "synthetic"], rows)
    if ev.tcp_analysis:
        lines += ["", "TCP-analysis flags by kind (tshark):", ""]
        kinds = sorted(set().union(*ev.tcp_analysis.values()))
        lines += _table(["kind", "real", "synthetic"], [
            [k, str(ev.tcp_analysis.get("real", Counter())[k]),
             str(ev.tcp_analysis.get("synthetic", Counter())[k])] for k in kinds])  # fmt: skip
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{p}](plots/{p})" for p in plots]
    if ev.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in ev.notes]
    return "\n".join(lines) + "\n"


def _save(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    with atomic_output(path) as fh:
        fh.write(buf.getvalue())


def write_plots(ev: Evaluation, folder: Path) -> list[str]:
    """Write every plot into ``folder``; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    real, syn = ev.sources.get("real"), ev.sources.get("synthetic")
    if real is not None and syn is not None:
        for name, (title, level, fld, kind) in PLOTS.items():
            a = getattr(real, level).columns[fld]
            b = getattr(syn, level).columns[fld]
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            if kind == "log":
                a, b = np.log10(1 + a), np.log10(1 + b)
            fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
            if kind == "cat":
                _bars(ax1, a, b)
            elif len(a) or len(b):
                both = np.concatenate([a, b])
                bins = np.histogram_bin_edges(both, bins=40)
                ax1.hist(a, bins=bins, alpha=0.55, density=True, label="real")
                ax1.hist(b, bins=bins, alpha=0.55, density=True, label="synthetic")
            ax1.set_title(title)
            ax1.legend()
            for vals, lab in ((a, "real"), (b, "synthetic")):
                if len(vals):
                    xs = np.sort(vals)
                    ax2.step(xs, np.arange(1, len(xs) + 1) / len(xs), where="post", label=lab)
            ax2.set_title("CDF")
            ax2.set_ylim(0, 1)
            ax2.legend()
            fig.tight_layout()
            _save(fig, folder / name)
            plt.close(fig)
            names.append(name)
    if ev.conn_state:
        fig, ax = plt.subplots(figsize=(8, 3.6))
        states = sorted(set().union(*ev.conn_state.values()))
        x = np.arange(len(states))
        for k, side in enumerate(("real", "synthetic")):
            cnt = ev.conn_state.get(side, Counter())
            tot = max(sum(cnt.values()), 1)
            ax.bar(x + 0.4 * k - 0.2, [cnt[s] / tot for s in states], 0.4, label=side)
        ax.set_xticks(x, states)
        ax.set_title("Zeek conn_state (share of connections)")
        ax.legend()
        fig.tight_layout()
        _save(fig, folder / "conn_state.png")
        plt.close(fig)
        names.append("conn_state.png")
    if ev.roc:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        for name, (fpr, tpr) in ev.roc.items():
            auc = ev.figures.get(
                "discriminator.roc_auc" if name == "synthetic"
                else f"baselines.{name}.discriminator.roc_auc"
            )  # fmt: skip
            if len(fpr):
                ax.plot(fpr, tpr, label=f"{name} (AUC {format_value(auc)})")
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("Real vs other: discriminator ROC")
        ax.legend(fontsize=8)
        fig.tight_layout()
        _save(fig, folder / "roc.png")
        plt.close(fig)
        names.append("roc.png")
    return names


def _bars(ax: Any, a: np.ndarray, b: np.ndarray, top: int = 15) -> None:
    ca = Counter(np.rint(a).astype(np.int64).tolist())
    cb = Counter(np.rint(b).astype(np.int64).tolist())
    keys = [k for k, _ in (ca + cb).most_common(top)]
    x = np.arange(len(keys))
    for k, (cnt, lab) in enumerate(((ca, "real"), (cb, "synthetic"))):
        tot = max(sum(cnt.values()), 1)
        ax.bar(x + 0.4 * k - 0.2, [cnt[v] / tot for v in keys], 0.4, label=lab)
    ax.set_xticks(x, [str(v) for v in keys], rotation=60, fontsize=7)


def write_report(ev: Evaluation, folder: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write ``report.json``, ``report.md`` and ``plots/*.png`` into ``folder``; returns the
    Markdown path."""
    out = Path(folder)
    check_report_dir(out, force)
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(ev, out / "plots")
    with atomic_output(out / "report.json") as fh:
        fh.write(to_json(ev.figures).encode())
    md = out / "report.md"
    with atomic_output(md) as fh:
        fh.write(markdown(ev, plots).encode())
    return md
