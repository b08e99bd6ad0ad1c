"""A PipeEngine source of generated traffic."""

from __future__ import annotations

from typing import Any

from scapy.pipetool import ThreadGenSource

from ._socket import SynthSocket

__all__ = ["SynthSource"]


class SynthSource(ThreadGenSource):
    """Generated packets on the low exit; exhausted at the end of the stream.

    .. code::

         +-----------+
      >>-|           |->>
         |           |
       >-| [synth]---|->
         +-----------+

    Takes a :class:`SynthSocket` (``socket=``) or the socket's keyword arguments (``count=``,
    ``cls=``, ``model=``, ``seed=``, ...). A thread reads the socket while the engine runs.
    """

    def __init__(
        self, socket: SynthSocket | None = None, name: str | None = None, **kwargs: Any
    ) -> None:
        ThreadGenSource.__init__(self, name=name)
        if socket is not None and kwargs:
            raise ValueError("SynthSource takes a socket or socket arguments, not both")
        self.sock = socket if socket is not None else SynthSocket(**kwargs)

    def generate(self) -> None:
        """Read the socket until it ends or the engine stops."""
        try:
            while self.RUN:
                try:
                    pkt = self.sock.recv()
                except EOFError:
                    break
                self._gen_data(pkt)
        finally:
            self.sock.close()
            self._exhaust()

    def deliver(self) -> None:
        """Pass one packet on, or mark the source exhausted at the end of the stream."""
        msg, high, exhaust = self.recv()
        if exhaust:
            self.is_exhausted = True
        elif high:
            self._high_send(msg)
        else:
            self._send(msg)

    def stop(self) -> None:
        """Stop reading (the reading thread closes the socket as it ends)."""
        ThreadGenSource.stop(self)
