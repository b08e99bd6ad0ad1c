"""Build the bundled default model from the IoT SENTINEL captures in ../shared/data.

Eight device classes that together cover TCP, UDP and ICMP traffic (no near-identical sibling
pairs: of HueBridge/HueSwitch and D-LinkDoorSensor/D-LinkHomeHub, which share a MAC, at most
one is taken). About a fifth of each
class's capture files (every fifth file in name order, from the third) are held out entirely, for
evaluation on files the model never saw; the rest are split again by file into training and
validation. The model directory lands in core/model/default/ (shipped in the package) with its
model card; `netdiffusion generate` without --model uses it.

    python scripts/build_default_model.py                 # CUDA when present, else CPU
    python scripts/build_default_model.py --steps 200 --batch-size 64 --out /tmp/m  # a quick trial

The defaults are the bundled model's recipe: 4 transformer blocks of width 128, inter-arrival
times also as 14 Gray-coded bits, 4,568 steps of 2,048 flows at learning rate 0.003. The bundled
weights came from one NVIDIA H100 (about 5 minutes, sharing the GPU with three other trial runs;
a time limit set the step count); on a 2-core CPU the same recipe takes many hours.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netdiffusion import Traffic

ROOT = Path(__file__).resolve().parents[1]
CLASSES = (
    "D-LinkCam",
    "D-LinkSwitch",
    "EdnetGateway",
    "HueBridge",
    "Lightify",
    "TP-LinkPlugHS110",
    "WeMoLink",
    "Withings",
)
MAX_PACKETS = 32


def split_files(captures: Path) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files) of the chosen classes."""
    train: list[Path] = []
    held_out: list[Path] = []
    for name in CLASSES:
        files = sorted((captures / name).glob("*.pcap"))
        if not files:
            raise SystemExit(f"error: no captures for class {name} under {captures}")
        for i, path in enumerate(files):
            (held_out if i % 5 == 2 else train).append(path)
    return train, held_out


#: Loss weights of the bundled model: the fields that decide a flow's structure (who sends,
#: when, how much, which flags) weigh more than the other header bits.
DEFAULT_WEIGHTS = "direction=16,iat=8,ip_length=6,tcp_offset=3,tcp_flags=6,l4_kind=2,iat_bits=4"


def _weights(spec: str) -> dict[str, float]:
    """``name=value,...`` as a dict (empty string: none)."""
    out = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: --feature-weights item {item!r} is not name=value")
        out[name.strip()] = float(value)
    return out


def main(argv: list[str] | None = None) -> int:
    """Train the bundled model; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "core" / "model" / "default")
    ap.add_argument("--steps", type=int, default=4568)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--prediction-type",
        default="sample",
        choices=["sample", "v_prediction", "epsilon"],
        help="what the denoiser predicts; x0 ('sample') gave far more faithful bits than "
        "v_prediction in our measurements",
    )
    ap.add_argument(
        "--feature-weights",
        default=DEFAULT_WEIGHTS,
        help="loss weights of feature groups (see netdiffusion.model.features.WEIGHT_GROUPS; "
        "'' for equal weights); the bundled model's: %(default)s",
    )
    ap.add_argument(
        "--iat-bits",
        type=int,
        default=14,
        help="Gray-coded inter-arrival bits of the layout (0: none); the bundled model's: "
        "%(default)s",
    )
    ap.add_argument("--checkpoint-every", type=int, default=1000)
    ap.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="seconds: cut --steps to what fits (the model card records the steps done)",
    )
    ap.add_argument("--resume", action="store_true")
    ap.add_argument(
        "--statistics-only",
        action="store_true",
        help="do not train: recompute what the model at --out keeps beside its weights from the "
        "training files, as training does (fingerprints of one-off flows, long flows' gap "
        "quantiles, the sampler settings), and its model card",
    )
    args = ap.parse_args(argv)

    from netdiffusion.inputs import read_flows
    from netdiffusion.labels import label_counts
    from netdiffusion.model import train_model

    captures = args.data / "iot-sentinel" / "captures"
    train_files, held_out = split_files(captures)
    traffic, summary, _ = read_flows(train_files, labels="folder")
    if summary.refused:
        print(f"error: refused captures: {summary.refused}", file=sys.stderr)
        return 1
    if args.statistics_only:
        return _statistics_only(args.out, traffic)
    print(f"training on {len(train_files)} files: {label_counts(traffic)}")
    config = {k: v for k, v in {"width": args.width, "layers": args.layers}.items() if v}
    result = train_model(
        traffic,
        args.out,
        max_packets=MAX_PACKETS,
        config=config or None,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        time_limit=args.time_limit,
        iat_bits=args.iat_bits,
        prediction_type=args.prediction_type,
        keep_checkpoint=False,
        feature_weights=_weights(args.feature_weights),
        name="netdiffusion-default-iot8",
    )
    held = {
        "source": "iot-sentinel/captures",
        "held_out_files": [str(p.relative_to(captures)) for p in held_out],
        "train_files": [str(p.relative_to(captures)) for p in train_files],
        "rule": "per class, files sorted by name; index % 5 == 2 held out, never seen in training",
    }
    (args.out / "heldout.json").write_text(json.dumps(held, indent=2) + "\n")
    recipe = (
        f"--steps {args.steps} --batch-size {args.batch_size} --lr {args.lr} --width "
        f"{args.width} --layers {args.layers} --iat-bits {args.iat_bits}"
    )
    _card_held_out(args.out, len(held_out), held["rule"], recipe)
    print(
        f"model written to {args.out}: {result.steps} steps, loss {result.final_loss:.4f}, "
        f"validation loss {result.val_loss}, {result.seconds:.0f} s"
    )
    return 0


def _card_held_out(out: Path, n_held: int, rule: str, recipe: str) -> None:
    """Append the held-out files and the recipe to the model card."""
    with (out / "README.md").open("a") as card:
        card.write(
            "\n## Held-out capture files\n\n"
            f"{n_held} capture files ({rule}) are listed in `heldout.json`; "
            "evaluate fidelity on them. Built by `python scripts/build_default_model.py` "
            f"(`{recipe}`).\n"
        )


def _statistics_only(out: Path, traffic: Traffic) -> int:
    """Recompute the fingerprints and gap quantiles of the built model ``out`` from its training
    flows, as training does, set its sampler settings to training's defaults (its default steps
    and guidance kept), and rewrite its model card (its held-out section kept as it is)."""
    from netdiffusion.encoding import encode_flows
    from netdiffusion.model.copies import training_fingerprints, write_fingerprints
    from netdiffusion.model.gaps import gap_quantiles
    from netdiffusion.model.modeldir import read_meta, write_meta
    from netdiffusion.model.schedule import DEFAULT_MIN_LOG_SNR, DEFAULT_SOLVER_ORDER

    meta = read_meta(out)
    card = (out / "README.md").read_text()
    tail = card[card.find("\n## Held-out capture files") :] if "## Held-out" in card else ""
    max_packets = int(meta["layout"]["max_packets"])
    ids = training_fingerprints(traffic, max_packets)
    write_fingerprints(out, ids)
    meta["data"]["fingerprints"] = len(ids)
    entry = gap_quantiles(encode_flows(traffic, max_packets=max_packets))
    meta["gap_quantiles"] = entry
    meta["sampling"].update(solver_order=DEFAULT_SOLVER_ORDER, min_log_snr=DEFAULT_MIN_LOG_SNR)
    write_meta(out, meta)
    with (out / "README.md").open("a") as fh:
        fh.write(tail)
    print(
        f"fingerprints of {len(ids)} one-off training flows, gap quantiles of "
        f"{len(entry['quantiles'])} classes and sampler settings written to {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
