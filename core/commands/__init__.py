"""The core CLI commands, one module each, added by the built-in plugin via ``register_commands``.

To add a command ``inspect``:

1. write ``core/commands/inspect.py`` defining a click command (see :mod:`.plugins` for the
   pattern: ``@click.command(name=...)``, ``@user_errors`` so that bad input becomes one line
   ``Error: ...``, output through ``click.echo``);
2. add one line ``"netdiffusion.commands.inspect:inspect"`` to :data:`BUILTIN_COMMANDS`.

Commands that need the registered emitters, encoders, ... get them with
:func:`netdiffusion.cli.current_plugins`.
"""

from __future__ import annotations

__all__ = ["BUILTIN_COMMANDS"]

BUILTIN_COMMANDS: tuple[str, ...] = (
    "netdiffusion.commands.inspect:inspect_command",
    "netdiffusion.commands.encode:encode_command",
    "netdiffusion.commands.decode:decode_command",
    "netdiffusion.commands.repair:repair_command",
    "netdiffusion.commands.train:train_command",
    "netdiffusion.commands.generate:generate_command",
    "netdiffusion.commands.plugins:plugins",
    "netdiffusion.commands.evaluate:evaluate_command",
    # one line per command, e.g. "netdiffusion.commands.inspect:inspect",
)
"""``"module:attribute"`` of each core command, registered in this order (``--help`` sorts)."""
