"""`netdiffusion evaluate` end to end on small real captures (synthetic side: other real files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from netdiffusion.cli import main

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

CLASSES = ("Aria", "EdnetGateway", "TP-LinkPlugHS110")
PNG = b"\x89PNG\r\n\x1a\n"


def _files(base: Path, part: slice) -> list[Path]:
    return [p for c in CLASSES for p in sorted((base / c).glob("*.pcap"))[part]]


@pytest.fixture(scope="module")
def report(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    base = shared_data / "iot-sentinel" / "captures"
    if not all((base / c).is_dir() for c in CLASSES):
        pytest.skip("IoT SENTINEL captures not found")
    out = tmp_path_factory.mktemp("eval") / "report"
    args = ["evaluate", "-o", str(out), "--trees", "20", "--seed", "1"]
    args += [x for p in _files(base, slice(0, 4)) for x in ("--real", str(p))]
    args += [x for p in _files(base, slice(4, 8)) for x in ("--synthetic", str(p))]
    args += [x for p in _files(base, slice(8, 12)) for x in ("--train", str(p))]
    if shutil.which("tshark") is None:
        args.append("--no-tshark")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_report_json_has_every_family(report: tuple[Path, str]) -> None:
    out, printed = report
    figs = json.loads((out / "report.json").read_text())
    for key in (
        "discriminator.roc_auc",
        "discriminator.nprint.roc_auc",
        "fidelity.nprint.jsd",
        "fidelity.nprint.tv",
        "fidelity.nprint.hellinger",
        "fidelity.packet.size.emd",
        "fidelity.flow.duration.jsd",
        "fidelity.per_class.Aria.flow.mean_jsd",
        "utility.trtr.macro_f1",
        "utility.tstr.macro_f1",
        "utility.augment.50.macro_f1",
        "utility.imbalance.augmented.rf.flow.minority_f1",
        "utility.trtr.mlp.nprint.macro_f1",
        "privacy.exact_copies",
        "privacy.membership_auc",
        "privacy.nn_distance_ratio",
        "validity.real.checksum.l4_bad_rate",
        "validity.synthetic.tcp.handshake_rate",
        "validity.real.zeek.connections",
        "baselines.real_resample.discriminator.roc_auc",
        "baselines.independent_marginals.fidelity.flow.mean_jsd",
        "baselines.real_resample.privacy.exact_copies",
    ):
        assert key in figs, key
    for key, v in figs.items():
        assert v is None or isinstance(v, int | float | str), key
        if key.endswith(("roc_auc", "macro_f1", ".jsd", ".tv", ".hellinger", "_rate")):
            assert v is None or 0.0 <= v <= 1.0, (key, v)
    # real traffic against other real files of the same devices: the synthetic side here is
    # real, so it sits at the floor and a classifier trained on it works
    assert figs["utility.tstr.macro_f1"] > 0.5
    assert figs["counts.synthetic.flows"] > 0 and figs["meta.classes"] == 3
    if shutil.which("tshark"):
        assert figs["validity.real.tshark.packets"] > 0
        assert "validity.synthetic.tshark.error_rate" in figs
    assert "discriminator ROC AUC" in printed and "report written to" in printed


def test_markdown_and_plots(report: tuple[Path, str]) -> None:
    out, _ = report
    md = (out / "report.md").read_text()
    assert md.startswith("# netdiffusion evaluation report")
    assert "## Summary" in md and "TSTR / TRTR" in md
    for name in ("packet_size", "inter_arrival", "flow_length", "flow_bytes", "ttl",
                 "tcp_flags", "service_port", "conn_state", "roc"):  # fmt: skip
        png = out / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG, name
        assert f"plots/{name}.png" in md


def test_refuses_a_non_empty_report_dir(report: tuple[Path, str], shared_data: Path) -> None:
    out, _ = report
    real = _files(shared_data / "iot-sentinel" / "captures", slice(0, 1))[0]
    result = CliRunner().invoke(
        main, ["evaluate", "--real", str(real), "--synthetic", str(real), "-o", str(out)]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error:")
    assert "--force" in result.output and "Traceback" not in result.output


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["evaluate", "--real", str(tmp_path / "nope.pcap"), "--synthetic", "default",
               "-o", str(tmp_path / "r")],
    )  # fmt: skip
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "nope.pcap" in last and "no such file" in last
    assert "Traceback" not in result.output
