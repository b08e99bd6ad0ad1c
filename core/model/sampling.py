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

The CPU side (decode, addresses, repair, and for :meth:`TrafficModel.generate_records` the pcap
record bytes) runs in a pool of ``workers`` processes (:func:`_pool_context`: forked from a
clean forkserver that has this module imported, or spawned; never a fork of a process that may
hold CUDA), one chunk per task, while the sampler keeps the device busy in a
thread. Results are taken in chunk order and merged into time order in the main process, so the
output is the same whatever the number of workers (``workers=0``: all in-process).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import json
import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import Traffic
from netdiffusion.emit.pcap import _SLACK, PcapRecords, _items, pcap_records
from netdiffusion.encoding import N_FEATURES, FlowTensor, decode_flows
from netdiffusion.model._errors import ModelError
from netdiffusion.model.copies import FINGERPRINTS_FILE, avoid_copies, read_fingerprints
from netdiffusion.model.features import FeatureLayout
from netdiffusion.model.gaps import calibrate_gaps
from netdiffusion.model.modeldir import SCHEDULER_DIR, read_meta
from netdiffusion.model.schedule import (
    DEFAULT_MIN_LOG_SNR,
    DEFAULT_SOLVER_ORDER,
    make_solver,
    sampling_timesteps,
)
from netdiffusion.model.sharding import Shard, current_shard, exchange
from netdiffusion.nprint import N_BITS
from netdiffusion.repair import RepairStats, repair

__all__ = [
    "DEFAULT_MODEL_DIR",
    "DEFAULT_START_NS",
    "MAX_WORKERS",
    "TrafficModel",
    "default_workers",
    "load_model",
]

#: Where the bundled default model lives (inside the installed package).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default"
#: Time of the first generated flow unless given: 2024-01-01 00:00:00 UTC.
DEFAULT_START_NS = 1_704_067_200 * 1_000_000_000
_TOKENS_CPU = 16384  # packet slots per denoiser call
_TOKENS_CUDA = 1 << 20
#: Most worker processes :func:`default_workers` picks.
MAX_WORKERS = 16


def default_workers() -> int:
    """Worker processes for the CPU side of generation: usable cores - 1, at most
    :data:`MAX_WORKERS` (0 on a single core: everything in-process)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    cores //= max(1, _env_int("LOCAL_WORLD_SIZE", 1))  # processes of a launch share the cores
    return max(0, min(cores - 1, MAX_WORKERS))


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


def _cpu_bf16() -> bool:
    """Whether the CPU denoiser runs under bf16 autocast: where the CPU has AMX tiles (there
    bf16 matrix products are native; 2-core Xeon: 3,400 instead of 2,200-2,600 packets/s sampled,
    the same discriminator and TSTR figures), unless ``NETDIFFUSION_CPU_BF16=0`` (``=1`` forces
    it). Without AMX, bf16 is emulated and slower than fp32."""
    import torch

    forced = os.environ.get("NETDIFFUSION_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


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
    if dev.type == "cuda" and dev.index is None and _env_int("WORLD_SIZE", 1) > 1:
        # one GPU per process of a launch (accelerate launch, torchrun)
        dev = torch.device("cuda", _env_int("LOCAL_RANK", 0) % torch.cuda.device_count())
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
    order = int(meta.get("sampling", {}).get("solver_order", DEFAULT_SOLVER_ORDER))
    try:
        solver = make_solver(sched_cfg, order)
    except ValueError as exc:
        raise ModelError(f"{root}: {exc}") from None
    net.to(dev).eval()
    return TrafficModel(net, solver, meta, layout, root, dev)


@dataclass
class _Plan:
    labels: NDArray[np.int64]
    lengths: NDArray[np.int64]
    starts: NDArray[np.int64]


@dataclass(frozen=True)
class _Run:
    """One generation request: which flows, how they are sampled, in chunks of how many."""

    n_flows: int
    classes: Mapping[str, float] | Sequence[str] | str | None
    steps: int | None
    guidance: float | None
    seed: int
    batch_size: int
    start_ns: int

    def chunks(self) -> list[tuple[int, int]]:
        """``[start, end)`` flow indices of every chunk, in order."""
        if self.batch_size < 1:
            raise ModelError(f"batch size must be at least 1, not {self.batch_size}")
        n, b = self.n_flows, self.batch_size
        return [(a, min(a + b, n)) for a in range(0, n, b)]


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
        self.stats = RepairStats.from_json(meta["repair_stats"])
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
        self.min_log_snr = float(sampling.get("min_log_snr", DEFAULT_MIN_LOG_SNR))
        #: bf16 autocast for the denoiser: on CUDA, and on CPUs with AMX (see :func:`_cpu_bf16`)
        self.bf16 = device.type == "cuda" or (device.type == "cpu" and _cpu_bf16())
        self._tables: dict[str, Any] | None = None
        #: Where this process stands in a multi-process launch (None: found at first use).
        self.shard: Shard | None = None

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
        # stratified lengths: the k-th of a class's n flows (in random order) draws its length
        # from quantiles [k/n, (k+1)/n) of the class's length distribution, so that every run
        # holds the training length mix up to rounding, not up to sampling noise
        order = np.lexsort((rng.random(n_flows), labels))
        rank = np.arange(n_flows) - np.repeat(np.cumsum(counts) - counts, counts)
        u = np.empty(n_flows)
        u[order] = (rank + rng.random(n_flows)) / counts[labels[order]]
        lengths = (self._length_cdf[labels] < u[:, None]).sum(axis=1) + 1
        lengths = np.minimum(lengths, self.max_packets)
        gaps = rng.exponential(self.flow_gap_ns, n_flows)
        starts = int(start_ns) + np.concatenate([[0.0], np.cumsum(gaps[1:])]).astype(np.int64)
        return _Plan(labels.astype(np.int64), lengths.astype(np.int64), starts[:n_flows])

    def flows_for_packets(
        self, packets: int, classes: Mapping[str, float] | Sequence[str] | str | None = None
    ) -> int:
        """Flows to plan so that a run of the class mix ``classes`` yields at least ``packets``
        packets: 1.5 times ``packets`` over the mean planned flow length (repair may drop a
        few packets), plus 16 (the rule of ``netdiffusion generate --packets``)."""
        pmf = np.diff(self._length_cdf, axis=1, prepend=0.0)
        mean = float(self.class_mix(classes) @ (pmf @ np.arange(1, self.max_packets + 1)))
        return max(1, math.ceil(1.5 * max(int(packets), 0) / max(mean, 1.0)) + 16)

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

        from netdiffusion.model.denoiser import clean_estimate

        dev = self.device
        if self._tables is None:
            self._tables = self.layout.tables(dev)
        tables = self._tables
        gen = torch.Generator(device=dev).manual_seed(
            int(np.random.default_rng([seed & 0xFFFFFFFF, chunk, 0xD1]).integers(2**62))
        )
        wide = dev.type == "cuda"
        k = self.layout.n_features
        null = self.net.null_class
        solver = self.solver
        use_cfg = guidance != 1.0
        self_cond = bool(self.net.config.get("self_condition"))
        prediction = str(solver.config.prediction_type)
        auto = torch.autocast(dev.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        timesteps = sampling_timesteps(solver.alphas_cumprod, steps, self.min_log_snr)
        # every chunk brings new group shapes: keep to attention kernels that need no per-shape
        # plan (cuDNN's builds one per shape, tens of milliseconds each)
        kernels = _shape_free_attention() if wide else nullcontext()
        groups = _length_groups(lengths, _TOKENS_CUDA if wide else _TOKENS_CPU, wide)
        # Everything the device needs from the host goes over before any work is queued, and
        # nothing comes back until the chunk is done: no stream sync inside the loop.
        host = [_group_inputs(lengths, labels, idx) for idx in groups]
        parts: dict[str, list[Any]] = {"dir": [], "iat": [], "codes": []}
        with torch.inference_mode(), kernels:
            moved = [tuple(_to(a, dev) for a in h) for h in host]
            for idx, (ln, lab, real) in zip(groups, moved, strict=True):
                p = int(lengths[idx].max())
                mask = torch.arange(p, device=dev)[None, :] < ln[:, None]
                x = torch.randn((len(idx), p, k), generator=gen, device=dev)
                solver.set_timesteps(device=dev, timesteps=timesteps)
                solver.set_begin_index(0)  # else its first step looks its index up (a sync)
                alpha_bar = solver.alphas_cumprod[solver.timesteps.cpu().long()]  # host scalars
                if use_cfg:
                    lab2 = torch.cat([lab, torch.full_like(lab, null)])
                    ln2, mask2 = torch.cat([ln, ln]), torch.cat([mask, mask])
                x_self = None  # self-conditioning: the previous step's clean estimate
                for i, t in enumerate(solver.timesteps):
                    with auto:
                        if use_cfg:
                            xs2 = None if x_self is None else torch.cat([x_self, x_self])
                            out = self.net(torch.cat([x, x]), t, lab2, ln2, mask2, xs2).float()
                            cond, unc = out.chunk(2)
                            out = unc + guidance * (cond - unc)
                        else:
                            out = self.net(x, t, lab, ln, mask, x_self).float()
                    if self_cond:
                        x_self = clean_estimate(out, x, alpha_bar[i], prediction)
                    x = solver.step(out, t, x).prev_sample
                rows = x.reshape(-1, k).index_select(0, real)  # flow-major real slots
                bits, direction, iat = self.layout.to_bits(rows, tables, gen)
                parts["codes"].append(self.layout.to_codes(bits, tables))
                parts["dir"].append(direction)
                parts["iat"].append(iat)
            # back to the requested flow order, on the device, then one copy to the host
            take = _to(_requested_order(lengths, np.concatenate(groups)), dev)
            codes, direction, iat = _to_host(
                [torch.cat(parts[key]).index_select(0, take) for key in ("codes", "dir", "iat")]
            )
        # codes are 0..256: the int16 buffer read as uint16 is the same numbers, no copy
        return codes.view(np.uint16), direction, iat, None  # type: ignore[return-value]

    def _check(self, steps: int | None, guidance: float | None) -> tuple[int, float]:
        s = self.default_steps if steps is None else int(steps)
        g = self.default_guidance if guidance is None else float(guidance)
        if not 1 <= s <= 1000:
            raise ModelError(f"steps must be in 1..1000, not {s}")
        if not np.isfinite(g) or g < 0:
            raise ModelError(f"guidance must be a non-negative number, not {g}")
        return s, g

    def _flow_tensors(self, run: _Run, shard: Shard | None = None) -> Iterator[FlowTensor]:
        """The sampled chunks of ``run`` (only those ``shard`` owns, when given), in order."""
        s, g = self._check(run.steps, run.guidance)
        plan = self.plan(run.n_flows, run.classes, seed=run.seed, start_ns=run.start_ns)
        for k, (a, b) in enumerate(run.chunks()):
            if shard is not None and not shard.owns(k):
                continue
            labels, lengths = plan.labels[a:b], plan.lengths[a:b]
            codes, direction, iat, _ = self._denoise_chunk(labels, lengths, s, g, run.seed, k)
            offsets = np.zeros(b - a + 1, np.int64)
            np.cumsum(lengths, out=offsets[1:])
            yield FlowTensor(
                codes=codes,
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
        run = _Run(n_flows, classes, steps, guidance, seed, batch_size, DEFAULT_START_NS)
        for ft in self._flow_tensors(run):
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
        workers: int | None = None,
        allow_copies: bool = False,
    ) -> Iterator[Traffic]:
        """Repaired traffic in chunks, in global time order across chunks.

        Each chunk's flows are decoded, given addresses (``client_net`` / ``server_net``) and
        repaired; packets later than the next chunk's first flow start are held back and merged
        into the next chunk, so the concatenated chunks have non-decreasing timestamps. Flow
        ids are local to each yielded Traffic (a long flow may continue in the next one, with
        the same addresses, ports and class). Memory is bounded by ``batch_size``.

        ``workers`` processes do the CPU side (0: in a thread of this process; default:
        :func:`default_workers` when sampling on CUDA, 0 on CPU, where the sampler is the
        bottleneck and uses every core). The result does not depend on it. Workers are started
        with "forkserver" (or "spawn"), so a script that calls this with workers needs the usual
        ``if __name__ == "__main__":`` guard.

        Under a multi-process launch (``WORLD_SIZE`` > 1: ``accelerate launch``, ``torchrun``)
        the chunks are shared out across the processes (:mod:`netdiffusion.model.sharding`):
        rank 0 yields every chunk, in order, the others yield nothing.

        A generated flow equal to a training flow seen once (the model's fingerprints, see
        :mod:`netdiffusion.model.copies`) is changed by a few microseconds of one gap (or one
        TTL step for a single packet) until it is new; ``allow_copies`` leaves such flows
        as they are.
        """
        job = self._job(client_net, server_net, seed, mtu, allow_copies)
        run = _Run(n_flows, classes, steps, guidance, seed, batch_size, start_ns)
        for traffic, _gid in self._parts(run, device, progress, job, workers):
            yield traffic

    def generate_records(
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
        workers: int | None = None,
        allow_copies: bool = False,
        nanosecond: bool = False,
        path: str | os.PathLike[str] = "<memory>",
    ) -> Iterator[PcapRecords]:
        """The traffic of :meth:`generate_batches` (same arguments) as ready classic-pcap record
        bytes, chunk by chunk in time order, for :meth:`PcapWriter.write_records`.

        The workers build the records too, so the main process only merges the few packets that
        cross a chunk boundary and writes bytes. The concatenated records are byte-identical to
        writing the chunks of :meth:`generate_batches` with a ``PcapWriter`` (``path`` only
        names the output in error messages).
        """
        job = self._job(client_net, server_net, seed, mtu, allow_copies)
        job = replace(job, records=True, nanosecond=nanosecond, path=str(path))
        run = _Run(n_flows, classes, steps, guidance, seed, batch_size, start_ns)
        limits = self._limits(run)
        pending: list[PcapRecords] = []
        for k, (_ids, recs) in enumerate(self._finished(run, device, progress, job, workers)):
            out, pending = _window_records(pending, recs, limits[k])
            yield out

    def _job(
        self, client_net: str, server_net: str, seed: int, mtu: int, allow_copies: bool
    ) -> _Job:
        guarded = not allow_copies and (self.path / FINGERPRINTS_FILE).is_file()
        return _Job(
            self.stats, client_net, server_net, seed, mtu,
            fingerprints=str(self.path) if guarded else "",
            gap_quantiles=self.meta.get("gap_quantiles"),
        )  # fmt: skip

    def _limits(self, run: _Run) -> list[int | None]:
        """Per chunk: the start of the next chunk's first flow (None for the last chunk)."""
        starts = self.plan(run.n_flows, run.classes, seed=run.seed, start_ns=run.start_ns).starts
        return [int(starts[b[0]]) for b in run.chunks()[1:]] + [None]

    def _finished(
        self, run: _Run, device: str | None, progress: bool, job: _Job, workers: int | None
    ) -> Iterator[tuple[NDArray[np.int64], Any]]:
        """Global flow ids and finished form (``_finish_chunk``) of every chunk, in chunk order
        (on rank 0 of a sharded run: every rank's chunks; on the other ranks: none)."""
        from tqdm import tqdm

        if device is not None:
            self.to(device)
        if self.shard is None:
            self.shard = current_shard()
        shard = self.shard
        n_chunks = len(run.chunks())
        mine = sum(1 for k in range(n_chunks) if shard.owns(k))
        if workers is None:  # a CPU sampler is the bottleneck and uses every core itself
            w = default_workers() if self.device.type == "cuda" else 0
        else:
            w = int(workers)
        if w < 0:
            raise ModelError(f"workers must be 0 or more, not {w}")
        w = min(w, mine) if mine > 1 else 0  # one chunk: nothing to overlap
        items = self._flow_tensors(run, shard)
        finished = _finish_all(items, job, w, shard.rank, shard.world)
        own = ((ft.flow_id, done) for ft, done in finished)
        show = progress and shard.is_main
        with tqdm(total=run.n_flows, unit="flow", desc="generating", disable=not show) as bar:
            for flow_id, done in exchange(own, n_chunks, shard):
                bar.update(len(flow_id))
                yield flow_id, done

    def _parts(
        self, run: _Run, device: str | None, progress: bool, job: _Job, workers: int | None
    ) -> Iterator[tuple[Traffic, NDArray[np.int64]]]:
        """Chunks of repaired traffic and the global flow id of each of their flows."""
        pending: tuple[Traffic, NDArray[np.int64]] | None = None
        limits = self._limits(run)
        for k, (gid, t) in enumerate(self._finished(run, device, progress, job, workers)):
            if pending is not None:
                t = Traffic.concat([pending[0], t]).sorted_by_time()
                gid = np.concatenate([pending[1], gid])
            if limits[k] is None:
                out, pending = _compact(t, gid), None
            else:
                late = t.ts_ns >= limits[k]
                out = _compact(t.take(~late), gid)
                pending = _compact(t.take(late), gid) if late.any() else None
            yield out

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
        workers: int | None = None,
        allow_copies: bool = False,
    ) -> Traffic:
        """``n_flows`` generated, repaired flows as one :class:`Traffic` (see
        :meth:`generate_batches`; flow ids here are global)."""
        job = self._job(client_net, server_net, seed, mtu, allow_copies)
        run = _Run(n_flows, classes, steps, guidance, seed, batch_size, start_ns)
        parts = list(self._parts(run, device, False, job, workers))
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
            "mean_packets_per_flow": round(
                float(
                    self.class_mix(None)
                    @ (
                        np.diff(self._length_cdf, axis=1, prepend=0.0)
                        @ np.arange(1, self.max_packets + 1)
                    )
                ),
                3,
            ),
            "steps": self.default_steps,
            "guidance": self.default_guidance,
            "solver_order": int(self.solver.config.solver_order),
            "min_log_snr": self.min_log_snr,
            "bf16": self.bf16,
            "training": self.meta.get("training", {}),
            "validation": self.meta.get("validation", {}),
        }


def _length_groups(lengths: NDArray[np.int64], budget: int, wide: bool) -> list[NDArray[np.int64]]:
    """Flow indices of a chunk in denoiser calls: sorted by length, each group's padded size
    within ``budget`` packet slots; ``wide`` (CUDA, whose budget holds a whole chunk) also cuts
    where padding would exceed half the work (the group's longest flow is its last)."""
    order = np.argsort(lengths, kind="stable")
    groups = []
    i, n = 0, len(order)
    while i < n:
        j = i + 1
        while j < n and (j + 1 - i) * lengths[order[j]] <= budget:
            if wide and lengths[order[j]] > 2 * max(int(lengths[order[i]]), 4):
                break
            j += 1
        groups.append(order[i:j])
        i = j
    return groups


def _group_inputs(
    lengths: NDArray[np.int64], labels: NDArray[np.int64], idx: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Lengths, labels and the flat indices of the real (unpadded) slots of one group."""
    ln = lengths[idx]
    p = int(ln.max())
    real = np.flatnonzero(np.arange(p)[None, :] < ln[:, None])
    return ln.astype(np.int64), labels[idx].astype(np.int64), real


def _requested_order(
    lengths: NDArray[np.int64], sorted_flows: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Row indices that turn packets stored flow by flow in ``sorted_flows`` order into the
    chunk's own flow order."""
    n = len(lengths)
    off_sorted = np.zeros(n + 1, np.int64)
    np.cumsum(lengths[sorted_flows], out=off_sorted[1:])
    inv = np.empty(n, np.int64)
    inv[sorted_flows] = np.arange(n)
    seg = np.repeat(np.arange(n), lengths)
    pos = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return off_sorted[inv][seg] + pos


def _to(a: NDArray[Any], dev: Any) -> Any:
    """A host array on ``dev`` without waiting for the device's queue (the host copy is
    staged at once, so ``a`` may be reused)."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(a))
    return t if dev.type == "cpu" else t.to(dev, non_blocking=True)


def _shape_free_attention() -> Any:
    """A context that lets ``scaled_dot_product_attention`` use the flash, memory-efficient
    and math kernels only."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(
        [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    )


def _to_host(tensors: list[Any]) -> list[NDArray[Any]]:
    """``tensors`` as host arrays; from a GPU through page-locked buffers (several times the
    speed of a copy to pageable memory), one wait for all of them."""
    import torch

    if not tensors or not tensors[0].is_cuda:
        return [t.numpy() for t in tensors]
    bufs = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in tensors]
    for buf, t in zip(bufs, tensors, strict=True):
        buf.copy_(t, non_blocking=True)
    torch.cuda.current_stream(tensors[0].device).synchronize()
    return [b.numpy() for b in bufs]


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


@dataclass(frozen=True)
class _Job:
    """What a worker needs to finish a sampled chunk (small; pickled with every task)."""

    stats: RepairStats
    client_net: str
    server_net: str
    seed: int
    mtu: int
    records: bool = False  # build pcap records (else return the repaired Traffic)
    nanosecond: bool = False
    path: str = "<memory>"
    fingerprints: str = ""  # the model directory whose fingerprints no flow may copy
    gap_quantiles: dict[str, Any] | None = None  # long flows' gaps (netdiffusion.model.gaps)


def _finish_chunk(ft: FlowTensor, k: int, job: _Job) -> Traffic | PcapRecords:
    """Chunk ``k`` decoded, addressed and repaired (sorted by time), as Traffic or pcap records.

    Runs in a worker process or in-process; depends only on its arguments."""
    t = calibrate_gaps(decode_flows(ft), job.gap_quantiles)
    t = _assign(t, job.client_net, job.server_net, job.seed)
    t, _report = repair(t, synthetic=True, stats=job.stats, mtu=job.mtu, seed=job.seed + k)
    if job.fingerprints:
        known = read_fingerprints(job.fingerprints)
        if known is not None:
            t = avoid_copies(t, known)[0]
    if not job.records:
        return t
    return pcap_records(t, nanosecond=job.nanosecond, mtu=job.mtu, path=job.path)


def _finish_all(
    items: Iterator[FlowTensor], job: _Job, workers: int, chunk0: int = 0, stride: int = 1
) -> Iterator[tuple[FlowTensor, Traffic | PcapRecords]]:
    """``(chunk, _finish_chunk(chunk))`` in chunk order; sampling runs one chunk ahead in a thread,
    finishing in ``workers`` processes (0: in this thread). The ``j``-th item is chunk
    number ``chunk0 + j * stride`` of the run (a shard's chunks).

    At most ``workers + 2`` chunks are in flight. A worker's exception is raised here as it is;
    a worker that dies is a one-line :class:`ModelError`. The pool is shut down (its processes
    joined) when the iteration ends, fails or is closed early.
    """
    chunks = _prefetch(items)
    if workers <= 0:
        try:
            for j, ft in enumerate(chunks):
                yield ft, _finish_chunk(ft, chunk0 + j * stride, job)
        finally:
            chunks.close()
        return
    from concurrent.futures import Future, ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=_pool_context())
    for _ in range(workers):  # start every worker now: their imports overlap the first sample
        pool.submit(_ready)
    inflight: deque[tuple[FlowTensor, Future[Traffic | PcapRecords]]] = deque()
    try:
        for j, ft in enumerate(chunks):
            inflight.append((ft, pool.submit(_finish_chunk, ft, chunk0 + j * stride, job)))
            while inflight and (len(inflight) > workers + 1 or inflight[0][1].done()):
                first, fut = inflight.popleft()
                yield first, _result(fut)
        while inflight:
            first, fut = inflight.popleft()
            yield first, _result(fut)
    finally:
        for _ft, fut in inflight:
            fut.cancel()
        chunks.close()
        pool.shutdown(wait=True, cancel_futures=True)


def _pool_context() -> Any:
    """The worker pool's start method: "forkserver" where the platform has it (each worker a
    fork of a clean server process that imported this module once: milliseconds per worker,
    where a spawned one imports everything again), else "spawn". Neither forks this process,
    which may hold CUDA."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")


def _ready() -> None:
    """A no-op task (starts a worker process)."""


def _result(fut: Any) -> Any:
    """A worker's result; a dead worker becomes a one-line ModelError."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return fut.result()
    except BrokenProcessPool as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "it exited"
        raise ModelError(f"a generation worker process died ({reason})") from None


def _window_records(
    pending: list[PcapRecords], chunk: PcapRecords, limit: int | None
) -> tuple[PcapRecords, list[PcapRecords]]:
    """The records to write after chunk ``k`` and the ones held back.

    ``pending`` (held back from earlier chunks, oldest first) and ``chunk`` are each sorted by
    time; the records earlier than ``limit`` (the next chunk's first flow start; None: all) are
    merged in ``(time, chunk, position)`` order, exactly the stable time sort that
    :meth:`TrafficModel.generate_batches` applies. Each piece contributes a prefix, so what is
    held back is a suffix of each: a view, or for the new chunk a compact copy (bounded memory).
    """
    pieces = [*pending, chunk]
    counts = [
        p.n_packets if limit is None else int(np.searchsorted(p.ts_ns, limit, side="left"))
        for p in pieces
    ]
    rest = [
        p.tail(c, copy=p is chunk) for p, c in zip(pieces, counts, strict=True) if c < p.n_packets
    ]
    used = [(p, c) for p, c in zip(pieces, counts, strict=True) if c]
    if not used:
        return chunk.head(0), rest
    if len(used) == 1:
        return used[0][0].head(used[0][1]), rest
    return _merge_records(used, chunk.nanosecond), rest


def _merge_records(used: list[tuple[PcapRecords, int]], nanosecond: bool) -> PcapRecords:
    """The first ``c`` records of each piece, merged by stable time sort (pieces in order).

    Records move as blocks of ``g`` bytes (``g`` the shortest record, at most 64): a record's
    last block may run into the next record of the output, whose first ``g`` bytes are copied
    again once every block is in place (each record is at least ``g`` long)."""
    ts = np.concatenate([p.ts_ns[:c] for p, c in used])
    src = np.concatenate([p.starts[:c] for p, c in used])
    lens = np.concatenate([np.diff(p.ends[:c], prepend=0) for p, c in used])
    order = np.argsort(ts, kind="stable")
    ends = np.cumsum(lens[order])
    dst = np.empty(len(order), np.int64)
    dst[order] = ends - lens[order]
    out = np.empty(int(ends[-1]) + _SLACK, np.uint8)
    g = max(1, min(int(lens.min()), 64))
    bounds = np.cumsum([0] + [c for _p, c in used])
    for i, (p, _c) in enumerate(used):  # a handful of pieces
        a, b = bounds[i], bounds[i + 1]
        n_blk = (lens[a:b] + (g - 1)) // g
        nb = int(n_blk.sum())
        first = np.cumsum(n_blk) - n_blk
        rel = np.arange(0, nb * g, g, dtype=np.int64) - np.repeat(first * g, n_blk)
        _items(out, g)[np.repeat(dst[a:b], n_blk) + rel] = _items(p.data, g)[
            np.repeat(src[a:b], n_blk) + rel
        ]
    for i, (p, _c) in enumerate(used):  # then every record's first g bytes again
        a, b = bounds[i], bounds[i + 1]
        _items(out, g)[dst[a:b]] = _items(p.data, g)[src[a:b]]
    derived = np.concatenate([p.derived[:c] for p, c in used])
    return PcapRecords(out, ends, ts[order], derived[order], nanosecond)


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
