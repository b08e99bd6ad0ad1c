"""Hook implementations of the Scapy adapter (entry point ``scapy``).

It registers nothing yet: its packet source, emitter and commands come in later issues and
will be added here with ``@hookimpl`` functions of :mod:`netdiffusion.hookspecs`
(``register_emitters``, ``register_commands``).
"""

__all__: list[str] = []
