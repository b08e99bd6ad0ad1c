"""The ``netdiffusion`` command line: a click group whose commands all come from plugins.

The core's own commands are registered by the built-in plugin through ``register_commands``,
exactly like a third-party plugin's (see :mod:`netdiffusion.commands`). Plugins are loaded when
the group first needs its commands, never when this module is imported.

Errors never show a traceback: bad input becomes one line ``Error: ...`` and a non-zero exit
(``NETDIFFUSION_DEBUG=1`` shows the traceback of an unexpected error).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from netdiffusion import __version__
from netdiffusion.plugins import LoadedPlugins, default_plugins, load_plugins
from netdiffusion.registry import PluginError

__all__ = [
    "DEBUG_ENV",
    "NetdiffusionGroup",
    "create_cli",
    "current_plugins",
    "error_message",
    "main",
    "user_errors",
]

DEBUG_ENV = "NETDIFFUSION_DEBUG"
"""Environment variable: when set (non-empty, not ``0``), unexpected errors show a traceback."""

F = TypeVar("F", bound=Callable[..., Any])

_PASS_THROUGH = (click.ClickException, click.exceptions.Exit, click.Abort)


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _is_user_error(exc: BaseException) -> bool:
    """Errors about the input, not bugs: ValueError, OSError, and netdiffusion's own classes."""
    if isinstance(exc, ValueError | OSError | PluginError):
        return True
    return type(exc).__module__.split(".")[0].startswith("netdiffusion")


def error_message(exc: BaseException) -> str:
    """One line describing ``exc`` for ``Error: ...`` (file name first for OS errors)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{os.fsdecode(exc.filename)}: {exc.strerror}"
        if exc.filename2 is not None:
            text += f" -> {os.fsdecode(exc.filename2)}"
    else:
        text = str(exc) or type(exc).__name__
    if not _is_user_error(exc):
        text = (
            f"internal error: {type(exc).__name__}: {text} (set {DEBUG_ENV}=1 to see the traceback)"
        )
    return " ".join(text.split())


def _to_click(exc: Exception) -> click.ClickException:
    return click.ClickException(error_message(exc))


def user_errors(fn: F) -> F:
    """Decorator for commands: any exception becomes ``Error: <one line>`` and exit status 1.

    Click's own exceptions (usage errors, ``ctx.exit``) pass through unchanged.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _PASS_THROUGH:
            raise
        except Exception as exc:
            if _debug():
                raise
            raise _to_click(exc) from None

    return wrapper  # type: ignore[return-value]


class NetdiffusionGroup(click.Group):
    """A click group that loads plugins (and so its commands) on first use."""

    def __init__(self, *args: Any, load_entrypoints: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.load_entrypoints = load_entrypoints
        self._plugins: LoadedPlugins | None = None

    def loaded_plugins(self) -> LoadedPlugins:
        """The plugins of this CLI, loaded (with their commands) on the first call."""
        if self._plugins is None:
            try:
                self._plugins = load_plugins(self.load_entrypoints, cli=self)
            except PluginError as exc:
                if _debug():
                    raise
                raise click.ClickException(str(exc)) from None
        return self._plugins

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.loaded_plugins()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self.loaded_plugins()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; an exception it lets out becomes one line ``Error: ...``."""
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except Exception as exc:
            if _debug():
                raise
            raise _to_click(exc) from None


HELP = """\
Generate protocol-valid synthetic network traffic with a diffusion model.

netdiffusion reads labelled packet captures (pcap, pcapng), learns them with a
class-conditional diffusion model (CUDA when present, CPU otherwise), and writes synthetic
traffic with correct TCP state, checksums, lengths and timing: pcaps ready for tcpreplay,
Wireshark and Zeek, Scapy packets, Zeek logs, nPrint matrices.

\b
Typical workflow:
  netdiffusion generate -o traffic.pcap           synthetic traffic from the bundled model
  netdiffusion inspect captures/ --labels folder  what your captures hold (flows, classes)
  netdiffusion train captures/ --labels folder -o model/
                                                  learn a model of your labelled traffic
  netdiffusion generate --model model/ --class A=0.7,B=0.3 --flows 5000 -o out.pcapng
  netdiffusion repair damaged.pcap -o fixed.pcap  fix a capture's checksums, lengths, options
  tcpreplay -i eth0 traffic.pcap                  replay it (or open it in Wireshark or Zeek)

\b
More: `netdiffusion COMMAND --help` for a command; `netdiffusion plugins` for the
installed plugins and what they add; docs/ in the source tree (docs/plugins.md to write one).
"""


def create_cli(load_entrypoints: bool = True) -> NetdiffusionGroup:
    """A fresh ``netdiffusion`` group (plugins load on first use; tests make their own)."""

    @click.group(
        cls=NetdiffusionGroup,
        load_entrypoints=load_entrypoints,
        help=HELP,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )
    @click.version_option(
        __version__, "-V", "--version", prog_name="netdiffusion", message="%(prog)s %(version)s"
    )
    def main() -> None:
        pass

    return main


main: NetdiffusionGroup = create_cli()
"""The ``netdiffusion`` console script (also ``python -m netdiffusion``)."""


def current_plugins() -> LoadedPlugins:
    """The plugins of the running CLI (inside a command), else :func:`default_plugins`."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        root = ctx.find_root().command
        if isinstance(root, NetdiffusionGroup):
            return root.loaded_plugins()
    return default_plugins()
