"""The top-level Python API (``netdiffusion.load_model``, ``train``, ``encode``, ``to_traffic``)
and the ``to_traffic`` hook, with fake plugins (no Scapy here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import netdiffusion
from netdiffusion import Traffic, hookspecs
from netdiffusion.hookspecs import hookimpl
from netdiffusion.plugins import LoadedPlugins, get_plugin_manager, load_registries

ROOT = Path(__file__).resolve().parents[2]


class Foreign:
    """Somebody else's packet list: n packets, all TCP."""

    def __init__(self, n: int) -> None:
        self.n = n


def _foreign_traffic(obj: Foreign) -> Traffic:
    t = Traffic.empty(obj.n)
    t.ip[:, 0], t.ip[:, 9], t.l4[:, 12] = 0x45, 6, 0x50
    t.ip[:, 12:16] = (10, 0, 0, 1)
    t.ip[:, 16:20] = (10, 0, 0, 2)
    t.ts_ns[:] = np.arange(obj.n) * 1000
    t.file[:] = 0
    t.files = ["<foreign>"]
    return t


class DeclinesEverything:
    @staticmethod
    @hookimpl
    def to_traffic(obj: object) -> Traffic | None:
        return None


class KnowsForeign:
    @staticmethod
    @hookimpl
    def to_traffic(obj: object) -> Traffic | None:
        return _foreign_traffic(obj) if isinstance(obj, Foreign) else None


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process-wide plugins: the core's, one that declines, one that converts Foreign."""
    import netdiffusion.plugins as plugins_module

    pm = get_plugin_manager(load_entrypoints=False)
    pm.add_plugin(DeclinesEverything, "declines")
    pm.add_plugin(KnowsForeign, "foreign")
    monkeypatch.setattr(plugins_module, "_default", LoadedPlugins(pm, load_registries(pm)))


def test_import_is_cheap_and_load_model_is_lazy() -> None:
    code = (
        "import sys, netdiffusion; a = 'torch' in sys.modules; "
        "from netdiffusion.model import load_model; "
        "print(a, netdiffusion.load_model is load_model)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "True"], out.stderr
    assert {"load_model", "train", "encode", "to_traffic"} <= set(netdiffusion.__all__)
    with pytest.raises(AttributeError):
        netdiffusion.no_such_name  # noqa: B018


def test_hook_to_traffic_first_answer_wins(plugins: None) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    pm.add_plugin(KnowsForeign, "foreign")
    pm.add_plugin(DeclinesEverything, "declines")
    assert pm.hook.to_traffic(obj=Foreign(3)).n_packets == 3
    assert pm.hook.to_traffic(obj=object()) is None
    assert "to_traffic" in hookspecs.__all__
    assert netdiffusion.to_traffic(Foreign(4)).n_packets == 4
    assert netdiffusion.to_traffic(Foreign(4), name="mine").files == ["mine"]


def test_unknown_objects_are_one_line_errors(plugins: None) -> None:
    for bad in (object(), [1, 2], 3.5):
        with pytest.raises(ValueError, match=r"cannot use a .* as traffic") as err:
            netdiffusion.encode(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="mapping is empty"):
        netdiffusion.train({}, out="unused")
    with pytest.raises(ValueError, match="labels= cannot be combined"):
        netdiffusion.encode({"a": Foreign(2)}, labels="folder")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        netdiffusion.encode("/nonexistent/capture.pcap")


def test_encode_foreign_packets_and_mappings(plugins: None, tmp_path: Path) -> None:
    from netdiffusion.dataset import load_dataset

    flows = netdiffusion.encode(Foreign(5), tmp_path / "one.safetensors", labels="web")
    assert flows.n_flows == 1 and flows.classes == ["web"] and flows.flow_label.tolist() == [0]
    assert load_dataset(tmp_path / "one.safetensors").n_packets == 5
    both = netdiffusion.encode({"a": Foreign(2), "b": _foreign_traffic(Foreign(3))})
    assert both.classes == ["a", "b"] and both.n_flows == 2
    assert sorted(both.flow_label.tolist()) == [0, 1]
    assert np.bincount(both.flow).tolist() == [2, 3]


def test_encode_captures_like_the_cli(shared_data: Path, tmp_path: Path) -> None:
    from netdiffusion.inputs import read_flows

    base = shared_data / "iot-sentinel" / "captures"
    folders = [base / "Aria", base / "HueBridge"]
    if not all(f.is_dir() for f in folders):
        pytest.skip("IoT SENTINEL captures not found")
    got = netdiffusion.encode(folders, labels="folder", max_packets=8)
    want, _, _ = read_flows(folders, labels="folder", progress=False)
    assert got.classes == want.classes == ["Aria", "HueBridge"]
    assert got.n_flows == want.n_flows and np.array_equal(got.flow_label, want.flow_label)
    assert got.n_packets <= want.n_packets
    assert netdiffusion.encode(got) is got  # assembled, labelled traffic passes through
