"""The model directory: everything a trained model is, in plain files (no pickle anywhere).

::

    MODEL_DIR/
      config.json                          denoiser hyperparameters (diffusers ConfigMixin)
      diffusion_pytorch_model.safetensors  EMA weights (diffusers ModelMixin, safetensors)
      scheduler/scheduler_config.json      the training noise schedule (DDPMScheduler)
      netdiffusion.json                    format, feature layout, classes, per-class statistics,
                                           training and validation figures, the data used
      README.md                            model card written from netdiffusion.json
      fingerprints.safetensors             one-off training flows' identities (never copied)

``netdiffusion.json`` keys: ``format`` (``"netdiffusion-model"``), ``version``, ``layout``
(:meth:`FeatureLayout.to_json`), ``classes`` (names, in label order), ``class_flows`` (training
flows per class), ``class_proportions`` (their shares: the default mix when generating),
``lengths`` (per class, flow counts by length 1..max_packets), ``flow_gap_ns`` (mean gap between
flow starts in the training captures), ``gap_quantiles`` (per class, the training gaps of long
flows, :mod:`netdiffusion.model.gaps`), ``repair_stats`` (``ttl_modes`` and ``service_ports``
per class, for :class:`~netdiffusion.repair.RepairStats`), ``prediction_type``, ``sampling``
(default steps and guidance, solver order and where the steps start in log-SNR,
:mod:`netdiffusion.model.schedule`), ``training`` (steps, batch size, learning rate, seed,
final loss, time, devices), ``validation`` (loss overall and per class on held-out capture
files) and ``data`` (capture files used for training and for validation, packet and flow counts, and
``fingerprints``: how many identities of one-off training flows ``fingerprints.safetensors``
holds).

Loading never reaches for a network: ``HF_HUB_OFFLINE=1`` is set before diffusers is imported,
weights come from the local directory only (``local_files_only``, ``use_safetensors``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from netdiffusion._atomic import atomic_output
from netdiffusion.model._errors import ModelError
from netdiffusion.model.schedule import DEFAULT_MIN_LOG_SNR, DEFAULT_SOLVER_ORDER

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "META_FILE",
    "WEIGHTS_FILE",
    "model_card",
    "read_meta",
    "write_meta",
]

FORMAT = "netdiffusion-model"
FORMAT_VERSION = 1
META_FILE = "netdiffusion.json"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
SCHEDULER_DIR = "scheduler"


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``netdiffusion.json`` of the model directory ``path``; :class:`ModelError` (one line)
    when ``path`` is not a model directory this version can load."""
    root = Path(path)
    if not root.exists():
        raise ModelError(f"{root}: no such model directory")
    if not root.is_dir():
        raise ModelError(f"{root}: not a model directory (a model is a folder with {META_FILE})")
    meta_path = root / META_FILE
    if not meta_path.is_file():
        raise ModelError(f"{root}: not a netdiffusion model (no {META_FILE})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{meta_path}: unreadable ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"{root}: not a netdiffusion model ({META_FILE} has another format)")
    if meta.get("version") != FORMAT_VERSION:
        raise ModelError(
            f"{root}: model format version {meta.get('version')!r}, "
            f"this netdiffusion reads version {FORMAT_VERSION}"
        )
    for name in ("config.json", WEIGHTS_FILE, f"{SCHEDULER_DIR}/scheduler_config.json"):
        if not (root / name).is_file():
            raise ModelError(f"{root}: incomplete model directory (no {name})")
    return meta


def write_meta(path: str | os.PathLike[str], meta: dict[str, Any]) -> None:
    """Write ``netdiffusion.json`` and the model card ``README.md`` into ``path``."""
    root = Path(path)
    with atomic_output(root / META_FILE) as fh:
        fh.write(json.dumps(meta, indent=1, sort_keys=False).encode())
    with atomic_output(root / "README.md") as fh:
        fh.write(model_card(meta).encode())


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def model_card(meta: dict[str, Any]) -> str:
    """The model card (Markdown) for ``meta``."""
    tr = meta.get("training", {})
    sampling = meta.get("sampling", {})
    val = meta.get("validation", {})
    data = meta.get("data", {})
    cfg = meta.get("denoiser", {})
    layout = meta.get("layout", {})
    lines = [
        f"# netdiffusion model: {meta.get('name', 'unnamed')}",
        "",
        "A class-conditional denoising diffusion model of network flows (nPrint header bits,",
        "direction and inter-arrival time per packet), trained from scratch with netdiffusion.",
        "Generate with `netdiffusion generate --model DIR` or",
        "`netdiffusion.model.load_model(DIR).generate(...)`.",
        "",
        "## Model",
        "",
        f"- denoiser: packet transformer"
        f"{', self-conditioned' if cfg.get('self_condition') else ''}, "
        f"width {cfg.get('width')}, {cfg.get('layers')} layers, "
        f"{cfg.get('heads')} heads, MLP ratio {cfg.get('mlp_ratio')}, "
        f"{meta.get('parameters', '?')} parameters",
        f"- features per packet: {len(layout.get('active_bits', []))} active header bits + "
        "L4 block, direction, inter-arrival time"
        + (
            f" (also as {layout['iat_bits']} Gray-coded bits)"
            if layout.get("iat_bits") and int(layout.get("format", 1)) >= 2
            else ""
        ),
        f"- flows of up to {layout.get('max_packets')} packets; prediction "
        f"`{meta.get('prediction_type')}`; DDPM training, DPM-Solver++ sampling (order "
        f"{sampling.get('solver_order', DEFAULT_SOLVER_ORDER)}; {sampling.get('steps')} steps by "
        f"default: pure noise, then uniform in log-SNR from "
        f"{sampling.get('min_log_snr', DEFAULT_MIN_LOG_SNR)}; "
        f"guidance {sampling.get('guidance')})",
        f"- FLOPs per generated packet and denoising step: {meta.get('flops_per_packet_step')}",
        "",
        "## Training",
        "",
        f"- steps {tr.get('steps')}, batch {tr.get('batch_size')} flows x "
        f"{tr.get('processes', 1)} processes, learning rate {tr.get('lr')}, seed {tr.get('seed')}, "
        f"class dropout {tr.get('class_dropout')}, EMA {tr.get('ema_decay')}"
        + (
            "; loss weights "
            + ", ".join(f"{k} {v:g}" for k, v in tr["feature_weights"].items())
            + " (other features 1)"
            if tr.get("feature_weights")
            else ""
        ),
        f"- final training loss {_fmt(tr.get('final_loss'))}; "
        f"{float(tr.get('seconds') or 0):.0f} s on "
        f"{tr.get('device')}",
        "",
        "## Data",
        "",
        f"- {data.get('train_flows')} training flows ({data.get('train_packets')} packets) from "
        f"{len(data.get('train_files', []))} capture files; {data.get('val_flows')} validation "
        f"flows from {len(data.get('val_files', []))} held-out files (split by capture file)",
        "",
        "| class | training flows | share | validation loss |",
        "| --- | ---: | ---: | ---: |",
    ]
    per_class = val.get("per_class", {})
    props = meta.get("class_proportions", {})
    for name in meta.get("classes", []):
        loss = per_class.get(name)
        lines.append(
            f"| {name} | {meta.get('class_flows', {}).get(name, 0)} | "
            f"{props.get(name, 0.0):.3f} | {'-' if loss is None else f'{loss:.4f}'} |"
        )
    lines += [
        "",
        f"Validation loss (all held-out flows): {_fmt(val.get('loss', '-'))}.",
        "",
        "## Files",
        "",
        "`config.json` and `diffusion_pytorch_model.safetensors` (EMA weights), "
        "`scheduler/scheduler_config.json`, `netdiffusion.json` (feature layout, classes, "
        "per-class flow lengths, long flows' gap quantiles and TTL modes for the repair engine, "
        "figures above)"
        + (
            f", `fingerprints.safetensors` (the identities of the {data['fingerprints']} "
            "training flows seen once: generation changes a generated flow equal to one of them "
            "by a few microseconds, see `netdiffusion.model.copies`; they also tell whether a "
            "given flow was in the training data)"
            if data.get("fingerprints")
            else ""
        )
        + ". No file is a pickle.",
        "",
    ]
    return "\n".join(lines)
