"""The three plugins shipped with netdiffusion: entry points resolve, load, register no fakes."""

from __future__ import annotations

import importlib
import importlib.metadata

import pytest

from netdiffusion.plugins import ENTRYPOINT_GROUP, get_plugin_manager, load_registries

SHIPPED = {
    "scapy": "netdiffusion_scapy.plugin",
    "zeek": "netdiffusion_zeek.plugin",
    "tcpreplay": "netdiffusion_tcpreplay.plugin",
}


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    eps = importlib.metadata.entry_points(group=ENTRYPOINT_GROUP)
    return {ep.name: ep for ep in eps if ep.name in SHIPPED}


def test_entry_points_declared() -> None:
    eps = _entry_points()
    assert {name: ep.value for name, ep in eps.items()} == SHIPPED
    for ep in eps.values():
        assert ep.dist is not None and ep.dist.metadata["Name"] == "netdiffusion"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_entry_point_loads(name: str) -> None:
    module = _entry_points()[name].load()
    assert module.__name__ == SHIPPED[name]
    package = importlib.import_module(SHIPPED[name].rpartition(".")[0])
    assert package.__doc__ and "will deliver" in package.__doc__
    assert module.__doc__


def test_loaded_by_plugin_manager_without_fake_features() -> None:
    pm = get_plugin_manager(load_entrypoints=True)
    reg = load_registries(pm)
    for name, module in SHIPPED.items():
        assert pm.info[name].module == module
        assert pm.info[name].distribution == "netdiffusion"
        # Their features come in later issues: nothing registered yet, no hooks implemented.
        assert reg.by_plugin(name) == {}
        assert pm.get_hookcallers(pm.get_plugin(name)) == []
