"""The emitters' error type."""

from __future__ import annotations

__all__ = ["EmitError"]


class EmitError(ValueError):
    """Bad input to an emitter; the message is one line naming the output and the reason."""
