"""``netdiffusion evaluate``: fidelity, validity, ML utility and privacy of synthetic traffic."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from netdiffusion.cli import user_errors
from netdiffusion.commands.options import device_option, label_options

#: Headline figures printed at the end: (label, figure, floor figure).
_HEADLINE = (
    ("discriminator ROC AUC", "discriminator.roc_auc",
     "baselines.real_resample.discriminator.roc_auc"),
    ("nPrint bit JSD", "fidelity.nprint.jsd", "baselines.real_resample.fidelity.nprint.jsd"),
    ("flow fields mean JSD", "fidelity.flow.mean_jsd",
     "baselines.real_resample.fidelity.flow.mean_jsd"),
    ("TSTR macro-F1", "utility.tstr.macro_f1", "utility.trtr.macro_f1"),
    ("imbalance minority F1 gain", "utility.imbalance.minority_gain", None),
    ("exact copies of training flows", "privacy.exact_copies",
     "baselines.real_resample.privacy.exact_copies"),
    ("exact copies, share of flows", "privacy.exact_copy_rate",
     "baselines.real_resample.privacy.exact_copy_rate"),
    ("membership-inference AUC", "privacy.membership_auc",
     "baselines.real_resample.privacy.membership_auc"),
    ("tshark error rate", "validity.synthetic.tshark.error_rate",
     "validity.real.tshark.error_rate"),
    ("tshark warning rate", "validity.synthetic.tshark.warning_rate",
     "validity.real.tshark.warning_rate"),
    ("tshark TCP-analysis rate", "validity.synthetic.tshark.tcp_analysis_rate",
     "validity.real.tshark.tcp_analysis_rate"),
)  # fmt: skip


@click.command("evaluate")
@click.option(
    "--real",
    "real",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Real captures (files or folders; repeat the option) the model never saw. They are "
    "split by file into a reference half, which every figure is measured against, and a "
    "resample half, the real-versus-real floor.",
)
@click.option(
    "--synthetic",
    "synthetic",
    multiple=True,
    required=True,
    metavar="CAPTURES|MODEL|default",
    help="Synthetic captures (files or folders; repeat the option), or a model directory, or "
    "`default` for the bundled model: a model generates, per class, as many flows as the real "
    "side (or the training set, if larger) holds.",
)
@click.option(
    "--train",
    "train",
    multiple=True,
    type=click.Path(path_type=Path),
    help="The model's training captures: needed for the privacy figures and used as the real "
    "training set of the utility figures. Default for a model with a heldout.json: its "
    "training files, when found beside the --real files.",
)
@label_options
@click.option(
    "--flows",
    type=click.IntRange(min=1),
    default=None,
    help="At most this many synthetic flows per class.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for splits, sampling "
              "and classifiers (same seed, same report).")  # fmt: skip
@click.option(
    "--trees",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Trees per random forest (fewer: faster, noisier figures).",
)
@click.option("--no-tshark", is_flag=True, help="Skip the tshark validity figures.")
@device_option("Where a model samples (default: cuda when present).")
@click.option(
    "-o",
    "--output",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Report folder: report.json, report.md, plots/*.png.",
)
@click.option("--force", is_flag=True, help="Write into a report folder that is not empty.")
@user_errors
def evaluate_command(
    real: tuple[Path, ...],
    synthetic: tuple[str, ...],
    train: tuple[Path, ...],
    labels: str | None,
    label_column: str,
    flows: int | None,
    seed: int,
    trees: int,
    no_tshark: bool,
    device: str | None,
    report_dir: Path,
    force: bool,
) -> None:
    """Measure synthetic traffic against real traffic it was not trained on.

    \b
    Four families of figures, each beside two baselines (the real-versus-real
    floor from held-out real files, and independent per-field marginals):
      fidelity       nPrint bit JSD / total variation / Hellinger; per-field JSD
                     and earth mover's distance; per class; a real-vs-synthetic
                     discriminator (ROC AUC 0.5 = indistinguishable)
      validity       checksums, lengths, TCP state, tshark error/warning/TCP-analysis
                     rates, Zeek conn_state and history, for real and synthetic alike
      ML utility     train-on-real vs train-on-synthetic macro-F1, augmentation with
                     10-100% synthetic, a class-imbalance case (random forest and MLP,
                     on flow statistics and on nPrint bits)
      privacy        exact copies of training flows, nearest-neighbour distance
                     ratio, membership-inference AUC (needs --train)

    Writes report.json (every figure under a dotted name), report.md and plots;
    docs/evaluation.md explains each figure. Flows are labelled by --labels (the
    folder of each capture by default).

    \b
    Examples:
      netdiffusion evaluate --real heldout/ --synthetic default -o report/
      netdiffusion evaluate --real heldout/ --synthetic model/ --train train/ -o report/
      netdiffusion evaluate --real a.pcap --real b.pcap --synthetic gen.pcap \\
          --labels flows.csv --label-column category -o report/
    """
    import importlib.util

    missing = [m for m in ("sklearn", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        raise click.ClickException(
            f"evaluate needs {' and '.join(missing)}: pip install 'netdiffusion[eval]'"
        )
    from netdiffusion.evaluation import STAGES, evaluate, load_sides
    from netdiffusion.evaluation.report import check_report_dir, format_value, write_report

    check_report_dir(report_dir, force)
    with click.progressbar(length=len(STAGES) + 1, label="evaluating", file=sys.stderr) as bar:
        bar.label = "reading"
        sides = load_sides(
            real, synthetic, train=train, labels=labels or "folder", label_column=label_column,
            flows=flows, seed=seed, device=device, on_note=_note,
        )  # fmt: skip
        bar.update(1)

        def step(name: str) -> None:
            bar.label = name
            bar.update(1)
            bar.render_progress()

        ev = evaluate(sides, seed=seed, tshark=not no_tshark, trees=trees, progress=step)
    md = write_report(ev, report_dir, force=force)
    f = ev.figures
    click.echo(
        f"{f['counts.real.flows']} real reference flows, {f['counts.real_resample.flows']} "
        f"real resample flows, {f['counts.synthetic.flows']} synthetic flows, "
        f"{len(ev.classes)} classes"
    )
    click.echo(f"{'figure':34s} {'synthetic':>10s} {'floor/real':>10s}")
    for label, key, floor in _HEADLINE:
        if key in f:
            other = format_value(f.get(floor)) if floor else "-"
            click.echo(f"{label:34s} {format_value(f[key]):>10s} {other:>10s}")
    click.echo(f"report written to {md} ({len(f)} figures)")


def _note(text: str) -> None:
    click.echo(f"note: {text}", err=True)
