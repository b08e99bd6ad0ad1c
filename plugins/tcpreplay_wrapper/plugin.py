"""Hook implementations of the tcpreplay integration (entry point ``tcpreplay``).

It registers nothing yet: its replay checks, tcpprep cache and replay command come in later
issues and will be added here with ``@hookimpl`` functions of :mod:`netdiffusion.hookspecs`
(``register_emitters``, ``register_commands``).
"""

__all__: list[str] = []
