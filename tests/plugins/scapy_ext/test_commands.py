"""The Scapy commands (synth, synth_socket, synth_classes) and the PipeEngine source."""

from __future__ import annotations

import contextlib
import io
from typing import Any

from scapy.config import conf
from scapy.pipetool import PipeEngine, QueueSink
from scapy.plist import PacketList

from netdiffusion_scapy import SynthSocket, SynthSource, synth, synth_classes, synth_socket

COMMANDS = (synth, synth_socket, synth_classes)


def test_synth_is_a_named_packet_list(model: Any) -> None:
    pl = synth(40, cls="HueBridge", model=model, seed=3, device="cpu")
    assert isinstance(pl, PacketList) and pl.listname == "HueBridge"
    assert repr(pl).startswith("<HueBridge: TCP:")
    same = list(SynthSocket(model=model, cls="HueBridge", count=40, seed=3, device="cpu"))
    assert 0 < len(pl) <= 40
    assert [bytes(p) for p in pl] == [bytes(p) for p in same]
    assert [p.time for p in pl] == [p.time for p in same]
    mixed = synth(5, cls={"HueBridge": 1, "WeMoLink": 1}, model=model, device="cpu")
    assert mixed.listname == "HueBridge+WeMoLink"
    assert synth(5, model=model, device="cpu").listname == "synth"


def test_commands_registered_with_short_first_lines() -> None:
    for cmd in COMMANDS:
        assert cmd in conf.commands
        first = (cmd.__doc__ or "").strip().splitlines()[0]
        assert 10 < len(first) <= 80 and not first.endswith(".")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        from scapy.config import lsc

        lsc()
    listed = {line.split(":")[0].strip(): line for line in out.getvalue().splitlines()}
    for cmd in COMMANDS:
        first = (cmd.__doc__ or "").strip().splitlines()[0]
        assert listed[cmd.__name__].split(":", 1)[1].strip() == first


def test_synth_socket_and_classes(model: Any) -> None:
    assert synth_classes(model) == model.class_proportions
    with synth_socket(cls="Lightify", model=model, count=5, device="cpu") as s:
        assert isinstance(s, SynthSocket) and len(s.sniff()) == 5


def test_pipe_engine_source(model: Any) -> None:
    want = [bytes(p) for p in SynthSocket(model=model, count=25, flows=10, seed=6, device="cpu")]
    src = SynthSource(model=model, count=25, flows=10, seed=6, device="cpu")
    sink = QueueSink()
    src > sink  # noqa: B015 - Scapy's pipe operator
    engine = PipeEngine(src)
    engine.start()
    engine.wait_and_stop()
    got = []
    while (p := sink.recv(block=False)) is not None:
        got.append(bytes(p))
    assert got == want
    assert src.exhausted()
