"""The reader's error type and its per-file report."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SKIP_REASONS", "CaptureError", "ReadReport"]

#: Why a record was not kept, in the order the reader tests them.
SKIP_REASONS: tuple[str, ...] = (
    "unsupported_link_type",
    "unknown_interface",
    "non_ip",
    "arp",
    "ipv6",
    "truncated",
    "bad_header",
    "non_first_fragment",
    "ipv4_other_proto",
)


class CaptureError(Exception):
    """A file that cannot be read as a capture; the message is one line naming the file."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class ReadReport:
    """What reading one capture found: format, link types, packet counts, skips and warnings."""

    path: str = ""
    format: str = ""
    gzip: bool = False
    compression: str | None = None
    link_types: list[int] = field(default_factory=list)
    packets_seen: int = 0
    packets_kept: int = 0
    bytes_read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None  # why the file was refused (multi-file reads with skip_errors)

    def add_link_type(self, link_type: int) -> None:
        """Record a link type declared by the file (kept sorted, without duplicates)."""
        if link_type not in self.link_types:
            self.link_types.append(link_type)
            self.link_types.sort()

    def summary(self) -> str:
        """One line: format, packets kept of seen, skips by reason, warning count."""
        fmt = self.format + (f"+{self.compression}" if self.compression else "")
        skips = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items()))
        text = f"{self.path}: {fmt}, link types {self.link_types}, "
        text += f"{self.packets_kept}/{self.packets_seen} packets kept"
        if skips:
            text += f" (skipped: {skips})"
        if self.warnings:
            text += f"; {len(self.warnings)} warning(s): {self.warnings[0]}"
        return text
