"""The dataset writer streams the arrays itself: its file is byte for byte safetensors' own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save

from netdiffusion import Traffic
from netdiffusion.dataset import _PACKET_COLUMNS, dataset_schema, load_dataset, save_dataset
from netdiffusion.flows import assemble_flows
from netdiffusion.inputs import expand_captures, read_captures
from netdiffusion.labels import label_by_folder


def _reference(t: Traffic, store_payload: bool, extra: dict | None) -> bytes:
    """What ``safetensors.numpy.save`` writes for the same columns and schema."""
    tensors = {
        n: np.ascontiguousarray(getattr(t, n), dtype=d) for n, (d, _) in _PACKET_COLUMNS.items()
    }
    tensors["flow_label"] = np.ascontiguousarray(t.flow_label, np.int32)
    if store_payload:
        tensors["payload"] = np.ascontiguousarray(t.payload, np.uint8)
        tensors["payload_off"] = np.ascontiguousarray(t.payload_off, np.int64)
    schema = dataset_schema(t, store_payload=store_payload)
    schema.update(extra or {})
    return save(tensors, metadata={"netdiffusion": json.dumps(schema)})


@pytest.mark.parametrize("store_payload", [False, True])
def test_bytes_match_safetensors(shared_data: Path, tmp_path: Path, store_payload: bool) -> None:
    files = expand_captures([shared_data / "tcpreplay", shared_data / "zeek-baselines"])
    t, _ = read_captures(files, progress=False)
    t, _ = label_by_folder(assemble_flows(t))
    extra = {"note": 'quote " backslash \\ and é'}
    path = tmp_path / "d.safetensors"
    save_dataset(t, path, store_payload=store_payload, extra=extra)
    assert path.read_bytes() == _reference(t, store_payload, extra)
    back = load_dataset(path)
    assert np.array_equal(back.ip, t.ip) and np.array_equal(back.flow_label, t.flow_label)


def test_empty_traffic_bytes_match_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "e.safetensors"
    save_dataset(Traffic.empty(), path, store_payload=True)
    assert path.read_bytes() == _reference(Traffic.empty(), True, None)
