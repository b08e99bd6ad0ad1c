"""The pcap writer's block copy: odd header lengths, tiny and huge payloads, chunk edges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netdiffusion import Traffic
from netdiffusion.emit import pcap as pcap_mod
from netdiffusion.emit import write_pcap, write_pcapng
from netdiffusion.emit.pcap import _Builder
from tests.core.emit._emit_testlib import expected_frames, read_pcap, read_pcapng


def _odd_traffic(n: int, seed: int, max_payload: int = 3000, lead: int = 5) -> Traffic:
    """Packets with every IHL, other protocols (no L4 header), and payloads of 0..max bytes.

    The payload buffer starts ``lead`` bytes in and holds garbage after the last packet.
    """
    rng = np.random.default_rng(seed)
    t = Traffic.empty(n)
    ihl = rng.integers(5, 16, n)
    t.ip[:, 0] = 0x40 | ihl
    t.ip[:, 9] = rng.choice([6, 17, 1, 47, 50], n)
    t.ip[:, 1:] = np.where(np.arange(1, 60)[None, :] < (ihl * 4)[:, None], t.ip[:, 1:], 0)
    t.ip[:, 12:20] = rng.integers(1, 255, (n, 8), dtype=np.uint8)
    doff = rng.integers(5, 16, n)
    t.l4[:] = rng.integers(0, 256, (n, 60), dtype=np.uint8)
    t.l4[:, 12] = (doff << 4).astype(np.uint8)
    kind = rng.random(n)
    plen = np.where(kind < 0.3, rng.integers(0, 4, n), rng.integers(0, max_payload, n))
    t.payload_len = plen.astype(np.int32)
    t.payload_off = np.concatenate([[0], np.cumsum(plen)]).astype(np.int64) + lead
    total = int(t.payload_off[-1])
    t.payload = rng.integers(0, 256, total + int(rng.integers(0, 9)), dtype=np.uint8)
    t.ts_ns = np.sort(rng.integers(0, 10**12, n)).astype(np.int64) + 1_700_000_000 * 10**9
    t.mac = np.where(rng.random((n, 1)) < 0.5, rng.integers(0, 256, (n, 12)), 0).astype(np.uint8)
    return t


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunk_bytes", [1 << 22, 700])
def test_records_match_frames(
    seed: int, chunk_bytes: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pcap_mod, "_CHUNK_BYTES", chunk_bytes)
    t = _odd_traffic(400, seed)
    path = tmp_path / "odd.pcap"
    report = write_pcap(t, path, mtu=None)
    _, recs = read_pcap(path)
    frames = expected_frames(t)
    assert [r.data for r in recs] == frames
    assert report.bytes == path.stat().st_size
    body = _Builder(t, "pcap", False).records()
    assert body.tobytes() == path.read_bytes()[24:]
    ng = tmp_path / "odd.pcapng"
    write_pcapng(t, ng, mtu=None)
    assert [r.data for r in read_pcapng(ng)[1]] == frames


@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_payload_buffers(n: int, tmp_path: Path) -> None:
    """Fewer payload bytes in all than one copy block: the byte-by-byte tail path alone."""
    t = _odd_traffic(n, 7, max_payload=3, lead=0)
    t.payload = t.payload[: int(t.payload_off[-1])]
    path = tmp_path / "tiny.pcap"
    write_pcap(t, path, mtu=None)
    assert [r.data for r in read_pcap(path)[1]] == expected_frames(t)


def test_read_only_payload(tmp_path: Path) -> None:
    t = _odd_traffic(50, 3)
    t.payload.flags.writeable = False
    path = tmp_path / "ro.pcap"
    write_pcap(t, path, mtu=None)
    assert [r.data for r in read_pcap(path)[1]] == expected_frames(t)
