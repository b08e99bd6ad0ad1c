"""Shared fixtures: where the real captures live, and skips when they or a tool are missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

#: ``../shared/data`` beside the checkout, or where NETDIFFUSION_SHARED_DATA points (the GPU
#: check carries a few captures in a git-ignored folder, since ``../shared`` does not travel).
SHARED_DATA = Path(
    os.environ.get("NETDIFFUSION_SHARED_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real captures not found at {SHARED_DATA}")
    return SHARED_DATA


def require_tool(name: str) -> str:
    """Path of the executable ``name``, or skip the test with a reason."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path
