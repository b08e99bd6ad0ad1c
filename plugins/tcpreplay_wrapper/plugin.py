"""Hook implementations of the tcpreplay integration (entry point ``tcpreplay``).

It registers two CLI commands through ``register_commands``: ``check`` and ``replay``
(:mod:`netdiffusion_tcpreplay._commands`, imported when the hook runs), and through
``register_sinks`` the ``--replay IFACE`` option of ``netdiffusion generate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netdiffusion.hookspecs import hookimpl

if TYPE_CHECKING:
    import click

    from netdiffusion.registry import RegisterSink

__all__ = ["register_commands", "register_sinks"]


@hookimpl
def register_commands(cli: click.Group) -> None:
    """``netdiffusion check`` and ``netdiffusion replay``."""
    from netdiffusion_tcpreplay._commands import check_command, replay_command

    cli.add_command(check_command)
    cli.add_command(replay_command)


@hookimpl
def register_sinks(register: RegisterSink) -> None:
    """``generate --replay IFACE``."""
    from netdiffusion._builtin_plugin import lazy_callable

    register(
        "replay",
        lazy_callable("netdiffusion_tcpreplay._sink:open_replay_sink"),
        metavar="IFACE",
        help="Then replay the written capture onto IFACE with tcpreplay, at its own timing "
        "(checked first; see `netdiffusion replay` for rates and two interfaces).",
        needs_pcap=True,
    )
