"""``netdiffusion plugins``: the loaded plugins, their hooks and what they registered, as JSON.

This module is also the pattern for every core command (see :mod:`netdiffusion.commands`).
"""

from __future__ import annotations

import json

import click

from netdiffusion.cli import current_plugins, user_errors

__all__ = ["plugins"]


@click.command(name="plugins")
@user_errors
def plugins() -> None:
    """List plugins and what they register (JSON).

    Each loaded plugin: its name, module, distribution and version, the hooks it implements
    and the names it registered (emitters, encoders, generators, repairers, commands).

    Plugins named in NETDIFFUSION_BLOCK_PLUGINS (comma-separated) are not loaded.
    """
    click.echo(json.dumps(current_plugins().describe(), indent=2))
