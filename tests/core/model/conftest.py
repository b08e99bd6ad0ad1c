"""A tiny model trained once per session on real captures, shared by the model tests."""

from __future__ import annotations

from pathlib import Path

import pytest

CLASSES = ["Aria", "D-LinkDayCam", "EdnetGateway"]  # TCP + UDP + ICMP between them
TINY = {"width": 32, "layers": 1, "heads": 2}


@pytest.fixture(scope="session")
def tiny_traffic(shared_data: Path):
    """Labelled flows of three IoT SENTINEL classes."""
    from netdiffusion.flows import assemble_flows
    from netdiffusion.inputs import expand_captures, read_captures
    from netdiffusion.labels import label_by_folder

    base = shared_data / "iot-sentinel" / "captures"
    if not all((base / c).is_dir() for c in CLASSES):
        pytest.skip("IoT SENTINEL captures not found")
    files = expand_captures([base / c for c in CLASSES])
    traffic, _ = read_captures(files, keep_payload=False, progress=False)
    return label_by_folder(assemble_flows(traffic))[0]


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_traffic, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory trained for 200 steps (seconds on CPU).

    v-prediction on purpose: after 200 steps its samples are still noisy, with long gaps, so
    flows reach across chunk boundaries and the chunk-merge paths of the worker tests run
    (the x0 default gives tidy short flows that never cross).
    """
    from netdiffusion.model import train_model

    out = tmp_path_factory.mktemp("model") / "tiny"
    res = train_model(
        tiny_traffic, out, max_packets=16, config=TINY, steps=200, batch_size=32, seed=0,
        checkpoint_every=100, progress=False, prediction_type="v_prediction",
    )  # fmt: skip
    assert res.steps == 200 and res.train_flows > 0 and res.val_flows > 0
    assert set(res.val_loss_per_class) <= set(CLASSES)
    return out
