"""Reading many captures at once: expand folders, read each, report what was skipped and why."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from netdiffusion._traffic import Traffic
from netdiffusion.capture import ReadReport, iter_captures
from netdiffusion.flows import assemble_flows
from netdiffusion.labels import LabelReport, label_flows

__all__ = ["CAPTURE_SUFFIXES", "InputSummary", "expand_captures", "read_captures", "read_flows"]

#: File name endings taken as captures when a folder is given.
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".cap.gz")


@dataclass
class InputSummary:
    """What a set of captures held: counts over every file, and the files refused."""

    files_read: int = 0
    packets_seen: int = 0
    packets_kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    link_types: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    reports: list[ReadReport] = field(default_factory=list)

    def add(self, report: ReadReport) -> None:
        """Fold one file's report in."""
        self.files_read += 1
        self.packets_seen += report.packets_seen
        self.packets_kept += report.packets_kept
        if report.skipped:
            self.skipped.update(report.skipped)
        for lt in report.link_types:
            self.link_types[str(lt)] += 1
        if report.warnings:
            self.warnings.extend(f"{report.path}: {w}" for w in report.warnings)
        self.reports.append(report)


def expand_captures(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files named, plus capture files found (recursively, sorted) under folders named.

    Raises FileNotFoundError (one line) for a path that does not exist, and ValueError when a
    folder holds no capture.
    """
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.name.lower().endswith(CAPTURE_SUFFIXES)
            )
            if not found:
                raise ValueError(
                    f"{path}: no capture files (*.pcap, *.pcapng, *.cap, .gz) in this folder"
                )
            out.extend(found)
        elif path.exists():
            out.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return out


def read_captures(
    files: list[Path],
    *,
    keep_payload: bool = True,
    strict: bool = False,
    progress: bool = True,
    on_refused: Callable[[str], None] | None = None,
) -> tuple[Traffic, InputSummary]:
    """Read every file into one Traffic (``file`` indexes ``files``).

    A file the reader refuses is skipped and listed in ``summary.refused`` (and passed to
    ``on_refused``), unless ``strict``, where its CaptureError propagates. Without
    ``keep_payload`` only headers, lengths and timing are kept (much less memory).
    """
    summary = InputSummary()
    reports: list[ReadReport] = []
    total_bytes = sum(os.stat(p).st_size for p in files)
    bar = tqdm(
        total=total_bytes,
        unit="B",
        unit_scale=True,
        desc="reading",
        leave=False,
        disable=not progress or total_bytes < 8 << 20,
    )
    parts: list[Traffic] = []
    done = 0
    with bar:
        for chunk in iter_captures(
            files,
            reports=reports,
            skip_errors=not strict,
            payload_bytes=None if keep_payload else 0,
        ):
            parts.append(chunk)
            now = sum(r.bytes_read for r in reports)
            bar.update(max(now - done, 0))
            done = now
    for report in reports:
        if report.error is not None:
            summary.refused.append(report.error)
            if on_refused is not None:
                on_refused(report.error)
        else:
            summary.add(report)
    names = [str(p) for p in files]
    if len(parts) == 1 and parts[0].files == names and len(set(names)) == len(names):
        traffic = parts[0]  # one chunk already lists every file, in order: nothing to renumber
    else:
        traffic = Traffic.concat(parts) if parts else Traffic.empty()
    return traffic, summary


def read_flows(
    paths: Iterable[str | os.PathLike[str]],
    *,
    labels: str | None = None,
    label_column: str = "ndpi_proto",
    keep_payload: bool = False,
    progress: bool = True,
    on_refused: Callable[[str], None] | None = None,
) -> tuple[Traffic, InputSummary, LabelReport | None]:
    """Captures (files or folders) to labelled flows: read, assemble flows, label.

    A single ``.safetensors`` path is a dataset from ``netdiffusion encode``: it is loaded as
    it is (already in flows, labelled unless ``labels`` relabels it). ``labels`` is
    ``"folder"``, a CSV of flows (label column ``label_column``) or None.
    """
    paths = [Path(p) for p in paths]
    if len(paths) == 1 and paths[0].suffix == ".safetensors":
        from netdiffusion.dataset import load_dataset

        traffic, summary = load_dataset(paths[0]), InputSummary()
    else:
        traffic, summary = read_captures(
            expand_captures(paths), keep_payload=keep_payload, progress=progress,
            on_refused=on_refused,
        )  # fmt: skip
        traffic = assemble_flows(traffic)
    traffic, report = label_flows(traffic, labels, label_column)
    return traffic, summary, report
