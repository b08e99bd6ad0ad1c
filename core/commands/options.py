"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from netdiffusion._traffic import Traffic

F = TypeVar("F", bound=Callable[..., Any])


def label_options(func: F) -> F:
    """``--labels folder|FILE.csv`` and ``--label-column``."""
    func = click.option(
        "--label-column",
        default="ndpi_proto",
        show_default=True,
        help="With --labels FILE.csv: the CSV column holding the class.",
    )(func)
    func = click.option(
        "--labels",
        metavar="folder|FILE.csv",
        default=None,
        help="Label flows by the folder each capture sits in, or by a CSV of flows "
        "(columns pcap, endpoint_a, endpoint_b as ip:port, optional l4, and the label column).",
    )(func)
    return func


def device_option(text: str) -> Callable[[F], F]:
    """``--device cuda|cpu`` (default: cuda when present), described by ``text``."""
    return click.option("--device", type=click.Choice(["cuda", "cpu"]), default=None, help=text)


OUTPUT_FORMATS = ("pcap", "pcapng")


def format_option(func: F) -> F:
    """``--format pcap|pcapng`` (default: from the output's suffix, else pcap)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(OUTPUT_FORMATS),
        default=None,
        help="Output format; by default taken from the output file's suffix (.pcapng), else pcap. "
        "pcapng carries each packet's class and flow in a comment (Wireshark: frame.comment).",
    )(func)


def write_traffic(traffic: Traffic, path: Path, fmt: str | None, *, mtu: int | None = 1500) -> None:
    """Write ``traffic`` as pcap or pcapng (atomically); ``mtu=None`` allows any frame size."""
    from netdiffusion.emit import write_pcap, write_pcapng

    if fmt is None:
        fmt = "pcapng" if path.suffix.lower() == ".pcapng" else "pcap"
    if fmt == "pcapng":
        write_pcapng(traffic, path, mtu=mtu)
    else:
        write_pcap(traffic, path, mtu=mtu)


def address_options(func: F) -> F:
    """``--client-net``, ``--server-net`` and ``--seed`` for address assignment."""
    func = click.option(
        "--seed",
        type=int,
        default=0,
        show_default=True,
        help="Seed for address and payload choices (same seed, same output).",
    )(func)
    func = click.option(
        "--server-net",
        default="198.18.0.0/15",
        show_default=True,
        help="Subnet responders' addresses are drawn from.",
    )(func)
    func = click.option(
        "--client-net",
        default="10.0.0.0/16",
        show_default=True,
        help="Subnet originators' addresses are drawn from.",
    )(func)
    return func
