"""The CLI base: --version, a --help that teaches, python -m, and one-line errors."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from netdiffusion import __version__
from netdiffusion._builtin_plugin import load_object
from netdiffusion.cli import DEBUG_ENV, NetdiffusionGroup, create_cli, error_message, user_errors
from netdiffusion.commands import BUILTIN_COMMANDS
from netdiffusion.registry import PluginError


def _cli_with(command: click.Command) -> NetdiffusionGroup:
    cli = create_cli(load_entrypoints=False)
    cli.add_command(command)
    return cli


def test_version() -> None:
    for flag in ("--version", "-V"):
        result = CliRunner().invoke(create_cli(load_entrypoints=False), [flag])
        assert result.exit_code == 0
        assert result.output == f"netdiffusion {__version__}\n"


def test_help_teaches() -> None:
    result = CliRunner().invoke(create_cli(load_entrypoints=False), ["--help"])
    assert result.exit_code == 0
    text = result.output
    assert "synthetic network traffic" in text
    assert "Typical workflow:" in text
    assert "tcpreplay" in text
    assert "docs/plugins.md" in text
    assert "plugins" in text.split("Commands:")[1]
    assert CliRunner().invoke(create_cli(load_entrypoints=False), ["-h"]).output == text


def test_python_dash_m() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "netdiffusion", "--version"], capture_output=True, text=True
    )
    assert (out.returncode, out.stdout) == (0, f"netdiffusion {__version__}\n")
    helped = subprocess.run(
        [sys.executable, "-m", "netdiffusion", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0
    assert helped.stdout.startswith("Usage: netdiffusion [OPTIONS] COMMAND")


def test_plugins_command_json() -> None:
    result = CliRunner().invoke(create_cli(load_entrypoints=False), ["plugins"])
    assert result.exit_code == 0, result.output
    (core,) = json.loads(result.output)
    assert core["name"] == "netdiffusion"
    assert core["version"] == __version__
    assert core["hooks"] == ["register_commands", "register_emitters"]
    assert core["registered"]["emitters"] == ["pcap", "pcapng"]
    # Every core command listed in BUILTIN_COMMANDS, in that order, attributed to the core.
    names = [load_object(spec).name for spec in BUILTIN_COMMANDS]
    assert "plugins" in names
    assert core["registered"]["commands"] == names


def _failing(exc: Exception, decorate: bool) -> click.Command:
    def fail() -> None:
        raise exc

    return click.Command("fail", callback=user_errors(fail) if decorate else fail)


@pytest.mark.parametrize("decorate", [True, False])
@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (ValueError("x.pcap: not a capture file"), "Error: x.pcap: not a capture file"),
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "missing.pcap"),
            "Error: missing.pcap: No such file or directory",
        ),
        (PluginError("unknown emitter 'csv'"), "Error: unknown emitter 'csv'"),
        (ValueError("multi\nline\n  message"), "Error: multi line message"),
    ],
)
def test_user_errors_are_one_line(exc: Exception, line: str, decorate: bool) -> None:
    result = CliRunner().invoke(_cli_with(_failing(exc, decorate)), ["fail"])
    assert result.exit_code == 1
    assert result.output == line + "\n"
    assert "Traceback" not in result.output


def test_netdiffusion_error_classes_are_user_errors() -> None:
    """Exceptions defined in netdiffusion (e.g. CaptureError) print as they are."""

    class ReadFailure(Exception):
        pass

    ReadFailure.__module__ = "netdiffusion.capture._report"
    assert error_message(ReadFailure("a.pcap: truncated record header")) == (
        "a.pcap: truncated record header"
    )
    ReadFailure.__module__ = "netdiffusion_zeek.logs"
    assert error_message(ReadFailure("conn.log: bad header")) == "conn.log: bad header"
    ReadFailure.__module__ = "somewhere.else"
    assert error_message(ReadFailure("x")).startswith("internal error: ReadFailure: x")


def test_unexpected_error_is_one_line_with_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    result = CliRunner().invoke(_cli_with(_failing(KeyError("k"), True)), ["fail"])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: internal error: KeyError: 'k' (set {DEBUG_ENV}=1 to see the traceback)\n"
    )
    monkeypatch.setenv(DEBUG_ENV, "1")
    result = CliRunner().invoke(_cli_with(_failing(KeyError("k"), True)), ["fail"])
    assert isinstance(result.exception, KeyError)


def test_click_errors_pass_through() -> None:
    @click.command("exit3")
    @user_errors
    def exit3() -> None:
        click.get_current_context().exit(3)

    @click.command("usage")
    @user_errors
    def usage() -> None:
        raise click.UsageError("wrong use")

    cli = _cli_with(exit3)
    cli.add_command(usage)
    assert CliRunner().invoke(cli, ["exit3"]).exit_code == 3
    result = CliRunner().invoke(cli, ["usage"])
    assert result.exit_code == 2 and "Error: wrong use" in result.output
    bad = CliRunner().invoke(cli, ["no-such-command"])
    assert bad.exit_code == 2 and "No such command" in bad.output


def test_subprocess_error_is_one_line(tmp_path: os.PathLike[str]) -> None:
    code = (
        "import click, sys\n"
        "from netdiffusion.cli import create_cli\n"
        "cli = create_cli(load_entrypoints=False)\n"
        "@cli.command()\n"
        "@click.argument('path')\n"
        "def read(path):\n"
        "    open(path, 'rb')\n"
        "cli(prog_name='netdiffusion')\n"
    )
    missing = os.path.join(str(tmp_path), "nope.pcap")
    out = subprocess.run(
        [sys.executable, "-c", code, "read", missing], capture_output=True, text=True
    )
    assert out.returncode == 1
    assert out.stderr == f"Error: {missing}: No such file or directory\n"
