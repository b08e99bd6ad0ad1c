"""``netdiffusion train``: learn a class-conditional diffusion model of labelled flows."""

from __future__ import annotations

from pathlib import Path

import click

from netdiffusion.commands.options import label_options
from netdiffusion.inputs import read_flows


@click.command("train")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Model directory to write (config, safetensors weights, scheduler, model card).",
)
@label_options
@click.option(
    "--max-packets",
    type=click.IntRange(min=2, max=1024),
    default=32,
    show_default=True,
    help="Packets per flow the model learns (longer flows are cut).",
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=2000, show_default=True, help="Optimizer steps."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Flows per step (per process under accelerate launch).",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=1e-3,
    show_default=True,
    help="Learning rate (AdamW).",
)
@click.option(
    "--width",
    type=click.IntRange(min=8),
    default=None,
    help="Transformer width (default: the built-in small configuration).",
)
@click.option("--layers", type=click.IntRange(min=1), default=None, help="Transformer blocks.")
@click.option(
    "--val-file",
    "val_files",
    multiple=True,
    help="Capture file (name or path) to hold out for validation; repeatable. "
    "Default: about 10% of each class's files. Flows of one file never straddle.",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Write MODEL_DIR/checkpoint every N steps (0: never).",
)
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Train for at most this many seconds: after 120 steps (100 timed), --steps is cut to "
    "what fits and the learning rate anneals over that; the model card records the steps done.",
)
@click.option(
    "--iat-bits",
    type=click.IntRange(min=0, max=24),
    default=14,
    show_default=True,
    help="Also learn each inter-arrival time as this many Gray-coded bits (timers to about "
    "0.1 %); 0: the continuous value alone.",
)
@click.option(
    "--no-fingerprints",
    is_flag=True,
    help="Keep no fingerprints of the training flows in the model directory. By default it "
    "holds those of the flows seen once, so that generation never emits a copy of one; they "
    "also tell whether a given flow was in the training data, so leave them out of a model "
    "trained on private captures that you will share.",
)
@click.option("--resume", is_flag=True, help="Continue from MODEL_DIR/checkpoint.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for reproducibility.")
def train_command(
    inputs: tuple[Path, ...],
    output: Path,
    labels: str | None,
    label_column: str,
    max_packets: int,
    steps: int,
    batch_size: int,
    lr: float,
    width: int | None,
    layers: int | None,
    val_files: tuple[str, ...],
    checkpoint_every: int,
    time_limit: float | None,
    iat_bits: int,
    no_fingerprints: bool,
    resume: bool,
    seed: int,
) -> None:
    """Train a model on INPUTS: captures (files or folders, with --labels) or a dataset from
    `encode`.

    Runs on CUDA with bf16 autocast when a GPU is present, else on the CPU (fp32). Under
    `accelerate launch -m netdiffusion train ...` it trains data-parallel on several GPUs or
    processes. The model directory loads offline and never unpickles anything.

    \b
    Examples:
      netdiffusion train iot-sentinel/captures --labels folder -o model/ --steps 5000
      netdiffusion train data.safetensors -o model/ --resume
      netdiffusion train data.safetensors -o model/ --steps 100000 --time-limit 3600
      CUDA_VISIBLE_DEVICES= accelerate launch --multi_gpu --num_processes 2 \\
          -m netdiffusion train data.safetensors -o model/
    """
    from netdiffusion.model import train_model

    is_dataset = len(inputs) == 1 and inputs[0].suffix == ".safetensors"
    if labels is None and not is_dataset:
        raise click.UsageError("captures need --labels folder or --labels FILE.csv")
    traffic, _, _ = read_flows(
        inputs, labels=labels, label_column=label_column,
        on_refused=lambda msg: click.echo(f"warning: {msg}", err=True),
    )  # fmt: skip
    if traffic.n_flows == 0 or not traffic.classes:
        raise click.ClickException(f"{inputs[0]}: no labelled flows to train on")
    config = {k: v for k, v in {"width": width, "layers": layers}.items() if v is not None}
    result = train_model(
        traffic,
        output,
        max_packets=max_packets,
        config=config or None,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        val_files=list(val_files) or None,
        checkpoint_every=checkpoint_every,
        resume=resume,
        time_limit=time_limit,
        iat_bits=iat_bits,
        fingerprints=not no_fingerprints,
    )
    val = "n/a" if result.val_loss is None else f"{result.val_loss:.4f}"
    click.echo(
        f"model written to {output}: {result.steps} steps on {result.train_flows} flows "
        f"({result.val_flows} held out), loss {result.final_loss:.4f}, validation loss {val}, "
        f"{result.seconds:.0f} s"
    )
