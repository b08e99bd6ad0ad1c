"""The repair engine: turns decoded (possibly noisy) headers into protocol-valid traffic.

:func:`repair` works on whole numpy columns, per flow (packets grouped by flow and time, with
segment operations), never on one packet at a time. With ``synthetic=True`` it rebuilds every
header field that protocol state determines (handshakes, sequence and acknowledgement numbers,
options, lengths, identifiers, checksums) from what the model generated; with ``synthetic=False``
it repairs a real capture's defects (checksums, lengths, malformed options) and leaves every
field that is already valid byte-identical.
"""

from netdiffusion.repair._engine import repair
from netdiffusion.repair._model import RepairError, RepairReport, RepairStats

__all__ = ["RepairError", "RepairReport", "RepairStats", "repair"]
