"""Loading a model directory and generating traffic from it.

:func:`load_model` reads a model directory (:mod:`netdiffusion.model.modeldir`) offline into a
:class:`TrafficModel`. Generation plans every flow first (class from the requested mix or the
training proportions, length from that class's training distribution of flow lengths, start
time from exponential gaps with the training captures' median gap between flow starts), then
works chunk by chunk (``batch_size`` flows): flows are sorted by length and denoised in groups
padded only to their longest member, so compute goes to real packets; DPM-Solver++ runs
``steps`` steps, with classifier-free guidance when ``guidance != 1``. The output is snapped to
nPrint values on the device and decoded, addresses assigned, then repaired
(``repair(synthetic=True)`` with the model's per-class statistics).

Chunk ``k`` depends only on ``(seed, k)`` and the plan, so the same seed gives the same traffic
(on the same device and with the same ``batch_size``).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import inspect
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import Traffic
from netdiffusion.encoding import N_FEATURES, FlowTensor, decode_flows
from netdiffusion.model._errors import ModelError
from netdiffusion.model.features import FeatureLayout
from netdiffusion.model.modeldir import SCHEDULER_DIR, read_meta
from netdiffusion.nprint import N_BITS
from netdiffusion.repair import RepairStats, repair

__all__ = ["DEFAULT_MODEL_DIR", "DEFAULT_START_NS", "TrafficModel", "load_model"]

#: Where the bundled default model lives (inside the installed package).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default"
#: Time of the first generated flow unless given: 2024-01-01 00:00:00 UTC.
DEFAULT_START_NS = 1_704_067_200 * 1_000_000_000
_TOKENS_CPU = 16384  # packet slots per denoiser call
_TOKENS_CUDA = 1 << 20


def _device(device: str | None) -> Any:
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ModelError(f"unknown device {device!r} (use cpu or cuda)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("device cuda requested but no CUDA GPU is available")
    return dev


def load_model(
    path: str | os.PathLike[str] | None = None, device: str | None = None
) -> TrafficModel:
    """Load a model directory (default: the bundled model) onto ``device`` (default: cuda when
    available, else cpu). Raises :class:`ModelError` with a one-line reason."""
    if path is None:
        path = DEFAULT_MODEL_DIR
        if not (Path(path) / "netdiffusion.json").is_file():
            raise ModelError(
                f"no bundled default model in this installation ({path}); pass --model DIR"
            )
    root = Path(path)
    meta = read_meta(root)
    dev = _device(device)
    layout = FeatureLayout.from_json(meta.get("layout", {}))
    from diffusers import DPMSolverMultistepScheduler

    from netdiffusion.model.denoiser import Denoiser

    try:
        sched_cfg = json.loads((root / SCHEDULER_DIR / "scheduler_config.json").read_text())
        net = Denoiser.from_pretrained(
            str(root), use_safetensors=True, local_files_only=True, low_cpu_mem_usage=False
        )
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"{root}: cannot load the model weights ({reason})") from None
    if net.config.in_features != layout.n_features or net.config.num_classes != len(
        meta["classes"]
    ):
        raise ModelError(f"{root}: weights do not match netdiffusion.json (features or classes)")
    accepted = inspect.signature(DPMSolverMultistepScheduler.__init__).parameters
    kwargs = {k: v for k, v in sched_cfg.items() if k in accepted}
    kwargs.update(algorithm_type="dpmsolver++", solver_order=2)
    solver = DPMSolverMultistepScheduler(**kwargs)  # not from_config: that imports every scheduler
    net.to(dev).eval()
    return TrafficModel(net, solver, meta, layout, root, dev)


@dataclass
class _Plan:
    labels: NDArray[np.int64]
    lengths: NDArray[np.int64]
    starts: NDArray[np.int64]


class TrafficModel:
    """A trained model, ready to sample flow tensors or generate repaired traffic."""

    def __init__(
        self, net: Any, solver: Any, meta: dict[str, Any], layout: FeatureLayout, path: Path,
        device: Any,
    ) -> None:  # fmt: skip
        self.net = net
        self.solver = solver
        self.meta = meta
        self.layout = layout
        self.path = path
        self.device = device
        self.classes: list[str] = list(meta["classes"])
        props = meta.get("class_proportions", {})
        self.class_proportions: dict[str, float] = {c: float(props.get(c, 0)) for c in self.classes}
        self.stats = RepairStats(
            {c: tuple(int(v) for v in m) for c, m in meta["repair_stats"]["ttl_modes"].items()}
        )
        hist = np.zeros((len(self.classes), layout.max_packets), np.float64)
        for i, c in enumerate(self.classes):
            row = np.asarray(meta["lengths"].get(c, []), np.float64)[: layout.max_packets]
            hist[i, : len(row)] = row
        hist[hist.sum(axis=1) == 0, 0] = 1.0
        self._length_cdf = np.cumsum(hist / hist.sum(axis=1, keepdims=True), axis=1)
        self.flow_gap_ns = float(meta.get("flow_gap_ns", 1e8))
        sampling = meta.get("sampling", {})
        self.default_steps = int(sampling.get("steps", 10))
        self.default_guidance = float(sampling.get("guidance", 1.0))
        self._tables: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return (
            f"TrafficModel({str(self.path)!r}, classes={len(self.classes)}, device={self.device})"
        )

    @property
    def max_packets(self) -> int:
        """Longest flow the model generates."""
        return self.layout.max_packets

    def to(self, device: str) -> TrafficModel:
        """Move the model to another device (in place); returns self."""
        self.device = _device(device)
        self.net.to(self.device)
        self._tables = None
        return self

    # -- planning -------------------------------------------------------------------------

    def class_mix(
        self, classes: Mapping[str, float] | Sequence[str] | str | None
    ) -> NDArray[np.float64]:
        """Shares per model class of a request (None: the training proportions)."""
        shares = np.zeros(len(self.classes), np.float64)
        if classes is None:
            for i, c in enumerate(self.classes):
                shares[i] = self.class_proportions.get(c, 0.0)
            if shares.sum() <= 0:
                shares[:] = 1.0
            return shares / shares.sum()
        items = (
            [(classes, 1.0)]
            if isinstance(classes, str)
            else list(classes.items())
            if isinstance(classes, Mapping)
            else [(c, 1.0) for c in classes]
        )
        if not items:
            raise ModelError("no class requested")
        for name, share in items:
            if name not in self.classes:
                known = ", ".join(self.classes)
                raise ModelError(f"unknown class {name!r}; this model knows: {known}")
            if not share >= 0 or not np.isfinite(share):
                raise ModelError(f"class {name!r}: share {share!r} is not a non-negative number")
            shares[self.classes.index(name)] += float(share)
        if shares.sum() <= 0:
            raise ModelError("class shares sum to zero")
        return shares / shares.sum()

    def plan(
        self,
        n_flows: int,
        classes: Mapping[str, float] | Sequence[str] | str | None = None,
        *,
        seed: int = 0,
        start_ns: int = DEFAULT_START_NS,
    ) -> _Plan:
        """Class, length and start time of every flow to generate (deterministic in ``seed``)."""
        if n_flows < 0:
            raise ModelError(f"number of flows must be positive, not {n_flows}")
        shares = self.class_mix(classes)
        rng = np.random.default_rng([seed & 0xFFFFFFFF, 0x9A7])
        exact = shares * n_flows
        counts = np.floor(exact).astype(np.int64)
        rest = n_flows - int(counts.sum())
        if rest:
            counts[np.argsort(-(exact - counts), kind="stable")[:rest]] += 1
        labels = rng.permutation(np.repeat(np.arange(len(shares)), counts))
        u = rng.random(n_flows)
        lengths = (self._length_cdf[labels] < u[:, None]).sum(axis=1) + 1
        lengths = np.minimum(lengths, self.max_packets)
        gaps = rng.exponential(self.flow_gap_ns, n_flows)
        starts = int(start_ns) + np.concatenate([[0.0], np.cumsum(gaps[1:])]).astype(np.int64)
        return _Plan(labels.astype(np.int64), lengths.astype(np.int64), starts[:n_flows])

    # -- sampling -------------------------------------------------------------------------

    def _denoise_chunk(
        self,
        labels: NDArray[np.int64],
        lengths: NDArray[np.int64],
        steps: int,
        guidance: float,
        seed: int,
        chunk: int,
    ) -> tuple[NDArray[np.int8], NDArray[np.int8], NDArray[np.float32], NDArray[np.int16] | None]:
        """Snapped nPrint values of one chunk, flows in the given order, packets flow-major:
        ``(bits [M, 1088] or None, direction [M], iat [M], codes [M, 136])``."""
        import torch

        dev = self.device
        if self._tables is None:
            self._tables = self.layout.tables(dev)
        tables = self._tables
        gen = torch.Generator(device=dev).manual_seed(
            int(np.random.default_rng([seed & 0xFFFFFFFF, chunk, 0xD1]).integers(2**62))
        )
        order = np.argsort(lengths, kind="stable")
        budget = _TOKENS_CUDA if dev.type == "cuda" else _TOKENS_CPU
        k = self.layout.n_features
        null = self.net.null_class
        solver = self.solver
        use_cfg = guidance != 1.0
        auto = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else nullcontext()
        parts: dict[str, list[Any]] = {"dir": [], "iat": [], "codes": [], "flows": []}
        i = 0
        n = len(order)
        with torch.inference_mode():
            while i < n:
                # a group of sorted flows whose padded size fits the token budget
                j = i + 1
                while j < n and (j + 1 - i) * lengths[order[j]] <= budget:
                    j += 1
                idx = order[i:j]
                i = j
                p = int(lengths[idx].max())
                ln = torch.as_tensor(lengths[idx], device=dev)
                lab = torch.as_tensor(labels[idx], device=dev)
                mask = torch.arange(p, device=dev)[None, :] < ln[:, None]
                x = torch.randn((len(idx), p, k), generator=gen, device=dev)
                solver.set_timesteps(steps, device=dev)
                if use_cfg:
                    lab2 = torch.cat([lab, torch.full_like(lab, null)])
                    ln2, mask2 = torch.cat([ln, ln]), torch.cat([mask, mask])
                for t in solver.timesteps:
                    with auto:
                        if use_cfg:
                            out = self.net(torch.cat([x, x]), t, lab2, ln2, mask2).float()
                            cond, unc = out.chunk(2)
                            out = unc + guidance * (cond - unc)
                        else:
                            out = self.net(x, t, lab, ln, mask).float()
                    x = solver.step(out, t, x).prev_sample
                rows = x[mask]  # flow-major real slots
                bits, direction, iat = self.layout.to_bits(rows, tables, gen)
                parts["codes"].append(self.layout.to_codes(bits, tables).cpu())
                parts["dir"].append(direction.cpu())
                parts["iat"].append(iat.cpu())
                parts["flows"].append(idx)
        # back to the requested flow order
        sorted_flows = np.concatenate(parts["flows"])
        codes = torch.cat(parts["codes"]).numpy()
        direction = torch.cat(parts["dir"]).numpy()
        iat = torch.cat(parts["iat"]).numpy()
        ln_sorted = lengths[sorted_flows]
        off_sorted = np.zeros(n + 1, np.int64)
        np.cumsum(ln_sorted, out=off_sorted[1:])
        inv = np.empty(n, np.int64)
        inv[sorted_flows] = np.arange(n)
        start = off_sorted[inv]
        seg = np.repeat(np.arange(n), lengths)
        pos = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        take = start[seg] + pos
        return codes[take], direction[take], iat[take], None  # type: ignore[return-value]

    def _chunks(self, n_flows: int, batch_size: int) -> list[tuple[int, int]]:
        if batch_size < 1:
            raise ModelError(f"batch size must be at least 1, not {batch_size}")
        return [(a, min(a + batch_size, n_flows)) for a in range(0, n_flows, batch_size)]

    def _check(self, steps: int | None, guidance: float | None) -> tuple[int, float]:
        s = self.default_steps if steps is None else int(steps)
        g = self.default_guidance if guidance is None else float(guidance)
        if not 1 <= s <= 1000:
            raise ModelError(f"steps must be in 1..1000, not {s}")
        if not np.isfinite(g) or g < 0:
            raise ModelError(f"guidance must be a non-negative number, not {g}")
        return s, g

    def _flow_tensors(
        self,
        n_flows: int,
        classes: Mapping[str, float] | Sequence[str] | str | None,
        steps: int | None,
        guidance: float | None,
        seed: int,
        batch_size: int,
        start_ns: int,
    ) -> Iterator[FlowTensor]:
        s, g = self._check(steps, guidance)
        plan = self.plan(n_flows, classes, seed=seed, start_ns=start_ns)
        for k, (a, b) in enumerate(self._chunks(n_flows, batch_size)):
            labels, lengths = plan.labels[a:b], plan.lengths[a:b]
            codes, direction, iat, _ = self._denoise_chunk(labels, lengths, s, g, seed, k)
            offsets = np.zeros(b - a + 1, np.int64)
            np.cumsum(lengths, out=offsets[1:])
            yield FlowTensor(
                codes=codes.astype(np.uint16),
                direction=direction,
                iat=iat,
                offsets=offsets,
                label=labels.astype(np.int32),
                flow_id=np.arange(a, b, dtype=np.int64),
                start_ns=plan.starts[a:b],
                max_packets=self.max_packets,
                classes=list(self.classes),
                iat_scale=self.layout.iat_scale,
            )

    def sample(
        self,
        n_flows: int,
        *,
        classes: Mapping[str, float] | Sequence[str] | str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        batch_size: int = 1024,
        device: str | None = None,
    ) -> Iterator[tuple[NDArray[np.float32], NDArray[np.bool_], NDArray[np.int32]]]:
        """Sampled flow tensors in the encoder's layout, ``batch_size`` flows at a time.

        Yields ``(tensor float32 [b, P, 1090], mask bool [b, P], labels int32 [b])`` with
        ``P = max_packets``: snapped nPrint values, direction and inter-arrival feature for real
        slots, the encoder's padding elsewhere. ``decode_flows(tensor, mask=mask,
        labels=labels, classes=model.classes)`` turns a batch into traffic.
        """
        if device is not None:
            self.to(device)
        for ft in self._flow_tensors(
            n_flows, classes, steps, guidance, seed, batch_size, DEFAULT_START_NS
        ):
            bits, direction, iat, mask = ft.dense()
            out = np.empty((*bits.shape[:2], N_FEATURES), np.float32)
            out[..., :N_BITS] = bits
            out[..., N_BITS] = direction
            out[..., N_BITS + 1] = iat
            if bits.shape[1] < self.max_packets:  # dense() pads to max_packets already
                raise AssertionError("unexpected flow tensor width")
            yield out, mask, ft.label.copy()

    def generate_batches(
        self,
        n_flows: int,
        *,
        classes: Mapping[str, float] | Sequence[str] | str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        batch_size: int = 4096,
        client_net: str = "10.0.0.0/16",
        server_net: str = "198.18.0.0/15",
        start_ns: int = DEFAULT_START_NS,
        mtu: int = 1500,
        device: str | None = None,
        progress: bool = False,
    ) -> Iterator[Traffic]:
        """Repaired traffic in chunks, in global time order across chunks.

        Each chunk's flows are decoded, given addresses (``client_net`` / ``server_net``) and
        repaired; packets later than the next chunk's first flow start are held back and merged
        into the next chunk, so the concatenated chunks have non-decreasing timestamps. Flow
        ids are local to each yielded Traffic (a long flow may continue in the next one, with
        the same addresses, ports and class). Memory is bounded by ``batch_size``.
        """
        for traffic, _gid in self._parts(
            n_flows, classes, steps, guidance, seed, batch_size, client_net, server_net,
            start_ns, mtu, device, progress,
        ):  # fmt: skip
            yield traffic

    def _parts(
        self,
        n_flows: int,
        classes: Mapping[str, float] | Sequence[str] | str | None,
        steps: int | None,
        guidance: float | None,
        seed: int,
        batch_size: int,
        client_net: str,
        server_net: str,
        start_ns: int,
        mtu: int,
        device: str | None,
        progress: bool,
    ) -> Iterator[tuple[Traffic, NDArray[np.int64]]]:
        """Chunks of repaired traffic and the global flow id of each of their flows."""
        from tqdm import tqdm

        if device is not None:
            self.to(device)
        pending: tuple[Traffic, NDArray[np.int64]] | None = None
        bar = tqdm(total=n_flows, unit="flow", desc="generating", disable=not progress)
        chunks = _prefetch(
            self._flow_tensors(n_flows, classes, steps, guidance, seed, batch_size, start_ns)
        )
        plan_starts = self.plan(n_flows, classes, seed=seed, start_ns=start_ns).starts
        bounds = self._chunks(n_flows, batch_size)
        for k, ft in enumerate(chunks):
            t = decode_flows(ft)
            t = _assign(t, client_net, server_net, seed)
            t, _report = repair(t, synthetic=True, stats=self.stats, mtu=mtu, seed=seed + k)
            gid = ft.flow_id
            if pending is not None:
                t = Traffic.concat([pending[0], t]).sorted_by_time()
                gid = np.concatenate([pending[1], gid])
            nxt = bounds[k + 1][0] if k + 1 < len(bounds) else None
            if nxt is None:
                out, pending = _compact(t, gid), None
            else:
                late = t.ts_ns >= plan_starts[nxt]
                out = _compact(t.take(~late), gid)
                pending = _compact(t.take(late), gid) if late.any() else None
            bar.update(ft.n_flows)
            yield out
        bar.close()

    def generate(
        self,
        n_flows: int,
        *,
        classes: Mapping[str, float] | Sequence[str] | str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        batch_size: int = 4096,
        client_net: str = "10.0.0.0/16",
        server_net: str = "198.18.0.0/15",
        start_ns: int = DEFAULT_START_NS,
        mtu: int = 1500,
        device: str | None = None,
    ) -> Traffic:
        """``n_flows`` generated, repaired flows as one :class:`Traffic` (see
        :meth:`generate_batches`; flow ids here are global)."""
        parts = list(
            self._parts(
                n_flows, classes, steps, guidance, seed, batch_size, client_net, server_net,
                start_ns, mtu, device, False,
            )
        )  # fmt: skip
        if not parts:
            empty = Traffic.empty()
            empty.classes = list(self.classes)
            return empty
        joined = Traffic.concat([p[0] for p in parts])
        gid = np.concatenate([p[1] for p in parts])
        out = _compact(joined, gid)[0]  # a flow split across chunks is one flow again
        return out

    def info(self) -> dict[str, Any]:
        """Summary of the model (classes, proportions, layout sizes, training figures)."""
        return {
            "path": str(self.path),
            "classes": dict(self.class_proportions),
            "max_packets": self.max_packets,
            "features": self.layout.n_features,
            "parameters": int(sum(p.numel() for p in self.net.parameters())),
            "flops_per_packet_step": self.meta.get("flops_per_packet_step"),
            "steps": self.default_steps,
            "guidance": self.default_guidance,
            "training": self.meta.get("training", {}),
            "validation": self.meta.get("validation", {}),
        }


def _prefetch(items: Iterator[FlowTensor]) -> Iterator[FlowTensor]:
    """``items``, computing the next one in a thread while the caller works on the current one
    (the denoiser releases the GIL, so sampling overlaps decoding, repair and writing)."""
    from concurrent.futures import ThreadPoolExecutor

    sentinel = object()
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(next, items, sentinel)
        while True:
            item = fut.result()
            if item is sentinel:
                return
            fut = pool.submit(next, items, sentinel)
            yield item  # type: ignore[misc]


def _assign(t: Traffic, client_net: str, server_net: str, seed: int) -> Traffic:
    from netdiffusion.emit import assign_addresses

    try:
        return assign_addresses(t, client_net=client_net, server_net=server_net, seed=seed)
    except ValueError as exc:
        raise ModelError(str(exc)) from None


def _compact(t: Traffic, gid: NDArray[np.int64]) -> tuple[Traffic, NDArray[np.int64]]:
    """Flows of ``t`` (global ids ``gid``) merged by global id, empty ones dropped, ids
    renumbered densely in global-id order; returns the traffic and the kept global ids."""
    if t.n_packets == 0:
        return replace(t, flow_label=np.zeros(0, np.int32)), np.zeros(0, np.int64)
    g = gid[t.flow]
    used, first, inv = np.unique(g, return_index=True, return_inverse=True)
    labels = t.flow_label[t.flow[first]]
    return replace(t, flow=inv.reshape(-1).astype(np.int64), flow_label=labels), used
