"""A read-only Scapy socket over generated traffic, in the manner of Scapy's ``IterSocket``.

:class:`SynthSocket` asks the model for the same pcap records ``netdiffusion generate`` writes
(:meth:`~netdiffusion.model.TrafficModel.generate_records`), one chunk of flows at a time, and
builds a Scapy packet from each record only when ``recv()`` is called: memory holds one chunk's
record bytes, never the whole run, and never more Scapy objects than the caller keeps.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from scapy.data import MTU
from scapy.layers.l2 import Ether
from scapy.supersocket import SuperSocket
from scapy.utils import EDecimal

from netdiffusion.model import ModelError

__all__ = ["DEFAULT_FLOWS", "SynthSocket", "get_model"]

#: Flows generated when neither ``count`` nor ``flows`` is given (as ``netdiffusion generate``).
DEFAULT_FLOWS = 1000
_MODELS: dict[tuple[str, str | None], Any] = {}

Classes = Mapping[str, float] | Sequence[str] | str | None
ModelArg = str | os.PathLike[str] | Any | None


def get_model(model: ModelArg = None, device: str | None = None) -> Any:
    """A loaded :class:`~netdiffusion.model.TrafficModel`: ``model`` itself when it is one, else
    the model directory ``model`` (None: the bundled model), loaded once per session."""
    if model is not None and hasattr(model, "generate_records"):
        return model
    from netdiffusion.model import load_model

    key = (str(Path(model).resolve()) if model is not None else "", device)
    if key not in _MODELS:
        _MODELS[key] = load_model(model, device=device)
    return _MODELS[key]


class SynthSocket(SuperSocket):
    """Read-only socket delivering generated traffic as fully built ``Ether`` packets.

    With no argument it streams 1000 flows of the bundled model, every class in its training
    proportions. ``model``: a model directory or a loaded model; ``cls``: a class name, a list
    of names or ``{name: share}``; ``count``: stop after this many packets (and plan flows as
    ``generate --packets`` does); ``flows``: flows to generate; ``seed``, ``steps``,
    ``guidance``, ``batch_size`` (flows per chunk), ``device``, ``client_net``, ``server_net``
    as for ``netdiffusion generate``; ``nanosecond``: ns timestamps (else microseconds, as the
    pcap written by ``generate``). Every packet has ``.time`` (an ``EDecimal``, what ``rdpcap``
    gives for the same record) and ``.wirelen``; times never decrease; ``EOFError`` at the end.
    """

    desc = "read-only source of netdiffusion's generated traffic"
    nonblocking_socket = True

    def __init__(
        self,
        model: ModelArg = None,
        cls: Classes = None,
        count: int | None = None,
        flows: int | None = None,
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        batch_size: int = 4096,
        device: str | None = None,
        nanosecond: bool = False,
        client_net: str = "10.0.0.0/16",
        server_net: str = "198.18.0.0/15",
        workers: int | None = None,
    ) -> None:
        # no OS socket: like IterSocket, nothing to open
        self.closed = False
        self._stream: Iterator[Any] | None = None
        if count is not None and count < 0:
            raise ModelError(f"count must be 0 or more, not {count}")
        if flows is not None and flows < 1:
            raise ModelError(f"flows must be at least 1, not {flows}")
        self.model = get_model(model, device)
        self.cls = cls
        if cls is not None:
            self.model.class_mix(cls)  # an unknown class fails here, before any work
        self.count = count
        if flows is None:
            flows = DEFAULT_FLOWS if count is None else self.model.flows_for_packets(count, cls)
        self.flows = int(flows)
        self.kwargs = dict(
            classes=cls, steps=steps, guidance=guidance, seed=seed, batch_size=batch_size,
            client_net=client_net, server_net=server_net, device=device, workers=workers,
            nanosecond=nanosecond,
        )  # fmt: skip
        self.seed = seed
        self.nanosecond = nanosecond
        self.delivered = 0
        self.iface = "netdiffusion"
        self._power = Decimal(10) ** (-9 if nanosecond else -6)
        self._data = b""
        self._frames: list[tuple[int, int, int, int]] = []
        self._i = 0

    def __repr__(self) -> str:
        cls = "all classes" if self.cls is None else self.cls
        return (
            f"<SynthSocket {self.model.path.name or self.model.path}: {cls}, {self.flows} flows, "
            f"seed {self.seed}, {self.delivered} packets delivered>"
        )

    # -- the stream ---------------------------------------------------------------------------

    def _next_chunk(self) -> bool:
        """Load the next chunk of records; False at the end of the run."""
        from netdiffusion.capture._decode import rows

        if self._stream is None:
            self._stream = self.model.generate_records(self.flows, **self.kwargs)
        for recs in self._stream:
            if recs.n_packets == 0:
                continue
            starts = recs.starts
            head = rows(recs.data, starts, 8).view("<u4")  # ts seconds, fraction
            self._data = recs.data[: recs.nbytes].tobytes()
            self._frames = list(
                zip(
                    (starts + 16).tolist(),
                    recs.ends.tolist(),
                    head[:, 0].tolist(),
                    head[:, 1].tolist(),
                    strict=True,
                )
            )
            self._i = 0
            return True
        return False

    def recv_raw(self, x: int = MTU) -> tuple[type[Ether] | None, bytes | None, float | None]:
        """The next frame as ``(Ether, bytes, time)``; ``EOFError`` at the end."""
        start, end, sec, frac = self._next_frame()
        return Ether, self._data[start:end], sec + frac * float(self._power)

    def _next_frame(self) -> tuple[int, int, int, int]:
        if self.closed or (self.count is not None and self.delivered >= self.count):
            raise EOFError
        while self._i >= len(self._frames):
            if not self._next_chunk():
                self._frames, self._data = [], b""
                raise EOFError
        frame = self._frames[self._i]
        self._i += 1
        self.delivered += 1
        return frame

    def recv(self, x: int = MTU, **kwargs: Any) -> Ether:
        """The next generated packet, built (``kwargs`` go to ``Ether``); ``EOFError`` at the
        end of the stream."""
        start, end, sec, frac = self._next_frame()
        pkt = Ether(self._data[start:end], **kwargs)
        pkt.time = EDecimal(sec + self._power * frac)
        pkt.wirelen = end - start
        return pkt

    def __iter__(self) -> Iterator[Ether]:
        while True:
            try:
                yield self.recv()
            except EOFError:
                return

    # -- socket API ---------------------------------------------------------------------------

    @staticmethod
    def select(sockets: list[SuperSocket], remain: float | None = None) -> list[SuperSocket]:
        """Always ready, as IterSocket: ``recv`` produces the next packet or ``EOFError``."""
        return sockets

    def send(self, x: Any) -> int:
        """Refused: this socket only reads."""
        raise OSError("SynthSocket is read-only: it delivers generated traffic, it sends nothing")

    def close(self) -> None:
        """Stop generating (worker processes, if any, are shut down)."""
        if getattr(self, "closed", True):
            return
        self.closed = True
        stream, self._stream = self._stream, None
        if stream is not None and hasattr(stream, "close"):
            stream.close()
        self._frames, self._data = [], b""
