"""The plugin manager, the registries and each hook (one ``test_hook_<name>`` per hookspec)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from click.testing import CliRunner

from netdiffusion import hookspecs
from netdiffusion._traffic import Traffic
from netdiffusion.cli import create_cli
from netdiffusion.hookspecs import hookimpl
from netdiffusion.plugins import (
    BUILTIN_PLUGIN,
    LoadedPlugins,
    PluginManager,
    blocked_plugins,
    get_plugin_manager,
    load_registries,
)
from netdiffusion.registry import PluginError, Registries, validate_name


def _pm(*plugins: tuple[str, object]) -> PluginManager:
    pm = get_plugin_manager(load_entrypoints=False)
    for name, plugin in plugins:
        pm.add_plugin(plugin, name)
    pm.check_pending()
    return pm


class _Identity:
    def encode(self, traffic: Traffic, **options: Any) -> Traffic:
        return traffic

    def decode(self, data: Any, **options: Any) -> Any:
        return data


def _bump_ttl(traffic: Traffic) -> Traffic:
    out = traffic.copy()
    out.ip[:, 8] = out.ip[:, 8] + 1
    return out


# --- one test per hook ---------------------------------------------------------------------


def test_hook_register_encoders() -> None:
    enc = _Identity()

    class Plugin:
        @hookimpl
        def register_encoders(self, register: Any) -> None:
            register("ident", enc, description="identity")

    reg = load_registries(_pm(("p", Plugin())))
    entry = reg.encoders["ident"]
    assert entry.encoder is enc and entry.plugin == "p" and entry.description == "identity"
    t = Traffic.empty(3)
    assert entry.encoder.decode(entry.encoder.encode(t)) is t
    assert reg.by_plugin("p") == {"encoders": ["ident"]}


def test_hook_register_generators(tmp_path: Path) -> None:
    loaded: list[Path] = []

    def load(model_dir: Path) -> str:
        loaded.append(model_dir)
        return f"model at {model_dir}"

    class Plugin:
        @hookimpl
        def register_generators(self, register: Any) -> None:
            register("toy", load)

    reg = load_registries(_pm(("gen", Plugin())))
    entry = reg.generators.require("toy")
    assert entry.plugin == "gen"
    assert entry.loader(tmp_path) == f"model at {tmp_path}"
    assert loaded == [tmp_path]


def test_hook_register_repairers() -> None:
    order: list[str] = []

    def first(t: Traffic) -> Traffic:
        order.append("first")
        return _bump_ttl(t)

    def second(t: Traffic) -> Traffic:
        order.append("second")
        return _bump_ttl(t)

    class Plugin:
        @hookimpl
        def register_repairers(self, register: Any) -> None:
            register("first", first)
            register("second", second, description="adds one to the TTL")

    reg = load_registries(_pm(("fix", Plugin())))
    assert list(reg.repairers) == ["first", "second"]
    t = Traffic.empty(4)
    t.ip[:, 8] = np.array([1, 2, 3, 4], np.uint8)
    out = reg.apply_repairers(t)
    assert order == ["first", "second"]
    assert out.ip[:, 8].tolist() == [3, 4, 5, 6]
    assert t.ip[:, 8].tolist() == [1, 2, 3, 4]


def test_hook_register_emitters(tmp_path: Path) -> None:
    def write_count(traffic: Traffic, path: Any, *, header: str = "n") -> None:
        Path(path).write_text(f"{header}={len(traffic)}\n")

    class Plugin:
        @hookimpl
        def register_emitters(self, register: Any) -> None:
            register("count", write_count, suffix=".txt", description="packet count")

    reg = load_registries(_pm(("counter", Plugin())))
    entry = reg.emitters["count"]
    assert (entry.suffix, entry.description, entry.plugin) == (".txt", "packet count", "counter")
    out = tmp_path / f"x{entry.suffix}"
    entry(Traffic.empty(7), out, header="packets")
    assert out.read_text() == "packets=7\n"
    # The built-in plugin's emitters are there too, attributed to the core.
    assert {"pcap", "pcapng"} <= set(reg.emitters)
    assert reg.emitters["pcap"].plugin == BUILTIN_PLUGIN


def test_hook_register_commands() -> None:
    class Plugin:
        @hookimpl
        def register_commands(self, cli: click.Group) -> None:
            @cli.command(name="say-hi")
            @click.argument("who")
            def say_hi(who: str) -> None:
                """Greet someone."""
                click.echo(f"hi {who}")

    cli = create_cli(load_entrypoints=False)
    pm = _pm(("greeter", Plugin()))
    reg = load_registries(pm, cli=cli)
    cli._plugins = LoadedPlugins(pm=pm, registries=reg)
    assert reg.commands["say-hi"].plugin == "greeter"
    assert reg.commands["say-hi"].description == "Greet someone."
    assert reg.commands["plugins"].plugin == BUILTIN_PLUGIN
    result = CliRunner().invoke(cli, ["say-hi", "you"])
    assert result.exit_code == 0, result.output
    assert result.output == "hi you\n"


def test_hook_register_sinks(tmp_path: Path) -> None:
    from netdiffusion.capture import read_capture

    seen: dict[str, Any] = {"chunks": 0, "packets": 0}

    class CountSink:
        def __init__(self, value: str, **context: Any) -> None:
            seen["value"], seen["context"] = value, context

        def add(self, traffic: Traffic) -> None:
            seen["chunks"] += 1
            seen["packets"] += traffic.n_packets

        def close(self, output: Any) -> str:
            seen["closed"] = Path(output).is_file()
            return f"counted {seen['packets']} packets"

    class Plugin:
        @hookimpl
        def register_sinks(self, register: Any) -> None:
            register("count_to", CountSink, metavar="LABEL", help="Count what is generated.")
            register("after", CountSink, metavar="X", help="Needs a capture.", needs_pcap=True)

    cli = create_cli(load_entrypoints=False)
    pm = _pm(("counter", Plugin()))
    reg = load_registries(pm, cli=cli)
    cli._plugins = LoadedPlugins(pm=pm, registries=reg)
    entry = reg.sinks["count_to"]
    assert (entry.plugin, entry.option, entry.metavar) == ("counter", "--count-to", "LABEL")
    assert reg.by_plugin("counter") == {"sinks": ["count_to", "after"]}
    runner = CliRunner()
    help_text = runner.invoke(cli, ["generate", "--help"]).output
    assert "--count-to LABEL" in help_text and "[plugin: counter]" in help_text

    out = tmp_path / "g.pcap"
    args = ["generate", "--flows", "8", "--count-to", "hello", "--client-net", "10.9.0.0/16"]
    result = runner.invoke(cli, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = read_capture(out)[0].n_packets
    assert seen["value"] == "hello" and seen["context"]["client_net"] == "10.9.0.0/16"
    assert seen["chunks"] >= 1 and seen["packets"] == written > 0 and seen["closed"]
    assert f"counted {written} packets" in result.output

    bad = runner.invoke(
        cli, ["generate", "--flows", "2", "--after", "x", "-o", str(tmp_path / "a.csv")]
    )
    assert bad.exit_code != 0 and "--after needs a pcap or pcapng output" in bad.output
    assert not (tmp_path / "a.csv").exists()
    with pytest.raises(PluginError, match="without help"):
        Registries().sink_callback("p")("s", CountSink, metavar="X", help=" ")


# --- manager -------------------------------------------------------------------------------


def test_builtin_plugin_only_without_entrypoints() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    assert list(pm.info) == [BUILTIN_PLUGIN]
    assert pm.info[BUILTIN_PLUGIN].builtin
    reg = load_registries(pm)
    assert list(reg.emitters) == ["pcap", "pcapng"]
    assert reg.emitters["pcapng"].suffix == ".pcapng"
    assert len(reg.commands) == 0  # commands only with a click group


def test_each_manager_is_fresh() -> None:
    a = get_plugin_manager(load_entrypoints=False)
    b = get_plugin_manager(load_entrypoints=False)
    assert a is not b
    a.add_plugin(object(), "extra")
    assert "extra" not in b.info


def test_import_loads_no_plugin() -> None:
    code = textwrap.dedent(
        """
        import sys
        import netdiffusion, netdiffusion.cli, netdiffusion.plugins, netdiffusion.hookspecs
        prefixes = ("netdiffusion_", "netdiffusion._builtin", "netdiffusion.commands")
        loaded = [m for m in sys.modules if m.startswith(prefixes)]
        assert netdiffusion.plugins._default is None
        assert netdiffusion.cli.main._plugins is None
        print(loaded)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_hook_is_refused() -> None:
    class Typo:
        @hookimpl
        def register_emiters(self, register: Any) -> None:  # typo on purpose
            pass

    pm = get_plugin_manager(load_entrypoints=False)
    pm.add_plugin(Typo(), "typo")
    with pytest.raises(PluginError, match="register_emiters") as info:
        pm.check_pending()
    assert "\n" not in str(info.value)


def test_hookimpl_with_wrong_arguments_is_one_line() -> None:
    class Wrong:
        @hookimpl
        def register_emitters(self, register: Any, extra: Any) -> None:
            pass

    pm = get_plugin_manager(load_entrypoints=False)
    with pytest.raises(PluginError, match="plugin 'wrong' could not be registered") as info:
        pm.add_plugin(Wrong(), "wrong")
    assert "\n" not in str(info.value)


def test_same_plugin_name_twice() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    with pytest.raises(PluginError, match="'netdiffusion' could not be registered"):
        pm.add_plugin(object(), BUILTIN_PLUGIN)


def test_blocked_plugins_parsing() -> None:
    assert blocked_plugins({}) == frozenset()
    assert blocked_plugins({"NETDIFFUSION_BLOCK_PLUGINS": " scapy, ,zeek,"}) == {"scapy", "zeek"}


# --- registration rules --------------------------------------------------------------------


def _emitting(name: str, **kwargs: Any) -> object:
    kwargs.setdefault("suffix", ".bin")
    kwargs.setdefault("description", "test format")

    class Plugin:
        @hookimpl
        def register_emitters(self, register: Any) -> None:
            register(name, lambda traffic, path, **o: None, **kwargs)

    return Plugin()


def test_duplicate_across_plugins_names_both() -> None:
    pm = _pm(("one", _emitting("same")), ("two", _emitting("same")))
    with pytest.raises(PluginError) as info:
        load_registries(pm)
    msg = str(info.value)
    assert msg == "duplicate emitter 'same': registered by plugin 'one' and by plugin 'two'"


def test_duplicate_of_builtin() -> None:
    with pytest.raises(PluginError, match="'pcap': registered by plugin 'netdiffusion' and by"):
        load_registries(_pm(("mine", _emitting("pcap"))))


def test_duplicate_command_names_both() -> None:
    class Plugin:
        @hookimpl
        def register_commands(self, cli: click.Group) -> None:
            cli.add_command(click.Command("plugins", callback=lambda: None))

    cli = create_cli(load_entrypoints=False)
    with pytest.raises(PluginError) as info:
        load_registries(_pm(("clash", Plugin())), cli=cli)
    assert str(info.value) == (
        "duplicate command 'plugins': registered by plugin 'netdiffusion' and by plugin 'clash'"
    )
    # The core's command was not replaced.
    assert cli.commands["plugins"].callback is not None
    assert cli.commands["plugins"].callback.__module__ == "netdiffusion.commands.plugins"


@pytest.mark.parametrize("name", ["Pcap", "my-format", "9x", "", "a b", None, "é"])
def test_invalid_names(name: Any) -> None:
    with pytest.raises(PluginError, match="lowercase identifiers"):
        load_registries(_pm(("bad", _emitting(name))))


def test_valid_names() -> None:
    for name in ("a", "pcap", "conn_tsv", "x9"):
        assert validate_name("emitter", name, "p") == name
    assert validate_name("command", "demo-hello", "p", command=True) == "demo-hello"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"suffix": "pcap"}, "suffix 'pcap'"),
        ({"suffix": ""}, "suffix ''"),
        ({"description": ""}, "without a description"),
        ({"description": "two\nlines"}, "more than one line"),
    ],
)
def test_emitter_suffix_and_description(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(PluginError, match=match):
        load_registries(_pm(("bad", _emitting("fmt", **kwargs))))


def test_not_callable_or_wrong_arity_refused() -> None:
    class NotCallable:
        @hookimpl
        def register_repairers(self, register: Any) -> None:
            register("nope", 42)

    class NoArgs:
        @hookimpl
        def register_repairers(self, register: Any) -> None:
            register("noargs", lambda: None)

    class BadEncoder:
        @hookimpl
        def register_encoders(self, register: Any) -> None:
            register("half", object())

    with pytest.raises(PluginError, match="'nope': 42 is not callable"):
        load_registries(_pm(("p", NotCallable())))
    with pytest.raises(PluginError, match="cannot be called with 1 positional"):
        load_registries(_pm(("p", NoArgs())))
    with pytest.raises(PluginError, match="has no encode\\(\\) method"):
        load_registries(_pm(("p", BadEncoder())))


def test_exception_in_hook_is_attributed() -> None:
    class Broken:
        @hookimpl
        def register_generators(self, register: Any) -> None:
            raise RuntimeError("boom\nsecond line")

    with pytest.raises(PluginError) as info:
        load_registries(_pm(("broken", Broken())))
    assert str(info.value) == (
        "plugin 'broken' failed in register_generators: RuntimeError: boom second line"
    )


def test_repairer_must_return_traffic() -> None:
    reg = Registries()
    reg.repairer_callback("p")("bad", lambda t: None)
    with pytest.raises(PluginError, match="repairer 'bad' of plugin 'p' returned NoneType"):
        reg.apply_repairers(Traffic.empty(1))


def test_require_lists_available() -> None:
    reg = load_registries(_pm())
    with pytest.raises(PluginError, match=r"unknown emitter 'csv' \(available: pcap, pcapng\)"):
        reg.emitters.require("csv")


def test_builtin_emitters_call_netdiffusion_emit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in emitters import netdiffusion.emit on call, and say so when it lacks one."""
    import netdiffusion.emit

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        netdiffusion.emit, "write_pcap", lambda *a, **k: calls.append((a, k)), raising=False
    )
    monkeypatch.delattr(netdiffusion.emit, "write_pcapng", raising=False)
    reg = load_registries(_pm())
    t = Traffic.empty(2)
    reg.emitters["pcap"](t, "out.pcap", snaplen=96)
    assert calls == [((t, "out.pcap"), {"snaplen": 96})]
    with pytest.raises(PluginError, match=r"netdiffusion\.emit has no 'write_pcapng'"):
        reg.emitters["pcapng"](t, "out.pcapng")


def test_hookspecs_all_register_style() -> None:
    names = [n for n in dir(hookspecs) if n.startswith("register_")]
    assert sorted(names) == sorted(
        [
            "register_commands",
            "register_emitters",
            "register_encoders",
            "register_generators",
            "register_repairers",
            "register_sinks",
        ]
    )


def test_registries_by_kind_and_by_plugin() -> None:
    reg = Registries()
    kinds = ["encoders", "generators", "repairers", "emitters", "sinks", "commands"]
    assert list(reg.by_kind()) == kinds
    reg.emitter_callback("a")("one", lambda t, p: None, suffix=".x", description="x")
    reg.repairer_callback("a")("fix", lambda t: t)
    reg.emitter_callback("b")("two", lambda t, p: None, suffix=".y", description="y")
    assert reg.by_plugin("a") == {"repairers": ["fix"], "emitters": ["one"]}
    assert reg.by_plugin("b") == {"emitters": ["two"]}
    assert reg.by_plugin("c") == {}
    assert repr(reg.emitters) == "Registry('emitter', ['one', 'two'])"
