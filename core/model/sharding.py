"""Generation sharded across processes (``accelerate launch``, ``torchrun``): chunks dealt out
round-robin, finished chunks sent to rank 0, which writes them in chunk order.

A generation run is a fixed list of chunks (``batch_size`` flows each, in the order of the flow
plan). Chunk ``k`` is sampled with its own seed stream (from the run's seed and ``k``), so it is
the same wherever it is computed: process ``r`` of ``w`` samples, repairs and encodes the chunks
``k`` with ``k % w == r``, and rank 0 receives the others' results and yields every chunk in
order. The merged output is byte-identical to a single-process run with the same arguments, and
each process (each GPU) adds its share of throughput. Only rank 0 writes; the other ranks' runs
yield nothing.

Results travel over a gloo process group (CPU tensors; on NCCL runs a gloo group is made beside
it) as a small JSON header plus raw array bytes: nothing is pickled.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import numpy as np

from netdiffusion._traffic import Traffic
from netdiffusion.emit.pcap import PcapRecords
from netdiffusion.model._errors import ModelError

__all__ = ["Shard", "current_shard", "pack", "unpack"]

_KINDS: dict[str, type] = {"Traffic": Traffic, "PcapRecords": PcapRecords}
_MAX_IN_FLIGHT = 2  # results a rank may have sent ahead of rank 0's reading


@dataclass(frozen=True)
class Shard:
    """This process's place in a sharded run: ``rank`` of ``world``; ``group`` is the gloo
    process group results travel in (None: the default group, or a single process)."""

    rank: int = 0
    world: int = 1
    group: Any = None
    local_rank: int = 0
    local_world: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes the output."""
        return self.rank == 0

    def owns(self, chunk: int) -> bool:
        """Whether chunk number ``chunk`` is sampled here."""
        return chunk % self.world == self.rank


def current_shard() -> Shard:
    """The shard of this process: a single one unless launched with several processes
    (``WORLD_SIZE`` > 1, as ``accelerate launch`` and ``torchrun`` set), in which case the
    process group is started (through accelerate) and a gloo group made for the results."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Shard()
    import torch
    import torch.distributed as dist
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    group = None
    if dist.get_backend() != "gloo":
        group = dist.new_group(backend="gloo")
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(state.num_processes)) or 1)
    return Shard(
        state.process_index, state.num_processes, group, state.local_process_index, local_world
    )


# -- (de)serialisation without pickle -----------------------------------------------------------


def pack(obj: Traffic | PcapRecords) -> bytes:
    """``obj`` as bytes: a JSON header (class, array dtypes and shapes, other fields) and the
    arrays' raw bytes."""
    kind = type(obj).__name__
    if kind not in _KINDS or not is_dataclass(obj):
        raise TypeError(f"cannot pack {kind}")
    arrays: list[np.ndarray] = []
    spec: dict[str, Any] = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray):
            a = np.ascontiguousarray(v)
            spec[f.name] = {"dtype": a.dtype.str, "shape": list(a.shape)}
            arrays.append(a)
        else:
            spec[f.name] = {"value": v}
    head = json.dumps({"kind": kind, "fields": spec}).encode()
    parts = [np.uint64(len(head)).tobytes(), head, *(a.tobytes() for a in arrays)]
    return b"".join(parts)


def unpack(data: bytes | memoryview | np.ndarray) -> Traffic | PcapRecords:
    """Inverse of :func:`pack`."""
    buf = np.frombuffer(data, np.uint8)
    n = int(buf[:8].view(np.uint64)[0])
    head = json.loads(buf[8 : 8 + n].tobytes())
    pos = 8 + n
    kw: dict[str, Any] = {}
    for name, s in head["fields"].items():
        if "value" in s:
            kw[name] = s["value"]
            continue
        dt = np.dtype(s["dtype"])
        count = int(np.prod(s["shape"], dtype=np.int64))
        end = pos + count * dt.itemsize
        kw[name] = buf[pos:end].view(dt).reshape(s["shape"]).copy()
        pos = end
    return _KINDS[head["kind"]](**kw)


# -- the exchange ---------------------------------------------------------------------------------


def _send(payload: bytes, shard: Shard) -> list[Any]:
    """Start sending ``payload`` (chunk flow ids + result) to rank 0; returns the pending works."""
    import torch
    import torch.distributed as dist

    body = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
    size = torch.tensor([len(payload)], dtype=torch.int64)
    return [
        dist.isend(size, 0, group=shard.group),
        dist.isend(body, 0, group=shard.group),
    ]


def _recv(src: int, shard: Shard) -> bytes:
    import torch
    import torch.distributed as dist

    size = torch.zeros(1, dtype=torch.int64)
    dist.recv(size, src, group=shard.group)
    body = torch.empty(int(size.item()), dtype=torch.uint8)
    dist.recv(body, src, group=shard.group)
    return body.numpy().tobytes()


def _pack_item(flow_id: np.ndarray, done: Traffic | PcapRecords) -> bytes:
    ids = np.ascontiguousarray(flow_id, np.int64)
    return np.uint64(len(ids)).tobytes() + ids.tobytes() + pack(done)


def _unpack_item(data: bytes) -> tuple[np.ndarray, Traffic | PcapRecords]:
    n = int(np.frombuffer(data[:8], np.uint64)[0])
    ids = np.frombuffer(data[8 : 8 + 8 * n], np.int64).copy()
    return ids, unpack(memoryview(data)[8 + 8 * n :])


def exchange(
    own: Iterator[tuple[np.ndarray, Traffic | PcapRecords]],
    n_chunks: int,
    shard: Shard,
) -> Iterator[tuple[np.ndarray, Traffic | PcapRecords]]:
    """Every chunk's ``(flow ids, result)`` in chunk order on rank 0 (``own``: this rank's
    chunks, in order); other ranks send theirs and yield nothing."""
    if shard.world <= 1:
        yield from own
        return
    if not shard.is_main:
        pending: deque[list[Any]] = deque()
        for flow_id, done in own:
            pending.append(_send(_pack_item(flow_id, done), shard))
            while len(pending) > _MAX_IN_FLIGHT:
                for w in pending.popleft():
                    w.wait()
        for works in pending:
            for w in works:
                w.wait()
        return
    k = 0
    try:
        while k < n_chunks:
            if shard.owns(k):
                try:
                    item = next(own)
                except StopIteration:
                    raise ModelError(f"rank 0 ran out of chunks at chunk {k}") from None
            else:
                item = _unpack_item(_recv(k % shard.world, shard))
            k += 1
            yield item
    finally:
        # stopped early (e.g. enough packets written): take the other ranks' remaining chunks
        # so that none of them waits forever on its sends
        for j in range(k, n_chunks):
            if not shard.owns(j):
                _recv(j % shard.world, shard)
