"""Odd and damaged captures: each is processed or refused with one line, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from netdiffusion.cli import main

ODD_DIRS = ["odd-inputs", "zeek-baselines/Traces"]


def _odd_files(shared: Path) -> list[Path]:
    files: list[Path] = []
    for d in ODD_DIRS:
        files += sorted(
            p for p in (shared / d).rglob("*") if p.is_file() and p.name != "MANIFEST.tsv"
        )
    return files


def test_every_odd_capture_is_processed_or_refused_in_one_line(
    shared_data: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    refused = processed = 0
    for path in _odd_files(shared_data):
        out = tmp_path / f"{path.name}.repaired.pcap"
        result = runner.invoke(main, ["repair", str(path), "-o", str(out)])
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{path}: {result.exception!r}\n{result.output}"
        )
        assert "Traceback" not in result.output, path
        if result.exit_code == 0:
            processed += 1
            assert out.exists(), path
        else:
            refused += 1
            lines = [ln for ln in result.output.splitlines() if ln.startswith("Error")]
            assert len(lines) == 1, f"{path}: {result.output}"
            assert path.name in lines[0], lines[0]
            assert not out.exists(), f"{path}: partial output left behind"
        assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")], "temporary file left"
    # most of them are real captures with some IPv4 in them
    assert processed > refused


@pytest.mark.parametrize("name", ["test_damaged.pcap", "test_without_pcap_header.pcap"])
def test_damaged_pcapfix_files(shared_data: Path, tmp_path: Path, name: str) -> None:
    path = shared_data / "odd-inputs" / "pcapfix" / name
    result = CliRunner().invoke(main, ["inspect", str(path)])
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1)
