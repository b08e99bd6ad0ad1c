"""``netdiffusion generate``: synthetic traffic from a model, streamed to disk."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from netdiffusion._traffic import Traffic
from netdiffusion.commands.options import address_options, device_option

if TYPE_CHECKING:
    from netdiffusion.emit.pcap import PcapRecords
    from netdiffusion.registry import Registry, Sink, SinkEntry

FORMATS = ("pcap", "pcapng", "nprint", "tensors")


def parse_classes(text: str | None) -> dict[str, float] | None:
    """``"A=0.7,B=0.3"`` or ``"A,B"`` (equal shares) to a mapping; None for all classes."""
    if not text:
        return None
    shares: dict[str, float] = {}
    for part in text.split(","):
        name, _, share = part.strip().partition("=")
        if not name:
            raise click.BadParameter(f"empty class name in {text!r}", param_hint="--class")
        try:
            shares[name] = float(share) if share else 1.0
        except ValueError:
            raise click.BadParameter(
                f"share {share!r} of {name!r} is not a number", param_hint="--class"
            ) from None
    return shares


@click.command("generate")
@click.option(
    "--model",
    "model_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Model directory from `train` (default: the bundled model).",
)
@click.option(
    "--class",
    "classes",
    metavar="C[=SHARE],...",
    default=None,
    help="Classes to generate and their shares, e.g. HueBridge=0.7,WeMoLink=0.3 "
    "(default: all classes in their training proportions).",
)
@click.option(
    "--flows",
    type=click.IntRange(min=1),
    default=None,
    help="Number of flows (default 1000, or as many as --packets needs).",
)
@click.option(
    "--packets",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many packets, as a capture would.",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1, max=1000),
    default=None,
    help="Denoising steps (DPM-Solver++; default: the model's, 8 for the bundled one). More "
    "steps are slower and closer to real traffic (bundled model, 16 steps: half the speed, "
    "discriminator AUC about 0.03 lower).",
)
@click.option(
    "--guidance",
    type=click.FloatRange(min=0),
    default=None,
    help="Classifier-free guidance scale (1: none; default: the model's).",
)
@device_option("Where to sample (default: cuda when present).")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=4096,
    show_default=True,
    help="Flows sampled at once (memory is bounded by it).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Processes that repair and encode while the model samples (default: usable cores "
    "- 1, at most 16, when sampling on CUDA; 0, all in this process, on CPU). The output does "
    "not depend on it.",
)
@click.option(
    "--allow-copies",
    is_flag=True,
    help="Keep generated flows that equal a training flow seen once (a memorised record). By "
    "default each is changed until it is new: one gap by a few microseconds, or a lone "
    "packet's TTL by one or two (needs the model's fingerprints; the bundled model has them).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Output file (written to a temporary name, then renamed).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="pcap (Ethernet, tcpreplay-ready), pcapng (class and flow in each packet's "
    "comment), nprint (nPrint CSV) or tensors (a dataset file for `decode`). "
    "Default: from the output's suffix, else pcap.",
)
@address_options
@click.pass_context
def generate_command(
    ctx: click.Context,
    model_dir: Path | None,
    classes: str | None,
    flows: int | None,
    packets: int | None,
    steps: int | None,
    guidance: float | None,
    device: str | None,
    batch_size: int,
    workers: int | None,
    allow_copies: bool,
    output: Path,
    fmt: str | None,
    client_net: str,
    server_net: str,
    seed: int,
    **sink_values: str | None,
) -> None:
    """Generate synthetic traffic: sample flows, repair them, write them.

    Every packet comes out protocol-valid: checksums, lengths, TCP handshake and seq/ack,
    timing, service ports. The same seed gives the same output on the same device.

    Under `accelerate launch` (or torchrun) the chunks of flows are shared out across the
    processes, one GPU each, and rank 0 writes them in order: the output is the same as a
    single process's, made proportionally faster.

    \b
    Examples:
      netdiffusion generate -o traffic.pcap                      # bundled model, all classes
      netdiffusion generate --class HueBridge --flows 500 -o hue.pcapng
      netdiffusion generate --model model/ --packets 100000 --device cuda -o big.pcap
      accelerate launch --multi_gpu --num_processes 4 -m netdiffusion generate \\
          --flows 1000000 -o big.pcap                            # 4 GPUs
    """
    from netdiffusion.model import load_model

    fmt = fmt or _format_from_suffix(output)
    model = load_model(model_dir, device=device)
    mix = parse_classes(classes)
    if mix is not None:
        model.class_mix(mix)  # an unknown class or a bad share fails here, before any work
    if flows is None:
        flows = 1000 if packets is None else model.flows_for_packets(packets, mix)
    kwargs = dict(
        classes=mix, steps=steps, guidance=guidance, seed=seed, batch_size=batch_size,
        client_net=client_net, server_net=server_net, progress=True, workers=workers,
        allow_copies=allow_copies,
    )  # fmt: skip
    from netdiffusion.model.sharding import current_shard

    model.shard = shard = current_shard()
    entries = _chosen_sinks(ctx, sink_values, fmt)
    # pcap: the workers build the records, this process writes bytes in order (sinks that
    # look at the traffic need it as Traffic: then the chunks come whole)
    stream = (
        model.generate_records(flows, path=output, **kwargs)
        if fmt == "pcap" and not entries
        else model.generate_batches(flows, **kwargs)
    )
    with contextlib.closing(stream):  # stops the worker pool even when cut short
        if not shard.is_main:  # a sharded launch: this process samples its chunks for rank 0
            for _ in stream:
                pass
            return
        context = {"output": output, "client_net": client_net, "server_net": server_net}
        sinks = [(e, e.open(value, **context)) for e, value in entries]
        if fmt == "pcap" and not sinks:
            written = _write_records(stream, output, packets)  # type: ignore[arg-type]
        else:
            written = _write(stream, output, fmt, packets, [s for _e, s in sinks])  # type: ignore[arg-type]
    click.echo(f"{written} packets written to {output} ({fmt})")
    for _entry, sink in sinks:
        line = sink.close(output)
        if line:
            click.echo(line)


def _chosen_sinks(
    ctx: click.Context, values: dict[str, str | None], fmt: str
) -> list[tuple[SinkEntry, str]]:
    """The sinks given on the command line, with their values (registered by plugins)."""
    chosen = {k[len(_SINK_PREFIX) :]: v for k, v in values.items() if v is not None}
    if not chosen:
        return []
    root = ctx.find_root().command
    loaded = getattr(root, "loaded_plugins", None)
    if loaded is None:
        from netdiffusion.plugins import default_plugins

        registry = default_plugins().registries.sinks
    else:
        registry = loaded().registries.sinks
    out = []
    for name, value in chosen.items():
        entry = registry.require(name)
        if entry.needs_pcap and fmt not in ("pcap", "pcapng"):
            raise click.UsageError(f"{entry.option} needs a pcap or pcapng output, not {fmt}")
        out.append((entry, value))
    return out


_SINK_PREFIX = "sink_"


def attach_sinks(command: click.Command, sinks: Registry[SinkEntry]) -> None:
    """Give the generate command one option per registered sink (replacing earlier ones)."""
    base = [p for p in command.params if not (p.name or "").startswith(_SINK_PREFIX)]
    extra = [
        click.Option(
            [entry.option, _SINK_PREFIX + entry.name],
            metavar=entry.metavar,
            default=None,
            help=f"{entry.description} [plugin: {entry.plugin}]",
        )
        for entry in sinks.values()
    ]
    command.params = base + extra


def _format_from_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    return {".pcapng": "pcapng", ".csv": "nprint", ".safetensors": "tensors"}.get(suffix, "pcap")


def _write(
    chunks: Iterable[Traffic],
    output: Path,
    fmt: str,
    limit: int | None,
    sinks: Sequence[Sink] = (),
) -> int:
    """Stream chunks into ``output`` (and every sink); stop after ``limit`` packets."""
    from netdiffusion.emit import PcapWriter

    count = 0
    if fmt in ("pcap", "pcapng"):
        with PcapWriter(output, pcapng=fmt == "pcapng") as writer:
            for chunk in chunks:
                chunk = _trim(chunk, limit, count)
                for sink in sinks:
                    sink.add(chunk)
                writer.write(chunk)
                count += chunk.n_packets
                if limit is not None and count >= limit:
                    break
        return count
    parts = []
    for chunk in chunks:
        chunk = _trim(chunk, limit, count)
        for sink in sinks:
            sink.add(chunk)
        parts.append(chunk)
        count += chunk.n_packets
        if limit is not None and count >= limit:
            break
    traffic = Traffic.concat(parts)
    if fmt == "nprint":
        from netdiffusion.dataset import write_nprint_csv

        write_nprint_csv(traffic, output)
    else:
        from netdiffusion.dataset import save_dataset

        save_dataset(traffic, output, store_payload=True)
    return count


def _write_records(chunks: Iterable[PcapRecords], output: Path, limit: int | None) -> int:
    """Stream ready pcap records into ``output``; stop after ``limit`` packets."""
    from netdiffusion.emit.pcap import PcapWriter

    count = 0
    with PcapWriter(output) as writer:
        for recs in chunks:
            if limit is not None and count + recs.n_packets > limit:
                recs = recs.head(limit - count)
            writer.write_records(recs)
            count += recs.n_packets
            if limit is not None and count >= limit:
                break
    return count


def _trim(chunk: Traffic, limit: int | None, count: int) -> Traffic:
    """The chunk, cut so that no more than ``limit`` packets are written in all."""
    if limit is None or count + chunk.n_packets <= limit:
        return chunk
    return chunk.take(np.arange(limit - count))
