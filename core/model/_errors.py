"""The model package's error type (importable without torch)."""

from __future__ import annotations

__all__ = ["ModelError"]


class ModelError(ValueError):
    """A model directory, checkpoint or request that cannot be used; the message is one line."""
