"""The fast checksum paths agree with the plain 16-bit ones on awkward inputs."""

from __future__ import annotations

import numpy as np
import pytest

from netdiffusion import checksum as C
from netdiffusion.emit._synth import finish, random_traffic


def _ragged(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(1, 60))
    lens = np.where(rng.random(n) < 0.7, rng.integers(0, 20, n), rng.integers(0, 4000, n))
    lens[rng.random(n) < 0.15] = 0
    start = int(rng.integers(0, 9))
    off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64) + start
    buf = rng.integers(0, 256, int(off[-1]) + int(rng.integers(0, 9)), dtype=np.uint8)
    buf[rng.random(len(buf)) < 0.4] = 0
    for i in np.flatnonzero(rng.random(n) < 0.3):  # all-zero rows, at odd and even starts
        buf[off[i] : off[i + 1]] = 0
    return buf, off


@pytest.mark.parametrize("chunk_words", [1, 3, 1 << 17])
def test_payload_sums_match_16_bit_path(chunk_words: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(C, "_CHUNK_WORDS", chunk_words)
    rng = np.random.default_rng(chunk_words)
    for _ in range(300):
        buf, off = _ragged(rng)
        assert np.array_equal(C._payload_le(buf, off), C._payload_le_u16(buf, off))


def test_long_rows_take_the_16_bit_path() -> None:
    rng = np.random.default_rng(5)
    lens = np.array([3, C._LONG_ROW + 5, 7])
    off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    buf = rng.integers(0, 256, int(off[-1]), dtype=np.uint8)
    assert np.array_equal(C._payload_le(buf, off), C._payload_le_u16(buf, off))


def test_rows_le_matches_masked_sum() -> None:
    rng = np.random.default_rng(9)
    data = rng.integers(0, 256, (500, 60), dtype=np.uint8)
    nwords = 2 * rng.integers(0, 16, 500)
    nwords[:300] = 10  # a dominant length beside a few others
    words = data.view("<u2").astype(np.uint64)
    want = (words * (np.arange(30)[None, :] < nwords[:, None])).sum(axis=1)
    assert np.array_equal(C.fold(C._rows_le(data, nwords)), C.fold(want))
    same = np.full(500, 10)
    assert np.array_equal(C.fold(C._rows_le(data, same)), C.fold(words[:, :10].sum(axis=1)))


@pytest.mark.parametrize("rows_chunk", [700, 65536])
def test_verify_matches_checksum_ok_and_l4_checksums(
    rows_chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = finish(random_traffic(3000, seed=4))
    whole, _ = C.l4_checksums(t)
    monkeypatch.setattr(C, "_ROWS_CHUNK", rows_chunk)
    rng = np.random.default_rng(4)
    t.l4[rng.random(t.n_packets) < 0.2, 16] ^= 0x5A  # damage some TCP checksums
    verdict, csum = C.verify_checksums(t)
    ok = C.checksum_ok(t)
    want, checked = C.l4_checksums(t)
    assert all(np.array_equal(verdict[k], ok[k]) for k in ok)
    assert np.array_equal(csum[checked], want[checked])
    assert np.array_equal(want, whole)
    assert not verdict["l4"].all()
