"""The three plugins shipped with netdiffusion: entry points resolve, load, and register what
they deliver (through the same hooks as any third-party plugin) and nothing else."""

from __future__ import annotations

import importlib
import importlib.metadata

import click
import pytest

from netdiffusion.plugins import ENTRYPOINT_GROUP, get_plugin_manager, load_registries

SHIPPED = {
    "scapy": "netdiffusion_scapy.plugin",
    "zeek": "netdiffusion_zeek.plugin",
    "tcpreplay": "netdiffusion_tcpreplay.plugin",
}
#: What each shipped plugin registers (registry kind -> names).
DELIVERS: dict[str, dict[str, list[str]]] = {
    "scapy": {},
    "zeek": {"commands": ["zeek"], "sinks": ["zeek", "zeek_json"]},
    "tcpreplay": {"commands": ["check", "replay"], "sinks": ["replay"]},
}
#: Hooks a shipped plugin implements besides its register_* ones.
OTHER_HOOKS: dict[str, set[str]] = {"scapy": {"to_traffic"}}


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
    assert package.__doc__ and module.__doc__


def test_each_plugin_registers_what_it_delivers() -> None:
    pm = get_plugin_manager(load_entrypoints=True)
    reg = load_registries(pm, click.Group("netdiffusion"))
    for name, module in SHIPPED.items():
        assert pm.info[name].module == module
        assert pm.info[name].distribution == "netdiffusion"
        got = {k: sorted(v) for k, v in reg.by_plugin(name).items() if v}
        assert got == DELIVERS[name], name
        hooks = {h.name for h in pm.get_hookcallers(pm.get_plugin(name))}
        want = {f"register_{kind}" for kind in DELIVERS[name]} | OTHER_HOOKS.get(name, set())
        assert hooks == want, name
