"""Class conditioning is real: a random forest trained on real flows of three distinct IoT device
classes assigns the flows a tiny model generates for each class to that class at least 0.8 times
as often as it assigns held-out real flows (capture files neither it nor the model saw) to
theirs. Flow features are those of :func:`netdiffusion.fidelity.flow_fields`; both accuracies
are balanced (the mean of the per-class recalls)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# three classes a random forest separates well on flow features (held-out accuracy 1.0)
CLASSES = ["Lightify", "WeMoSwitch", "TP-LinkPlugHS110"]
MAX_PACKETS = 8
TINY = {"width": 64, "layers": 2, "heads": 2}
# the cheapest configuration found that clears the bar (about 20 s of training on 2 idle cores):
# x0 ("sample") prediction; with the default v-prediction even 5,000 steps give near-random bits
STEPS = 1000
BATCH = 64
LR = 3e-3
PREDICTION = "sample"
GUIDANCE = 2.0
FLOWS_PER_CLASS = 150


def _split(base: Path) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files): per class, files in name order, index % 5 == 2 held out
    (the rule of scripts/build_default_model.py)."""
    train: list[Path] = []
    held: list[Path] = []
    for c in CLASSES:
        for i, path in enumerate(sorted((base / c).glob("*.pcap"))):
            (held if i % 5 == 2 else train).append(path)
    return train, held


def _read(files: list[Path]):  # type: ignore[no-untyped-def]
    from netdiffusion.flows import assemble_flows
    from netdiffusion.inputs import read_captures
    from netdiffusion.labels import label_by_folder

    traffic, _ = read_captures(files, keep_payload=False, progress=False)
    return label_by_folder(assemble_flows(traffic))[0]


def _y(fields) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.array([CLASSES.index(fields.classes[i]) for i in fields.label], np.int64)


def test_generated_flows_are_classified_as_their_requested_class(
    shared_data: Path, tmp_path: Path
) -> None:
    pytest.importorskip("sklearn")
    from sklearn.metrics import balanced_accuracy_score

    from netdiffusion import fidelity as fd
    from netdiffusion.flows import cap_flows
    from netdiffusion.model import load_model, train_model

    base = shared_data / "iot-sentinel" / "captures"
    if not all((base / c).is_dir() for c in CLASSES):
        pytest.skip("IoT SENTINEL captures not found")
    train_files, held_files = _split(base)
    train, held = _read(train_files), _read(held_files)
    assert not set(train.files) & set(held.files)

    # the classifier: real flows of the training files, cut to the model's flow length
    real_train = fd.flow_fields(cap_flows(train, MAX_PACKETS)[0])
    real_held = fd.flow_fields(cap_flows(held, MAX_PACKETS)[0])
    clf = fd.train_random_forest(fd.flow_matrix(real_train), _y(real_train), seed=0)
    real_acc = balanced_accuracy_score(_y(real_held), clf.predict(fd.flow_matrix(real_held)))
    assert real_acc > 0.8, f"the classes are not distinct enough: held-out accuracy {real_acc}"

    out = tmp_path / "tiny"
    train_model(
        train, out, max_packets=MAX_PACKETS, config=TINY, steps=STEPS, batch_size=BATCH,
        lr=LR, prediction_type=PREDICTION, seed=0, val_fraction=0, progress=False,
    )  # fmt: skip
    model = load_model(out, device="cpu")
    recalls = []
    for i, c in enumerate(CLASSES):
        traffic = model.generate(FLOWS_PER_CLASS, classes=[c], seed=i, guidance=GUIDANCE)
        gen = fd.flow_fields(traffic)
        assert len(gen) == FLOWS_PER_CLASS and {gen.classes[k] for k in gen.label} == {c}
        recalls.append(float((clf.predict(fd.flow_matrix(gen)) == i).mean()))
    gen_acc = float(np.mean(recalls))
    print(f"held-out real accuracy {real_acc:.3f}, generated {gen_acc:.3f} per class {recalls}")
    assert gen_acc >= 0.8 * real_acc, (
        f"generated flows classified as requested {gen_acc:.3f} (per class {recalls}) < 0.8 x "
        f"held-out real accuracy {real_acc:.3f}"
    )
