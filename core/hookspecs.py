"""The plugin hooks of netdiffusion.

Every hook but one is a ``register_*`` function: a plugin implements it (decorated with
:data:`hookimpl`) and calls the ``register`` callback it receives once per thing it adds. The
exception, :func:`to_traffic`, converts a foreign packet object (a Scapy ``PacketList``) to a
``Traffic`` for the Python API. The core owns the rest: it validates names, refuses duplicates
with a one-line error naming both plugins, and records which plugin registered what
(``netdiffusion plugins`` shows it).

A plugin is a module registered through the entry-point group ``netdiffusion``::

    [project.entry-points.netdiffusion]
    myplugin = "my_package.plugin"

Hooks run once, when the plugin manager is loaded (``to_traffic``: once per conversion); the
per-packet hot path never calls a hook.
The hook signatures and the ``register`` callbacks are documented in ``docs/plugins.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from netdiffusion._traffic import Traffic
    from netdiffusion.registry import (
        RegisterEmitter,
        RegisterEncoder,
        RegisterGenerator,
        RegisterRepairer,
        RegisterSink,
    )

__all__ = [
    "PROJECT_NAME",
    "hookimpl",
    "hookspec",
    "register_commands",
    "register_emitters",
    "register_encoders",
    "register_generators",
    "register_repairers",
    "register_sinks",
    "to_traffic",
]

PROJECT_NAME = "netdiffusion"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_encoders(register: RegisterEncoder) -> None:
    """Register encoders: ``register(name, encoder, description="")``.

    ``encoder`` is an object with ``encode`` and ``decode`` methods turning a ``Traffic`` into
    model tensors and back.
    """


@hookspec
def register_generators(register: RegisterGenerator) -> None:
    """Register generator model types: ``register(name, loader, description="")``.

    ``loader`` is a callable that loads a model of this type (from a model directory).
    """


@hookspec
def register_repairers(register: RegisterRepairer) -> None:
    """Register extra repair passes: ``register(name, repair, description="")``.

    ``repair(traffic) -> traffic`` runs after the built-in repair engine, in registration order.
    """


@hookspec
def register_emitters(register: RegisterEmitter) -> None:
    """Register output formats: ``register(name, write, suffix=".ext", description="...")``.

    ``write(traffic, path, **options)`` writes the traffic to ``path``; ``suffix`` is the file
    suffix of that format and ``description`` one line shown to users (``generate --format``).
    """


@hookspec
def register_sinks(register: RegisterSink) -> None:
    """Register generate sinks: ``register(name, open, *, metavar, help, needs_pcap=False)``.

    Each sink becomes an option ``--NAME METAVAR`` of ``netdiffusion generate``. When it is
    given, ``open(value, output=..., client_net=..., server_net=...)`` returns an object whose
    ``add(traffic)`` receives every chunk of generated traffic (repaired, in time order) and
    whose ``close(output)`` runs once the output file is complete, returning a line to show (or
    None). ``needs_pcap``: the sink reads the written capture, so the output must be a capture.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Register CLI commands: add them to the click group ``cli``.

    Use ``cli.add_command(command)`` or the ``@cli.command()`` decorator.
    """


@hookspec(firstresult=True)
def to_traffic(obj: object) -> Traffic | None:
    """Convert a foreign packet object (e.g. a Scapy ``PacketList``) to a ``Traffic``.

    Return None for objects the plugin does not know, so that the next plugin is asked; the
    first answer wins. Called once per conversion (``netdiffusion.train``, ``encode``), never
    per packet; this is how the core accepts other libraries' packets without importing them.
    """
