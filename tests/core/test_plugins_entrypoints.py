"""Entry-point plugins end to end: a real distribution on sys.path, loaded, listed, blocked.

Each test builds a tiny installed distribution in ``tmp_path`` (a ``.dist-info`` folder with
METADATA and entry_points.txt for the group ``netdiffusion``, plus its module), exactly what
``pip install`` of a third-party plugin leaves behind.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from netdiffusion._traffic import Traffic
from netdiffusion.cli import create_cli
from netdiffusion.plugins import BLOCK_ENV, get_plugin_manager, load_plugins, load_registries
from netdiffusion.registry import PluginError

DEMO_PLUGIN = '''
"""A third-party plugin for the tests: one registration per hook."""
import click
from netdiffusion._atomic import atomic_output
from netdiffusion.hookspecs import hookimpl


class Echo:
    def encode(self, traffic, **options):
        return traffic

    def decode(self, data, **options):
        return data


def write_demo(traffic, path, **options):
    with atomic_output(path) as fh:
        fh.write(b"demo %d packets\\n" % len(traffic))


@hookimpl
def register_encoders(register):
    register("{p}_enc", Echo(), description="identity")


@hookimpl
def register_generators(register):
    register("{p}_gen", lambda model_dir: model_dir)


@hookimpl
def register_repairers(register):
    register("{p}_fix", lambda traffic: traffic)


@hookimpl
def register_emitters(register):
    register("{p}_fmt", write_demo, suffix=".demo", description="packet count as text")


@hookimpl
def register_commands(cli):
    @cli.command(name="{p}-hello")
    @click.option("--name", default="world")
    def hello(name):
        """Say hello from the demo plugin."""
        click.echo("hello " + name + " from {p}")
'''

_counter = itertools.count()

MakeDist = Callable[..., str]


@pytest.fixture
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeDist]:
    """Install a plugin distribution into ``tmp_path`` (on sys.path); returns its plugin name."""
    made: list[str] = []

    def make(
        prefix: str = "demo",
        *,
        body: str | None = None,
        ep_name: str | None = None,
        dist: str | None = None,
        version: str = "1.2.3",
    ) -> str:
        n = next(_counter)
        module = f"nd_test_plugin_{os.getpid()}_{n}"
        ep = ep_name or prefix
        dist_name = dist or f"netdiffusion-{ep}-{n}"
        root = tmp_path / f"site{n}"
        root.mkdir()
        text = DEMO_PLUGIN.replace("{p}", prefix) if body is None else body
        (root / f"{module}.py").write_text(text)
        info = root / f"{dist_name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n"
        )
        (info / "entry_points.txt").write_text(f"[netdiffusion]\n{ep} = {module}\n")
        monkeypatch.syspath_prepend(str(root))
        made.append(module)
        return ep

    yield make
    for module in made:
        sys.modules.pop(module, None)


def test_entrypoint_plugin_loads_and_registers(make_dist: MakeDist, tmp_path: Path) -> None:
    name = make_dist("demo")
    pm = get_plugin_manager(load_entrypoints=True)
    assert name in pm.info
    info = pm.info[name]
    assert info.version == "1.2.3"
    assert info.distribution is not None and info.distribution.startswith("netdiffusion-demo-")
    assert not info.builtin
    reg = load_registries(pm)
    assert reg.by_plugin(name) == {
        "encoders": ["demo_enc"],
        "generators": ["demo_gen"],
        "repairers": ["demo_fix"],
        "emitters": ["demo_fmt"],
    }
    out = tmp_path / "x.demo"
    reg.emitters["demo_fmt"](Traffic.empty(5), out)
    assert out.read_bytes() == b"demo 5 packets\n"
    # The shipped plugins load through the same path.
    assert {"scapy", "zeek", "tcpreplay"} <= set(pm.info)


def test_without_entrypoints_the_plugin_is_absent(make_dist: MakeDist) -> None:
    name = make_dist("demo")
    pm = get_plugin_manager(load_entrypoints=False)
    assert name not in pm.info
    assert "demo_fmt" not in load_registries(pm).emitters


def test_plugins_command_lists_it(make_dist: MakeDist) -> None:
    name = make_dist("demo")
    result = CliRunner().invoke(create_cli(), ["plugins"])
    assert result.exit_code == 0, result.output
    plugins = {p["name"]: p for p in json.loads(result.output)}
    demo = plugins[name]
    assert demo["version"] == "1.2.3"
    assert demo["builtin"] is False
    assert demo["hooks"] == [
        "register_commands",
        "register_emitters",
        "register_encoders",
        "register_generators",
        "register_repairers",
    ]
    assert demo["registered"] == {
        "encoders": ["demo_enc"],
        "generators": ["demo_gen"],
        "repairers": ["demo_fix"],
        "emitters": ["demo_fmt"],
        "commands": ["demo-hello"],
    }
    core = plugins["netdiffusion"]
    assert core["builtin"] is True
    assert core["registered"]["emitters"] == ["pcap", "pcapng"]
    assert "plugins" in core["registered"]["commands"]


def test_plugin_command_runs(make_dist: MakeDist) -> None:
    make_dist("demo")
    cli = create_cli()
    result = CliRunner().invoke(cli, ["demo-hello", "--name", "tests"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello tests from demo\n"
    help_result = CliRunner().invoke(cli, ["--help"])
    assert "demo-hello" in help_result.output
    assert "Say hello from the demo plugin." in help_result.output


def _run_cli(args: list[str], site: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return subprocess.run(
        [sys.executable, "-m", "netdiffusion", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def test_subprocess_lists_and_blocks(make_dist: MakeDist, tmp_path: Path) -> None:
    name = make_dist("demo")
    site = next(tmp_path.glob("site*"))
    result = _run_cli(["plugins"], site)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins[name]["registered"]["commands"] == ["demo-hello"]
    hello = _run_cli(["demo-hello"], site)
    assert (hello.returncode, hello.stdout) == (0, "hello world from demo\n")

    blocked = _run_cli(["plugins"], site, **{BLOCK_ENV: f"zeek,{name}"})
    assert blocked.returncode == 0, blocked.stderr
    names = {p["name"] for p in json.loads(blocked.stdout)}
    assert name not in names and "zeek" not in names
    assert {"netdiffusion", "scapy", "tcpreplay"} <= names
    gone = _run_cli(["demo-hello"], site, **{BLOCK_ENV: name})
    assert gone.returncode == 2
    assert "No such command 'demo-hello'" in gone.stderr


def test_console_script(make_dist: MakeDist, tmp_path: Path) -> None:
    script = shutil.which("netdiffusion")
    if script is None:
        pytest.skip("the netdiffusion console script is not on PATH")
    name = make_dist("demo")
    site = next(tmp_path.glob("site*"))
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([script, "plugins"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert name in {p["name"] for p in json.loads(result.stdout)}


def test_block_env_in_process(make_dist: MakeDist, monkeypatch: pytest.MonkeyPatch) -> None:
    name = make_dist("demo")
    monkeypatch.setenv(BLOCK_ENV, f" {name} , scapy")
    pm = get_plugin_manager()
    assert name not in pm.info and "scapy" not in pm.info
    assert pm.is_blocked(name)
    reg = load_registries(pm)
    assert "demo_fmt" not in reg.emitters
    assert "pcap" in reg.emitters  # the core's built-ins cannot be blocked
    monkeypatch.setenv(BLOCK_ENV, "netdiffusion")
    assert "pcap" in load_registries(get_plugin_manager()).emitters


def test_duplicate_registration_one_line_error(make_dist: MakeDist) -> None:
    first = make_dist("dup", ep_name="first")
    second = make_dist("dup", ep_name="second")
    with pytest.raises(PluginError) as info:
        load_plugins()
    assert str(info.value) == (
        f"duplicate encoder 'dup_enc': registered by plugin {first!r} and by plugin {second!r}"
    )
    result = CliRunner().invoke(create_cli(), ["plugins"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: duplicate encoder 'dup_enc': registered by plugin 'first' and by plugin 'second'\n"
    )


def test_duplicate_registration_subprocess(make_dist: MakeDist, tmp_path: Path) -> None:
    make_dist("dup", ep_name="first")
    make_dist("dup", ep_name="second")
    site = os.pathsep.join(str(p) for p in sorted(tmp_path.glob("site*")))
    result = _run_cli(["plugins"], Path(site))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "Error: duplicate encoder 'dup_enc': registered by plugin 'first' and by plugin 'second'"
    ]
    ok = _run_cli(["plugins"], Path(site), **{BLOCK_ENV: "second"})
    assert ok.returncode == 0, ok.stderr


def test_broken_plugin_one_line_and_blockable(make_dist: MakeDist) -> None:
    name = make_dist("broken", body="raise ImportError('needs libfoo')\n")
    with pytest.raises(PluginError) as info:
        get_plugin_manager()
    msg = str(info.value)
    assert msg.startswith(f"plugin {name!r} (nd_test_plugin_")
    assert msg.endswith(
        f"failed to load: ImportError: needs libfoo; set {BLOCK_ENV}={name} to skip it"
    )
    result = CliRunner().invoke(create_cli(), ["--help"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: plugin 'broken'") and result.output.count("\n") == 1


def test_same_plugin_name_from_two_distributions(make_dist: MakeDist) -> None:
    make_dist("twin", dist="netdiffusion-twin-a")
    make_dist("twin", dist="netdiffusion-twin-b")
    with pytest.raises(PluginError, match="two plugins are named 'twin'"):
        get_plugin_manager()


def test_reserved_plugin_name(make_dist: MakeDist) -> None:
    make_dist("core", ep_name="netdiffusion")
    with pytest.raises(PluginError, match="reserved for the core"):
        get_plugin_manager()


def test_unknown_hook_in_entrypoint_plugin(make_dist: MakeDist) -> None:
    body = textwrap.dedent(
        """
        from netdiffusion.hookspecs import hookimpl

        @hookimpl
        def register_emitter(register):
            pass
        """
    )
    make_dist("typo", body=body)
    with pytest.raises(PluginError, match="register_emitter") as info:
        get_plugin_manager()
    assert "\n" not in str(info.value)
