"""Fidelity report of a model on the capture files it never saw (its ``heldout.json``).

For every per-flow and per-packet field of :mod:`netdiffusion.fidelity` it prints the
Jensen-Shannon divergence (bits: 0 identical, 1 disjoint) against the held-out real flows of:

- **model**: flows the model generates, per class as many as the training files hold (so the
  model, the baselines and the floor are measured on samples of the same size);
- **naive**: the naive baseline generator, every per-packet field (size, gap, TTL, flags,
  window, service port, protocol, direction) resampled independently from the class's training
  marginals; at flow level, flows of the class's length marginal made of such packets, their
  flow fields computed from them (``fidelity.independent_packet_flows``);
- **flow marginals** (a reference, not a generator of coherent traffic): every flow field
  resampled independently from the class's training flows, so each one-field flow figure sits at
  the floor by construction; only the discriminator can tell it apart;
- **floor**: the training files themselves (real vs real: how far held-out files are from the
  files the model learned from; no generator can be expected to do better).

Real flows are cut to the model's ``max_packets`` first packets, as generated flows are. Below
the JSD tables, a random-forest discriminator (cross-validated ROC AUC, 0.5 = indistinguishable)
tells each source's flows from the held-out ones on all flow fields together, which the
flow-marginals reference cannot fool. Writes Markdown (``-o``) and prints it.

    python benchmarks/fidelity_report.py --model DIR [--data ../shared/data] [-o docs/fidelity.md]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _read(files: list[Path], classes: list[str], max_packets: int):  # type: ignore[no-untyped-def]
    """(flow fields, packet fields) of ``files`` (labelled by folder), model classes only."""
    from netdiffusion import fidelity as fd
    from netdiffusion.flows import assemble_flows, cap_flows
    from netdiffusion.inputs import read_captures
    from netdiffusion.labels import label_by_folder

    traffic, summary = read_captures(files, keep_payload=False, progress=False)
    if summary.refused:
        sys.exit(f"error: refused captures: {summary.refused}")
    traffic, _ = label_by_folder(assemble_flows(traffic))
    traffic, _ = cap_flows(traffic, max_packets)
    flows, packets = fd.flow_fields(traffic), fd.packet_fields(traffic)
    keep = [c for c in flows.classes if c in classes]
    flows = fd.Fields.concat([flows.of_class(c) for c in keep])
    packets = fd.Fields.concat([packets.of_class(c) for c in keep])
    return flows, packets


def _fmt(v: float) -> str:
    return "n/a" if v != v else f"{v:.4f}"


def _table(
    fields: tuple[str, ...], columns: dict[str, dict[str, float]], *, mark: str = "model"
) -> list[str]:
    """Markdown table: one row per field plus the mean, one column per source."""
    names = list(columns)
    out = ["| field | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for f in [*fields, "mean"]:
        row = []
        for n in names:
            col = columns[n]
            v = float(np.nanmean([col[k] for k in fields])) if f == "mean" else col[f]
            cell = _fmt(v)
            row.append(f"**{cell}**" if f == "mean" else cell)
        out.append(f"| {f} | " + " | ".join(row) + " |")
    return out


def _compare(
    real_f, real_p, sources_f, sources_p
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:  # type: ignore[no-untyped-def]
    from netdiffusion import fidelity as fd

    flow = {n: fd.field_jsd(s, real_f, fd.FLOW_FIELDS) for n, s in sources_f.items()}
    packet = {n: fd.field_jsd(s, real_p, fd.PACKET_FIELDS) for n, s in sources_p.items()}
    return flow, packet


def main(argv: list[str] | None = None) -> int:
    """Build the report; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="model dir (default: bundled)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("-o", "--output", type=Path, default=None)
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (model default)")
    ap.add_argument("--guidance", type=float, default=None, help="guidance (model default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-auc", action="store_true", help="skip the discriminator table")
    args = ap.parse_args(argv)

    from netdiffusion import fidelity as fd
    from netdiffusion.model import DEFAULT_MODEL_DIR, load_model

    model_dir = args.model or Path(DEFAULT_MODEL_DIR)
    held_path = model_dir / "heldout.json"
    if not held_path.is_file():
        sys.exit(f"error: {held_path}: no heldout.json (which files did the model never see?)")
    held = json.loads(held_path.read_text())
    base = args.data / held.get("source", "iot-sentinel/captures")
    held_files = [base / f for f in held["held_out_files"]]
    train_files = [base / f for f in held["train_files"]]
    missing = [str(p) for p in held_files + train_files if not p.is_file()]
    if missing:
        sys.exit(f"error: {missing[0]}: capture listed in heldout.json not found")

    t0 = time.perf_counter()
    model = load_model(model_dir, device="cpu")
    classes = list(model.classes)
    real_f, real_p = _read(held_files, classes, model.max_packets)
    train_f, train_p = _read(train_files, classes, model.max_packets)
    present = [c for c in classes if len(real_f.of_class(c))]

    gen_parts = []
    for i, c in enumerate(present):
        n = max(len(train_f.of_class(c)), 1)
        kw = {"steps": args.steps, "guidance": args.guidance}
        gen_parts.append(model.generate(n, classes=[c], seed=args.seed + i, **kw))
    from netdiffusion._traffic import Traffic

    gen = Traffic.concat(gen_parts)
    gen_f, gen_p = fd.flow_fields(gen), fd.packet_fields(gen)
    counts_f = {c: len(gen_f.of_class(c)) for c in present}
    counts_p = {c: len(gen_p.of_class(c)) for c in present}
    marg_f = fd.independent_marginals(train_f, counts_f, seed=args.seed)
    naive_p = fd.independent_marginals(train_p, counts_p, seed=args.seed)
    naive_f = fd.independent_packet_flows(train_f, train_p, counts_f, seed=args.seed)
    sources_f = {"model": gen_f, "naive": naive_f, "flow marginals": marg_f, "floor": train_f}
    sources_p = {"model": gen_p, "naive": naive_p, "floor": train_p}

    lines = [
        f"# Fidelity of `{model.meta.get('name') or model_dir.name}` on held-out capture files",
        "",
        f"Model `{model_dir}`: classes {', '.join(classes)}; flows of at most "
        f"{model.max_packets} packets; sampling steps {args.steps or model.default_steps}, "
        f"guidance {args.guidance if args.guidance is not None else model.default_guidance}, "
        f"seed {args.seed}.",
        f"Held-out real: {len(held_files)} capture files never seen in training "
        f"({len(real_f)} flows, {len(real_p)} packets); training files: {len(train_files)} "
        f"({len(train_f)} flows). Generated: {len(gen_f)} flows, {len(gen_p)} packets "
        f"(per class as many as the training files hold, so that model, baselines and floor "
        "are measured on samples of the same size). Real flows are cut to their first "
        f"{model.max_packets} packets, as generated ones are.",
        "",
        "Jensen-Shannon divergence in bits (0 = same histogram, 1 = disjoint) of each source "
        "against the held-out real traffic, on the fixed bins of `netdiffusion.fidelity.BINNING`."
        " **model**: generated by the model. **naive**: the naive baseline generator, every "
        "per-packet field (size, gap, TTL, flags, window, port, protocol, direction) resampled "
        "independently from the class's training marginals, flows of the training length "
        "marginal built from such packets. **flow marginals**: a reference, not a generator: "
        "each flow field resampled independently from the training flows, so it sits at the "
        "floor on every one-field flow figure by construction (the discriminator below tells "
        "it apart). **floor**: the training files (real vs real). Lower is better; nothing "
        "should be expected below the floor.",
        "",
        "## Flow level, all classes",
        "",
    ]
    flow_all, packet_all = _compare(real_f, real_p, sources_f, sources_p)
    lines += _table(fd.FLOW_FIELDS, flow_all)
    wins = sum(flow_all["model"][k] < flow_all["naive"][k] for k in fd.FLOW_FIELDS)
    mean_m = float(np.nanmean([flow_all["model"][k] for k in fd.FLOW_FIELDS]))
    mean_n = float(np.nanmean([flow_all["naive"][k] for k in fd.FLOW_FIELDS]))
    lines += [
        "",
        f"Flow level: the model's mean JSD is {_fmt(mean_m)} against the naive baseline's "
        f"{_fmt(mean_n)}; the model is below the naive baseline on {wins} of "
        f"{len(fd.FLOW_FIELDS)} flow fields.",
        "",
        "## Packet level, all classes",
        "",
    ]
    lines += _table(fd.PACKET_FIELDS, packet_all)
    wins_p = sum(packet_all["model"][k] < packet_all["naive"][k] for k in fd.PACKET_FIELDS)
    lines += [
        "",
        f"Packet level (where the naive baseline copies every marginal, so it sits at the floor "
        f"by construction): the model is below it on {wins_p} of {len(fd.PACKET_FIELDS)} fields.",
        "",
        "## Per class (mean JSD over the fields)",
        "",
        "| class | held-out flows | flow: model | flow: naive | flow: flow marginals "
        "| flow: floor | packet: model | packet: naive | packet: floor |",
        "| --- |" + " ---: |" * 8,
    ]
    per_class = {}
    for c in present:
        sf = {n: s.of_class(c) for n, s in sources_f.items()}
        sp = {n: s.of_class(c) for n, s in sources_p.items()}
        per_class[c] = _compare(real_f.of_class(c), real_p.of_class(c), sf, sp)
        fl, pk = per_class[c]
        fm = {n: float(np.nanmean(list(v.values()))) for n, v in fl.items()}
        pm = {n: float(np.nanmean(list(v.values()))) for n, v in pk.items()}
        lines.append(
            f"| {c} | {len(real_f.of_class(c))} | {_fmt(fm['model'])} | "
            f"{_fmt(fm['naive'])} | {_fmt(fm['flow marginals'])} | {_fmt(fm['floor'])} | "
            f"{_fmt(pm['model'])} | {_fmt(pm['naive'])} | {_fmt(pm['floor'])} |"
        )

    if not args.no_auc:
        lines += [
            "",
            "## Discriminator (all flow fields together)",
            "",
            "Cross-validated ROC AUC of a random forest telling each source's flows from the "
            "held-out real flows (0.5 = indistinguishable, 1 = always told apart); both sides "
            "subsampled to the same size (at most 2,000 flows).",
            "",
            "| class | " + " | ".join(sources_f) + " |",
            "| --- |" + " ---: |" * len(sources_f),
        ]
        for c in ["all", *present]:
            real_c = real_f if c == "all" else real_f.of_class(c)
            cells = []
            for s in sources_f.values():
                other = s if c == "all" else s.of_class(c)
                auc = fd.discriminator_auc(real_c, other, seed=args.seed, max_rows=2000)
                cells.append(_fmt(auc))
            lines.append(f"| {c} | " + " | ".join(cells) + " |")

    lines += ["", "## Per class, per field", ""]
    for c in present:
        fl, pk = per_class[c]
        lines += [f"<details><summary>{c}</summary>", "", "Flow level:", ""]
        lines += _table(fd.FLOW_FIELDS, fl)
        lines += ["", "Packet level:", ""]
        lines += _table(fd.PACKET_FIELDS, pk)
        lines += ["", "</details>", ""]
    lines += [
        f"Generated by `python benchmarks/fidelity_report.py` in {time.perf_counter() - t0:.0f} s.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.output is not None:
        from netdiffusion._atomic import atomic_output

        args.output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(args.output) as fh:
            fh.write(text.encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
