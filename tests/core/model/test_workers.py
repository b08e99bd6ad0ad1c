"""The worker pool of generation: the same bytes whatever the number of workers, chunks in time
order, worker failures as one-line errors, and no process left behind."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

KW = {"steps": 2, "seed": 11, "batch_size": 48}
N_FLOWS = 200  # 5 chunks


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path):
    from netdiffusion.model import load_model

    m = load_model(tiny_model_dir, device="cpu")
    # flows start 1 ms apart on average: many outlast the next chunk's first start, so packets
    # cross chunk boundaries and the merge paths run
    m.flow_gap_ns = 1e6
    return m


def _no_children() -> None:
    assert multiprocessing.active_children() == []


def _records_bytes(chunks) -> bytes:
    return b"".join(bytes(c.data[: c.nbytes]) for c in chunks)


def test_same_bytes_for_any_number_of_workers(
    model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from netdiffusion.emit.pcap import PcapWriter
    from netdiffusion.model import sampling

    merged: list[int] = []
    merge = sampling._merge_records

    def spy(used, nanosecond):
        merged.append(len(used))
        return merge(used, nanosecond)

    monkeypatch.setattr(sampling, "_merge_records", spy)
    # reference: the Traffic chunks, written one by one, all in this process
    with PcapWriter(tmp_path / "ref.pcap") as writer:
        for chunk in model.generate_batches(N_FLOWS, workers=0, **KW):
            writer.write(chunk)
    ref = (tmp_path / "ref.pcap").read_bytes()
    for workers in (0, 2):
        with PcapWriter(tmp_path / f"w{workers}.pcap") as writer:
            for recs in model.generate_records(N_FLOWS, workers=workers, **KW):
                writer.write_records(recs)
        assert (tmp_path / f"w{workers}.pcap").read_bytes() == ref
        assert writer.report is not None and writer.report.out_of_order == 0
    assert merged and max(merged) >= 2  # packets crossed chunk boundaries and were merged
    # the Traffic API too
    a = model.generate(N_FLOWS, workers=0, **KW)
    b = model.generate(N_FLOWS, workers=2, **KW)
    for col in ("ts_ns", "ip", "l4", "payload", "payload_off", "mac", "flow", "flow_label"):
        assert np.array_equal(getattr(a, col), getattr(b, col)), col
    _no_children()


def test_cli_workers_byte_identical(tiny_model_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from netdiffusion.cli import main

    outs = {}
    for workers in ("0", "2"):
        for suffix in ("pcap", "pcapng"):
            out = tmp_path / f"g{workers}.{suffix}"
            args = ["generate", "--model", str(tiny_model_dir), "--flows", str(N_FLOWS)]
            args += ["--steps", "2", "--seed", "11", "--batch-size", "48"]
            args += ["--packets", "800", "--workers", workers, "-o", str(out)]
            res = CliRunner().invoke(main, args)
            assert res.exit_code == 0, res.output
            assert "800 packets written" in res.output
            outs[workers, suffix] = out.read_bytes()
    assert outs["0", "pcap"] == outs["2", "pcap"]
    assert outs["0", "pcapng"] == outs["2", "pcapng"]
    _no_children()


def test_chunks_in_time_order_and_early_stop(model) -> None:
    chunks = model.generate_records(N_FLOWS, workers=2, **KW)
    parts = list(chunks)
    assert len(parts) == 5
    ts = np.concatenate([p.ts_ns for p in parts])
    assert len(ts) > N_FLOWS and (np.diff(ts) >= 0).all()
    # closing the stream after its first chunk stops the pool
    gen = model.generate_records(N_FLOWS, workers=2, **KW)
    first = next(gen)
    assert np.array_equal(first.ts_ns, parts[0].ts_ns)
    gen.close()
    _no_children()


def test_window_merge_is_a_stable_time_sort() -> None:
    from netdiffusion.emit.pcap import PcapRecords
    from netdiffusion.model.sampling import _window_records

    rng = np.random.default_rng(0)

    def piece(n: int, tag: int) -> PcapRecords:
        lens = rng.integers(58, 200, n)
        ends = np.cumsum(lens)
        data = rng.integers(0, 256, int(ends[-1]) + 256, dtype=np.uint8)
        data[ends - lens] = tag  # first byte names the piece
        ts = np.sort(rng.integers(0, 50, n))
        return PcapRecords(data, ends, ts, np.zeros(n, np.bool_))

    pieces = [piece(n, i) for i, n in enumerate((30, 1, 45))]
    out, rest = _window_records(pieces[:2], pieces[2], limit=40)
    # reference: every record below the limit, stably sorted by time, pieces in order
    recs = [
        (int(p.ts_ns[i]), k, bytes(p.data[p.starts[i] : p.ends[i]]))
        for k, p in enumerate(pieces)
        for i in range(p.n_packets)
        if p.ts_ns[i] < 40
    ]
    recs.sort(key=lambda r: (r[0], r[1]))
    assert bytes(out.data[: out.nbytes]) == b"".join(r[2] for r in recs)
    assert list(out.ts_ns) == [r[0] for r in recs]
    held = sum(int((p.ts_ns >= 40).sum()) for p in pieces)
    assert sum(r.n_packets for r in rest) == held and all((r.ts_ns >= 40).all() for r in rest)


def test_worker_error_is_one_line(model, tiny_model_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from netdiffusion.cli import main
    from netdiffusion.model import ModelError

    with pytest.raises(ModelError) as err:  # raised by _assign inside a worker
        list(model.generate_records(N_FLOWS, workers=2, client_net="not-a-net", **KW))
    assert "\n" not in str(err.value) and "not-a-net" in str(err.value)
    _no_children()
    out = tmp_path / "bad.pcap"
    args = ["generate", "--model", str(tiny_model_dir), "--flows", str(N_FLOWS), "--steps", "2"]
    args += ["--batch-size", "48", "--workers", "2", "--client-net", "not-a-net", "-o", str(out)]
    res = CliRunner().invoke(main, args)
    last = res.output.strip().splitlines()[-1]  # after the progress bar
    assert res.exit_code == 1 and last.startswith("Error: ") and "not-a-net" in last
    assert "Traceback" not in res.output and res.output.count("Error") == 1
    assert not out.exists()
    _no_children()


class _Crash:
    """A task argument that kills the worker process unpickling it."""

    def __reduce__(self):
        return (os._exit, (3,))


def test_dead_worker_is_one_line_error_not_a_hang(model) -> None:
    from netdiffusion.model import ModelError
    from netdiffusion.model.sampling import _finish_all, _Job

    job = _Job(model.stats, "10.0.0.0/16", "198.18.0.0/15", 0, 1500)
    with pytest.raises(ModelError, match="worker process died") as err:
        list(_finish_all(iter([_Crash(), _Crash()]), job, 2))
    assert "\n" not in str(err.value)
    _no_children()


def test_default_workers() -> None:
    from netdiffusion.model.sampling import MAX_WORKERS, default_workers

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_workers() == max(0, min((cores or 1) - 1, MAX_WORKERS))
