"""The core's own built-ins, registered through the same hooks as any plugin (plugin name
``netdiffusion``).

Everything here is imported lazily: an emitter's module is imported when it is first called,
so the registry is complete even while a module is missing or broken (the call then fails with
a one-line :class:`~netdiffusion.registry.PluginError`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netdiffusion.hookspecs import hookimpl
from netdiffusion.registry import PluginError

if TYPE_CHECKING:
    import click

    from netdiffusion.registry import RegisterEmitter

__all__ = ["lazy_callable", "load_object", "register_commands", "register_emitters"]


def load_object(spec: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise PluginError(f"{module_name} has no {attr!r} (from {spec!r})") from None


def lazy_callable(spec: str) -> Callable[..., Any]:
    """A function calling ``"package.module:function"``, imported on first call."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            target = load_object(spec)
        except ImportError as exc:
            raise PluginError(f"{spec} is not available: {exc}") from None
        return target(*args, **kwargs)

    call.__name__ = spec.rpartition(":")[2]
    call.__qualname__ = call.__name__
    call.__doc__ = f"Call {spec} (imported on first use)."
    return call


@hookimpl
def register_emitters(register: RegisterEmitter) -> None:
    """The pcap and pcapng writers of :mod:`netdiffusion.emit`."""
    register(
        "pcap",
        lazy_callable("netdiffusion.emit:write_pcap"),
        suffix=".pcap",
        description="libpcap capture, Ethernet link type, ready for tcpreplay, tshark and Zeek",
    )
    register(
        "pcapng",
        lazy_callable("netdiffusion.emit:write_pcapng"),
        suffix=".pcapng",
        description="pcapng capture (Wireshark's default format), Ethernet link type",
    )


@hookimpl
def register_commands(cli: click.Group) -> None:
    """The core commands listed in :data:`netdiffusion.commands.BUILTIN_COMMANDS`."""
    from netdiffusion.commands import BUILTIN_COMMANDS

    for spec in BUILTIN_COMMANDS:
        cli.add_command(load_object(spec))
