"""Hook implementations of the Zeek log producer (entry point ``zeek``).

It registers the ``netdiffusion zeek`` command (conn.log from captures) and the ``--zeek DIR``
and ``--zeek-json DIR`` options of ``netdiffusion generate`` (sinks: conn.log straight from the
generated packets). Their modules are imported only when used.
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
    """Add ``netdiffusion zeek``."""
    from ._cli import zeek_command

    cli.add_command(zeek_command)


@hookimpl
def register_sinks(register: RegisterSink) -> None:
    """``generate --zeek DIR`` and ``generate --zeek-json DIR``."""
    from netdiffusion._builtin_plugin import lazy_callable

    register(
        "zeek",
        lazy_callable("netdiffusion_zeek._sink:open_tsv_sink"),
        metavar="DIR",
        help="Also write Zeek's conn.log of the generated traffic into DIR (TSV), straight "
        "from the packets.",
    )
    register(
        "zeek_json",
        lazy_callable("netdiffusion_zeek._sink:open_json_sink"),
        metavar="DIR",
        help="Like --zeek, in Zeek's JSON-lines format.",
    )
