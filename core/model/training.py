"""Training the flow diffusion model (accelerate: one code path for CPU, CUDA and many processes).

:func:`train_model` encodes labelled flows, splits them by capture file (flows of one file are
never on both sides), learns the :class:`~netdiffusion.model.features.FeatureLayout` and the
per-class statistics, and trains the :class:`~netdiffusion.model.denoiser.Denoiser` with a
``DDPMScheduler`` (``squaredcos_cap_v2``), classifier-free-guidance class dropout, AdamW, gradient
clipping and EMA weights (the weights saved for sampling). Under ``accelerate launch`` each
process draws its own batches and gradients are averaged (data parallel); CUDA runs in bf16
autocast, CPU in fp32.

Randomness is a pure function of ``(seed, step, process)``: every step makes its own generators,
so a run resumed from a checkpoint continues exactly as the uninterrupted run would. Checkpoints
(``OUT/checkpoint/``) hold the weights, EMA weights and AdamW state as safetensors plus
``state.json``; no pickle.

Run as a module for a small command line (the ``netdiffusion train`` command calls
:func:`train_model` too)::

    python -m netdiffusion.model.training CAPTURES... -o MODEL_DIR [--steps N] [--width W] ...
    accelerate launch --cpu --num_processes 2 -m netdiffusion.model.training CAPTURES... -o DIR
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np
from numpy.typing import NDArray

from netdiffusion._atomic import atomic_output
from netdiffusion._traffic import Traffic
from netdiffusion.encoding import FlowTensor, decode_flows, encode_flows
from netdiffusion.model._errors import ModelError
from netdiffusion.model.copies import FINGERPRINTS_FILE, training_fingerprints, write_fingerprints
from netdiffusion.model.features import DEFAULT_IAT_BITS, FeatureLayout
from netdiffusion.model.gaps import gap_quantiles
from netdiffusion.model.modeldir import (
    FORMAT,
    FORMAT_VERSION,
    SCHEDULER_DIR,
    write_meta,
)
from netdiffusion.model.schedule import DEFAULT_MIN_LOG_SNR, DEFAULT_SOLVER_ORDER
from netdiffusion.repair import RepairStats

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_GUIDANCE",
    "DEFAULT_MAX_PACKETS",
    "DEFAULT_STEPS",
    "TIME_PROBE_STEPS",
    "TIME_WARMUP_STEPS",
    "TrainResult",
    "main",
    "train_model",
]

#: Denoiser hyperparameters used unless overridden (see :mod:`netdiffusion.model.denoiser`).
DEFAULT_CONFIG: dict[str, Any] = {
    "width": 128,
    "layers": 3,
    "heads": 4,
    "mlp_ratio": 2.0,
    "self_condition": True,
}
#: Packets per flow the model covers (99% of IoT SENTINEL flows are shorter).
DEFAULT_MAX_PACKETS = 64
#: Sampling defaults recorded in new models.
DEFAULT_STEPS = 8
DEFAULT_GUIDANCE = 1.0
#: Steps a ``time_limit`` run times (after :data:`TIME_WARMUP_STEPS` untimed ones) before it
#: settles its step count.
TIME_PROBE_STEPS = 100
TIME_WARMUP_STEPS = 20
_CHECKPOINT = "checkpoint"
_VAL_FLOWS_MAX = 2048


@dataclass
class TrainResult:
    """What a training run produced."""

    model_dir: Path
    steps: int
    final_loss: float
    val_loss: float | None
    val_loss_per_class: dict[str, float] = field(default_factory=dict)
    train_flows: int = 0
    val_flows: int = 0
    seconds: float = 0.0
    resumed_from: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)


# -- data preparation ---------------------------------------------------------------------------


@dataclass
class _Data:
    flows: FlowTensor
    files: NDArray[np.int64]  # per flow, index into file_names (-1 unknown)
    file_names: list[str]
    classes: list[str]
    stats: RepairStats
    identities: NDArray[np.uint64]  # of the flows seen once (empty without fingerprints)


def _first_packets(flow: NDArray[np.int64], n_flows: int) -> NDArray[np.int64]:
    first = np.full(n_flows, -1, np.int64)
    idx = np.flatnonzero(flow >= 0)[::-1]
    first[flow[idx]] = idx
    return first


def _subset(ft: FlowTensor, keep: NDArray[np.int64]) -> FlowTensor:
    """Flows ``keep`` of ``ft`` (packed rows copied)."""
    lengths = ft.lengths[keep]
    seg = np.repeat(np.arange(len(keep)), lengths)
    start = np.cumsum(lengths) - lengths
    rows = ft.offsets[keep][seg] + np.arange(int(lengths.sum())) - start[seg]
    offsets = np.zeros(len(keep) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return FlowTensor(
        codes=ft.codes[rows],
        direction=ft.direction[rows],
        iat=ft.iat[rows],
        offsets=offsets,
        label=ft.label[keep],
        flow_id=ft.flow_id[keep],
        start_ns=ft.start_ns[keep],
        max_packets=ft.max_packets,
        classes=list(ft.classes),
        truncated=ft.truncated,
        iat_scale=ft.iat_scale,
        masked_addresses=ft.masked_addresses,
    )


def _prepare(
    data: Traffic | FlowTensor,
    max_packets: int,
    flow_files: NDArray[np.integer] | None,
    file_names: Sequence[str] | None,
    fingerprints: bool,
) -> _Data:
    """The training flows, their files and classes, repair statistics and, with
    ``fingerprints``, the identities of the flows seen once."""
    none = np.zeros(0, np.uint64)
    if isinstance(data, Traffic):
        if data.n_packets == 0:
            raise ModelError("no packets to train on")
        ft = encode_flows(data, max_packets=max_packets)
        first = _first_packets(data.flow, int(data.flow.max()) + 1)
        files = data.file[first[ft.flow_id]].astype(np.int64)
        names = list(data.files)
        stats = RepairStats.learn(data)
        identities = training_fingerprints(data, max_packets) if fingerprints else none
    else:
        ft = replace(data)  # labels are remapped below: never touch the caller's object
        files = (
            np.full(ft.n_flows, -1, np.int64)
            if flow_files is None
            else np.asarray(flow_files, np.int64)
        )
        names = list(file_names or [])
        decoded = decode_flows(ft)
        stats = RepairStats.learn(decoded)
        identities = training_fingerprints(decoded, max_packets) if fingerprints else none
    if ft.n_flows == 0:
        raise ModelError("no flows to train on")
    label = ft.label.copy()
    if (label < 0).all():
        classes = ["traffic"]
        label[:] = 0
    else:
        classes = list(ft.classes)
    keep = np.flatnonzero(label >= 0)
    used = np.unique(label[keep])
    remap = np.full(max(len(classes), 1), -1, np.int64)
    remap[used] = np.arange(len(used))
    ft.label = label.astype(np.int32)
    if len(keep) < ft.n_flows or len(used) < len(classes):
        ft = _subset(ft, keep)
        files = files[keep]
    ft.label = remap[ft.label].astype(np.int32)
    classes = [classes[i] for i in used]
    ft.classes = classes
    stats = RepairStats(
        {c: m for c, m in stats.ttl_modes.items() if c in classes},
        {c: v for c, v in stats.service_ports.items() if c in classes},
    )
    return _Data(ft, files, names, classes, stats, identities)


def split_by_file(
    files: NDArray[np.int64],
    labels: NDArray[np.integer],
    *,
    fraction: float,
    seed: int,
    val_files: Sequence[int] | None = None,
) -> NDArray[np.bool_]:
    """Validation mask over flows: whole capture files held out, about ``fraction`` of each
    class's files (only classes with at least two files), or exactly ``val_files``."""
    val = np.zeros(len(files), np.bool_)
    if val_files is not None:
        return np.isin(files, np.asarray(list(val_files), np.int64))
    if fraction <= 0:
        return val
    known = np.unique(files[files >= 0])
    if len(known) < 2:
        return val
    rng = np.random.default_rng([seed, 0x5EED])
    # majority class of each file
    fidx = np.searchsorted(known, files)
    n_cls = int(labels.max()) + 1
    counts = np.zeros((len(known), n_cls), np.int64)
    ok = files >= 0
    np.add.at(counts, (fidx[ok], labels[ok]), 1)
    major = counts.argmax(axis=1)
    chosen: list[int] = []
    for c in range(n_cls):
        cand = known[major == c]
        if len(cand) < 2:
            continue
        k = max(1, round(fraction * len(cand)))
        chosen.extend(rng.choice(cand, size=min(k, len(cand) - 1), replace=False).tolist())
    return np.isin(files, np.asarray(chosen, np.int64))


# -- checkpoints ---------------------------------------------------------------------------------


def _save_checkpoint(
    root: Path, model: Any, ema: list[Any], optimizer: Any, state: dict[str, Any]
) -> None:
    import torch
    from safetensors.torch import save

    root.mkdir(parents=True, exist_ok=True)
    names = [n for n, _ in model.named_parameters()]
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    ema_t = {n: e.detach().cpu().contiguous() for n, e in zip(names, ema, strict=True)}
    opt_state = optimizer.state_dict()
    opt_t: dict[str, torch.Tensor] = {}
    for pid, st in opt_state["state"].items():
        for key, val in st.items():
            t = val if isinstance(val, torch.Tensor) else torch.tensor(val)
            opt_t[f"{pid}.{key}"] = t.detach().cpu().contiguous()
    groups = json.dumps(opt_state["param_groups"])
    for name, blob in (
        ("model.safetensors", save(weights)),
        ("ema.safetensors", save(ema_t)),
        ("optimizer.safetensors", save(opt_t, metadata={"param_groups": groups})),
    ):
        with atomic_output(root / name) as fh:
            fh.write(blob)
    with atomic_output(root / "state.json") as fh:  # last: marks the checkpoint complete
        fh.write(json.dumps(state, indent=1).encode())


def _load_checkpoint(root: Path, model: Any, ema: list[Any], optimizer: Any) -> dict[str, Any]:
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        state = json.loads((root / "state.json").read_text())
        model.load_state_dict(load_file(str(root / "model.safetensors")), strict=True)
        ema_t = load_file(str(root / "ema.safetensors"))
        names = [n for n, _ in model.named_parameters()]
        for n, e in zip(names, ema, strict=True):
            e.copy_(ema_t[n])
        opt_t = load_file(str(root / "optimizer.safetensors"))
        with safe_open(str(root / "optimizer.safetensors"), framework="pt") as fh:
            groups = json.loads((fh.metadata() or {})["param_groups"])
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{root}: unusable checkpoint ({type(exc).__name__}: {exc})") from None
    st: dict[int, dict[str, torch.Tensor]] = {}
    for key, val in opt_t.items():
        pid, name = key.split(".", 1)
        st.setdefault(int(pid), {})[name] = val
    optimizer.load_state_dict({"state": st, "param_groups": groups})
    return state


# -- training --------------------------------------------------------------------------------


def _gather(packed: Any, offsets: Any, lengths: Any, idx: Any) -> tuple[Any, Any, Any]:
    """Dense ``[b, p, K]`` model-space flows ``idx`` (p = longest), mask and lengths."""
    import torch

    ln = lengths[idx]
    p = int(ln.max())
    slot = torch.arange(p, device=packed.device)
    mask = slot[None, :] < ln[:, None]
    rows = torch.where(mask, offsets[idx][:, None] + slot[None, :], 0)
    x = packed[rows].float() * mask[..., None]
    return x, mask, ln


def _loss_terms(
    model: Any,
    scheduler: Any,
    x0: Any,
    mask: Any,
    label: Any,
    length: Any,
    gen: Any,
    prediction: str,
    timesteps: Any = None,
    self_condition: bool = False,
    weights: Any = None,
) -> Any:
    """Per-flow masked MSE of the model's prediction ``[b]`` (self-conditioned on its own
    first estimate in half the batches when ``self_condition``; features weighted by
    ``weights`` ``[K]`` of mean 1 when given)."""
    import torch

    from netdiffusion.model.denoiser import clean_estimate

    b = x0.shape[0]
    dev = x0.device
    noise = torch.randn(x0.shape, generator=gen, device=dev)
    if timesteps is None:
        n_t = scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, n_t, (b,), generator=gen, device=dev)
    noisy = scheduler.add_noise(x0, noise, timesteps) * mask[..., None]
    if prediction == "epsilon":
        target = noise
    elif prediction == "v_prediction":
        target = scheduler.get_velocity(x0, noise, timesteps)
    else:
        target = x0
    x_self = None
    if self_condition and bool(torch.rand((), generator=gen, device=dev) < 0.5):
        # half the batches first estimate the clean flow, then learn to refine that estimate
        with torch.no_grad():
            first = model(noisy, timesteps, label, length, mask).float()
            a = scheduler.alphas_cumprod[timesteps][:, None, None]
            x_self = clean_estimate(first, noisy, a, prediction).detach() * mask[..., None]
    out = model(noisy, timesteps, label, length, mask, x_self).float()
    sq = (out - target) ** 2
    err = (sq if weights is None else sq * weights).mean(dim=2) * mask
    return err.sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def train_model(
    data: Traffic | FlowTensor,
    out_dir: str | os.PathLike[str],
    *,
    max_packets: int = DEFAULT_MAX_PACKETS,
    config: dict[str, Any] | None = None,
    steps: int = 2000,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    prediction_type: str = "sample",
    class_dropout: float = 0.1,
    ema_decay: float = 0.999,
    val_fraction: float = 0.1,
    val_files: Sequence[str] | None = None,
    flow_files: NDArray[np.integer] | None = None,
    file_names: Sequence[str] | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    keep_checkpoint: bool = True,
    progress: bool = True,
    name: str | None = None,
    sampling_steps: int = DEFAULT_STEPS,
    sampling_guidance: float = DEFAULT_GUIDANCE,
    feature_weights: Mapping[str, float] | None = None,
    time_limit: float | None = None,
    iat_bits: int | None = None,
    fingerprints: bool = True,
) -> TrainResult:
    """Train a model on labelled flows and write the model directory ``out_dir``.

    ``data``: assembled, labelled traffic (encoded here with ``max_packets``), or a FlowTensor
    (then ``flow_files`` / ``file_names`` give each flow's capture file for the split).
    ``steps`` optimizer steps of ``batch_size`` flows per process. Validation holds out whole
    capture files: ``val_files`` names them (paths as in ``traffic.files``, or their file
    names), else about ``val_fraction`` of each class's files. ``checkpoint_every`` > 0 writes
    ``out_dir/checkpoint`` that often; ``resume`` continues from it. ``feature_weights``
    weighs named feature groups in the loss (``{"direction": 8, ...}``; see
    :data:`~netdiffusion.model.features.WEIGHT_GROUPS`). ``time_limit`` (seconds, whole run):
    after :data:`TIME_WARMUP_STEPS` + :data:`TIME_PROBE_STEPS` steps the step count is cut to what
    fits at the pace of the timed steps (rank 0's measure on every rank), and the learning-rate
    schedule anneals over the cut count; the steps done are recorded, and ``steps=`` that count
    re-runs nearly the same schedule (the warm-up and the first 120 steps' cosine follow the
    planned count). ``iat_bits``: inter-arrival bits of the feature layout (default
    :data:`~netdiffusion.model.features.DEFAULT_IAT_BITS`; 0: the continuous value alone).
    ``fingerprints``: keep the identities of the flows that occur once in the data in the
    model directory, so that generation never emits a copy of one
    (:mod:`netdiffusion.model.copies`; they also tell whether a given flow was in the data).
    Raises :class:`ModelError`.
    """
    import torch
    from accelerate import Accelerator
    from diffusers import DDPMScheduler
    from tqdm import tqdm

    from netdiffusion.model.denoiser import Denoiser

    if prediction_type not in ("epsilon", "v_prediction", "sample"):
        raise ModelError(
            f"prediction type {prediction_type!r} is not epsilon, v_prediction, sample"
        )
    if steps < 1 or batch_size < 1:
        raise ModelError("steps and batch size must be at least 1")
    if time_limit is not None and time_limit <= 0:
        raise ModelError("the time limit must be positive")
    t_start = time.perf_counter()
    out = Path(out_dir)
    use_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    cuda = torch.cuda.is_available() and not use_cpu
    acc = Accelerator(mixed_precision="bf16" if cuda else "no", cpu=not cuda)
    dev = acc.device
    rank, world = acc.process_index, acc.num_processes

    prep = _prepare(data, max_packets, flow_files, file_names, fingerprints)
    ft = prep.flows
    val_idx_files: list[int] | None = None
    if val_files is not None:
        wanted = {str(v) for v in val_files}
        val_idx_files = [
            i for i, f in enumerate(prep.file_names) if f in wanted or Path(f).name in wanted
        ]
        if not val_idx_files:
            raise ModelError(f"none of the validation files {sorted(wanted)} is in the data")
    is_val = split_by_file(
        prep.files, ft.label, fraction=val_fraction, seed=seed, val_files=val_idx_files
    )
    train_idx = np.flatnonzero(~is_val)
    val_idx = np.flatnonzero(is_val)
    if len(train_idx) == 0:
        raise ModelError("every flow is in the validation split; nothing left to train on")

    layout = FeatureLayout.learn(
        ft, iat_bits=DEFAULT_IAT_BITS if iat_bits is None else int(iat_bits)
    )
    packed_np = layout.packed(ft)
    n_classes = len(prep.classes)
    cfg = {**DEFAULT_CONFIG, **(config or {})}
    cfg.update(in_features=layout.n_features, num_classes=n_classes, max_packets=max_packets)

    torch.manual_seed(seed)
    model = Denoiser(**cfg)
    scheduler = DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        prediction_type=prediction_type,
        clip_sample=False,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.99))
    params = list(model.parameters())
    ema = [p.detach().clone().float() for p in params]

    ckpt = out / _CHECKPOINT
    start_step = 0
    history: list[tuple[int, float]] = []
    fingerprint = {
        "config": cfg,
        "flows": int(ft.n_flows),
        "packets": int(ft.n_packets),
        "prediction_type": prediction_type,
        "seed": seed,
        "batch_size": batch_size,
        "processes": world,
        "feature_weights": dict(feature_weights or {}),
        "iat_bits": layout.iat_bits,
    }
    if resume and (ckpt / "state.json").is_file():
        state = _load_checkpoint(ckpt, model, ema, optimizer)
        if state.get("fingerprint") != json.loads(json.dumps(fingerprint)):
            raise ModelError(
                f"{ckpt}: checkpoint was made with other data or settings; "
                "train into a new directory or drop --resume"
            )
        start_step = int(state["step"])
        history = [tuple(h) for h in state.get("history", [])]  # type: ignore[misc]

    model, optimizer = acc.prepare(model, optimizer)
    raw = acc.unwrap_model(model)
    params = list(raw.parameters())
    ema = [e.to(dev) for e in ema]
    packed = torch.as_tensor(packed_np, device=dev)
    offsets = torch.as_tensor(ft.offsets[:-1], device=dev)
    lengths = torch.as_tensor(ft.lengths, device=dev)
    labels = torch.as_tensor(ft.label.astype(np.int64), device=dev)
    sched_dev = DDPMScheduler(
        **{k: v for k, v in scheduler.config.items() if not k.startswith("_")}
    )
    sched_dev.alphas_cumprod = sched_dev.alphas_cumprod.to(dev)

    loss_w = torch.as_tensor(layout.loss_weights(feature_weights), device=dev)
    # class-balanced-ish sampling: class weight ~ sqrt(flow count)
    tl = ft.label[train_idx]
    counts = np.bincount(tl, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, np.sqrt(counts) / np.maximum(counts, 1), 0.0)[tl]
    prob = w / w.sum()
    for g in optimizer.param_groups:
        g["lr"] = lr

    bar = tqdm(
        total=steps,
        initial=start_step,
        desc="training",
        unit="step",
        disable=not progress or not acc.is_main_process,
    )
    warmup = max(1, min(200, steps // 10))
    run_loss = history[-1][1] if history else float("nan")
    null = n_classes
    model.train()
    planned_steps = steps
    # the pace is timed after a few warm-up steps (CUDA start-up, allocator growth)
    pace_from = start_step + TIME_WARMUP_STEPS
    probe_at = pace_from + TIME_PROBE_STEPS
    t_pace = time.perf_counter()
    step = start_step
    while step < steps:
        rng = np.random.default_rng([seed, step, rank])
        gen = torch.Generator(device=dev).manual_seed(int(rng.integers(2**62)))
        idx_np = train_idx[rng.choice(len(train_idx), size=batch_size, p=prob)]
        idx = torch.as_tensor(idx_np, device=dev)
        x0, mask, ln = _gather(packed, offsets, lengths, idx)
        lab = labels[idx]
        drop = torch.rand(batch_size, generator=gen, device=dev) < class_dropout
        lab = torch.where(drop, torch.full_like(lab, null), lab)
        scale = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for g in optimizer.param_groups:
            g["lr"] = lr * max(scale, 0.05)
        with acc.autocast():
            loss = _loss_terms(
                model, sched_dev, x0, mask, lab, ln, gen, prediction_type,
                self_condition=bool(cfg.get("self_condition")), weights=loss_w,
            ).mean()  # fmt: skip
        acc.backward(loss)
        acc.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        d = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach().float() for p in params], 1.0 - d)
        value = float(loss.detach())
        run_loss = value if math.isnan(run_loss) else 0.98 * run_loss + 0.02 * value
        if (step + 1) % 50 == 0 or step + 1 == steps:
            history.append((step + 1, round(run_loss, 6)))
        bar.update(1)
        bar.set_postfix(loss=f"{run_loss:.4f}")
        if checkpoint_every > 0 and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            acc.wait_for_everyone()
            if acc.is_main_process:
                _save_checkpoint(
                    ckpt,
                    raw,
                    ema,
                    optimizer,
                    {"step": step + 1, "fingerprint": fingerprint, "history": history},
                )
            acc.wait_for_everyone()
        step += 1
        if time_limit is not None and step == pace_from:
            t_pace = time.perf_counter()
        if time_limit is not None and step == probe_at and step < steps:
            steps = _steps_within(time_limit, t_start, t_pace, TIME_PROBE_STEPS, step, steps, dev)
            bar.total = steps
            bar.refresh()
    bar.close()
    acc.wait_for_everyone()

    # -- EMA weights into the model, validation, save ------------------------------------
    with torch.no_grad():
        for p, e in zip(params, ema, strict=True):
            p.copy_(e.to(p.dtype))
    raw.eval()
    val_loss, per_class = None, {}
    if len(val_idx):
        val_loss, per_class = _validate(
            raw, sched_dev, packed, offsets, lengths, labels, val_idx, prep.classes, seed,
            prediction_type, acc,
        )  # fmt: skip
    result = TrainResult(
        model_dir=out,
        steps=steps,
        final_loss=float(run_loss),
        val_loss=val_loss,
        val_loss_per_class=per_class,
        train_flows=len(train_idx),
        val_flows=len(val_idx),
        seconds=time.perf_counter() - t_start,
        resumed_from=start_step,
        history=history,
    )
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        if checkpoint_every > 0 and keep_checkpoint:
            _save_checkpoint(
                ckpt,
                raw,
                ema,
                optimizer,
                {"step": steps, "fingerprint": fingerprint, "history": history},
            )
        cpu_model = Denoiser(**cfg)
        cpu_model.load_state_dict(
            {k: v.detach().float().cpu() for k, v in raw.state_dict().items()}
        )
        cpu_model.save_pretrained(str(out), safe_serialization=True)
        scheduler.save_pretrained(str(out / SCHEDULER_DIR))
        meta = _meta(
            prep, ft, layout, train_idx, val_idx, is_val, cfg, cpu_model, result,
            prediction_type=prediction_type, batch_size=batch_size, lr=lr, seed=seed,
            class_dropout=class_dropout, ema_decay=ema_decay, world=world,
            feature_weights=dict(feature_weights or {}),
            device=str(dev) + (" bf16" if cuda else ""), name=name or out.name,
            sampling_steps=sampling_steps, sampling_guidance=sampling_guidance,
            planned_steps=planned_steps if steps != planned_steps else None,
            time_limit=time_limit,
        )  # fmt: skip
        if fingerprints:
            write_fingerprints(out, prep.identities)
            meta["data"]["fingerprints"] = len(prep.identities)
        else:
            (out / FINGERPRINTS_FILE).unlink(missing_ok=True)
        write_meta(out, meta)
    acc.wait_for_everyone()
    return result


def _steps_within(
    time_limit: float, t_start: float, t_pace: float, done: int, step: int, steps: int, dev: Any
) -> int:
    """The step count that ends the run within ``time_limit`` seconds of ``t_start`` at the
    pace of the ``done`` steps since ``t_pace`` (at most ``steps``, at least ``step``); rank 0
    decides for every rank."""
    import torch
    from accelerate.utils import broadcast

    now = time.perf_counter()
    per_step = (now - t_pace) / max(done, 1)
    # what is left after the loop: EMA swap, validation and writing (about 2 % of the budget)
    left = time_limit * 0.98 - (now - t_start)
    want = min(steps, step + max(0, int(left / per_step)))
    return int(broadcast(torch.tensor([want], device=dev)).item())


def _validate(
    model: Any,
    scheduler: Any,
    packed: Any,
    offsets: Any,
    lengths: Any,
    labels: Any,
    val_idx: NDArray[np.int64],
    classes: list[str],
    seed: int,
    prediction: str,
    acc: Any,
) -> tuple[float, dict[str, float]]:
    """Mean loss over held-out flows at 8 fixed timesteps, overall and per class."""
    import torch

    rng = np.random.default_rng([seed, 0x7A1])
    idx_np = val_idx
    if len(idx_np) > _VAL_FLOWS_MAX:
        idx_np = np.sort(rng.choice(idx_np, size=_VAL_FLOWS_MAX, replace=False))
    dev = packed.device
    gen = torch.Generator(device=dev).manual_seed(seed + 17)
    n_t = scheduler.config.num_train_timesteps
    losses = []
    with torch.no_grad(), acc.autocast():
        for start in range(0, len(idx_np), 256):
            idx = torch.as_tensor(idx_np[start : start + 256], device=dev)
            x0, mask, ln = _gather(packed, offsets, lengths, idx)
            per = []
            for t in np.linspace(0, n_t - 1, 8).astype(np.int64):
                ts = torch.full((len(idx),), int(t), device=dev, dtype=torch.long)
                per.append(
                    _loss_terms(model, scheduler, x0, mask, labels[idx], ln, gen, prediction, ts)
                )
            losses.append(torch.stack(per).mean(dim=0).float().cpu())
    loss = torch.cat(losses).numpy()
    lab = labels[torch.as_tensor(idx_np, device=dev)].cpu().numpy()
    per_class = {classes[c]: float(loss[lab == c].mean()) for c in np.unique(lab)}
    return float(loss.mean()), per_class


def _meta(
    prep: _Data,
    ft: FlowTensor,
    layout: FeatureLayout,
    train_idx: NDArray[np.int64],
    val_idx: NDArray[np.int64],
    is_val: NDArray[np.bool_],
    cfg: dict[str, Any],
    model: Any,
    result: TrainResult,
    **kw: Any,
) -> dict[str, Any]:
    classes = prep.classes
    p = ft.max_packets
    tl, tlen = ft.label[train_idx], ft.lengths[train_idx]
    counts = np.bincount(tl, minlength=len(classes))
    hist = np.zeros((len(classes), p), np.int64)
    np.add.at(hist, (tl, tlen - 1), 1)
    # mean gap between consecutive flow starts within a capture file (training flows)
    gaps = []
    files = prep.files[train_idx]
    starts = ft.start_ns[train_idx]
    order = np.lexsort((starts, files))
    fs, ss = files[order], starts[order]
    same = fs[1:] == fs[:-1]
    gaps = np.diff(ss)[same]
    flow_gap = float(np.median(gaps)) if len(gaps) else 1e8
    used_files = sorted({int(f) for f in files if f >= 0})
    v_files = sorted({int(f) for f in prep.files[val_idx] if f >= 0})
    name_of = prep.file_names
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "name": kw["name"],
        "classes": classes,
        "class_flows": {c: int(counts[i]) for i, c in enumerate(classes)},
        "class_proportions": {
            c: float(counts[i] / max(counts.sum(), 1)) for i, c in enumerate(classes)
        },
        "lengths": {c: hist[i].tolist() for i, c in enumerate(classes)},
        "flow_gap_ns": max(flow_gap, 1000.0),
        "gap_quantiles": gap_quantiles(ft),
        "repair_stats": prep.stats.to_json(),
        "layout": layout.to_json(),
        "denoiser": {
            k: cfg[k]
            for k in ("width", "layers", "heads", "mlp_ratio", "self_condition")
            if k in cfg
        },
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "flops_per_packet_step": model.flops_per_token(int(max(tlen.mean(), 1))),
        "prediction_type": kw["prediction_type"],
        "sampling": {
            "steps": kw["sampling_steps"],
            "guidance": kw["sampling_guidance"],
            "solver": "dpmsolver++",
            "solver_order": DEFAULT_SOLVER_ORDER,
            "min_log_snr": DEFAULT_MIN_LOG_SNR,
        },
        "training": {
            "steps": result.steps,
            "batch_size": kw["batch_size"],
            "processes": kw["world"],
            "lr": kw["lr"],
            "seed": kw["seed"],
            "class_dropout": kw["class_dropout"],
            "ema_decay": kw["ema_decay"],
            "feature_weights": kw["feature_weights"],
            "final_loss": result.final_loss,
            "seconds": round(result.seconds, 1),
            "device": kw["device"],
            "resumed_from": result.resumed_from,
            "history": result.history,
            **(
                {"planned_steps": kw["planned_steps"], "time_limit": kw["time_limit"]}
                if kw.get("planned_steps") is not None
                else {}
            ),
        },
        "validation": {
            "split": "by capture file",
            "loss": result.val_loss,
            "per_class": result.val_loss_per_class,
        },
        "data": {
            "train_flows": len(train_idx),
            "train_packets": int(ft.lengths[train_idx].sum()),
            "val_flows": len(val_idx),
            "truncated_flows": int(ft.truncated),
            "train_files": [name_of[i] for i in used_files if i < len(name_of)],
            "val_files": [name_of[i] for i in v_files if i < len(name_of)],
        },
    }


# -- command line -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Small training command line (used by tests and under ``accelerate launch``)."""
    ap = argparse.ArgumentParser(prog="python -m netdiffusion.model.training")
    ap.add_argument("inputs", nargs="+", help="capture files/folders, or one dataset file")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--labels", default="folder", help="'folder' (default) or a flow CSV")
    ap.add_argument("--label-column", default="category", help="CSV label column")
    ap.add_argument("--max-packets", type=int, default=DEFAULT_MAX_PACKETS)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=DEFAULT_CONFIG["width"])
    ap.add_argument("--layers", type=int, default=DEFAULT_CONFIG["layers"])
    ap.add_argument("--heads", type=int, default=DEFAULT_CONFIG["heads"])
    ap.add_argument("--prediction", default="sample")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--checkpoint-every", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    from netdiffusion.inputs import read_flows

    try:
        traffic = read_flows(a.inputs, labels=a.labels or None, label_column=a.label_column,
                             progress=False)[0]  # fmt: skip
        res = train_model(
            traffic,
            a.output,
            max_packets=a.max_packets,
            config={"width": a.width, "layers": a.layers, "heads": a.heads},
            steps=a.steps,
            batch_size=a.batch_size,
            lr=a.lr,
            seed=a.seed,
            prediction_type=a.prediction,
            val_fraction=a.val_fraction,
            checkpoint_every=a.checkpoint_every,
            resume=a.resume,
            progress=not a.no_progress,
        )
    except (ModelError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"trained {res.steps} steps in {res.seconds:.1f} s: loss {res.final_loss:.4f}, "
        f"validation {res.val_loss if res.val_loss is None else round(res.val_loss, 4)} "
        f"-> {res.model_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
