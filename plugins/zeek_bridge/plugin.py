"""Hook implementations of the Zeek log producer (entry point ``zeek``).

It registers nothing yet: its conn.log emitters (TSV, JSON) and commands come in later issues
and will be added here with ``@hookimpl`` functions of :mod:`netdiffusion.hookspecs`
(``register_emitters``, ``register_commands``).
"""

__all__: list[str] = []
