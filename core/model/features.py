"""The features the model learns, and the map between them and the encoder's flow tensors.

The encoder gives every packet slot 1090 values (:mod:`netdiffusion.encoding`): 1088 nPrint bit
values in {-1, 0, 1}, direction and the inter-arrival feature. Most of them carry no information
the model should spend capacity on, so :class:`FeatureLayout` keeps only the *active* ones:

- the header blocks are IPv4 (always present), TCP, UDP and ICMP (each present or not); three
  explicit block features (+1 present, -1 absent) say which L4 header a packet carries;
- a bit is *active* when it varies over the training packets whose block is present; otherwise it
  is a *constant* of its block (its value, possibly -1 for option bytes never present) restored
  after sampling;
- never learned, whatever the data: IPv4 addresses (privacy; assigned at emission), every
  checksum, the UDP length and TCP urgent pointer (the repair engine recomputes them), the TCP
  acknowledgement number (rebuilt from the peers' sequence numbers), and the high-entropy IPv4 ID
  and TCP sequence number, of which repair keeps only each direction's first value: those are
  drawn uniformly at random at sampling time;
- direction (+1 originator, -1 responder) and the inter-arrival feature mapped to ``2 * iat - 1``;
- the same inter-arrival feature once more as ``iat_bits`` bits (+1/-1, most significant first) of
  its Gray-coded quantisation to ``2 ** iat_bits`` levels: the denoiser reproduces header bits
  exactly where it gets a single continuous value only to a few per cent, and real timing has
  sharp modes (retransmission timers double exactly, periodic reports keep their period). At
  sampling time the bits give the value when they agree with the continuous feature to within
  :data:`IAT_BITS_TOLERANCE`, and the continuous feature gives it otherwise (layouts of format 1
  have no such bits).

A flow's length is not a feature: it is drawn from the class's training distribution of flow
lengths and given to the denoiser as conditioning (and as its attention mask). Padding slots hold
0 in model space and are ignored by the loss.

Model space column order: active bits (ascending encoder index), then ``tcp``, ``udp``, ``icmp``,
``direction``, ``iat``, then the ``iat_bits`` inter-arrival bits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from netdiffusion.encoding import (
    DIRECTION_FEATURE,
    IAT_FEATURE,
    N_FEATURES,
    FlowTensor,
)
from netdiffusion.model._errors import ModelError
from netdiffusion.nprint import N_BITS

if TYPE_CHECKING:
    import torch

__all__ = [
    "BLOCK_NAMES",
    "DEFAULT_IAT_BITS",
    "IAT_BITS_TOLERANCE",
    "FeatureLayout",
    "ModelBatch",
]

#: The L4 header blocks (bit ranges of the 1088 nPrint values) after the IPv4 block (0..480).
BLOCK_NAMES = ("tcp", "udp", "icmp")
_BLOCK_BITS = ((480, 960), (960, 1024), (1024, 1088))
_TCP, _UDP, _ICMP = 480, 960, 1024

# never learned: (first bit, end bit, fill when the block is present: "zero" or "random")
_EXCLUDED: tuple[tuple[int, int, str], ...] = (
    (32, 48, "random"),  # IPv4 identification
    (80, 96, "zero"),  # IPv4 header checksum
    (96, 160, "zero"),  # IPv4 addresses
    (_TCP + 32, _TCP + 64, "random"),  # TCP sequence number
    (_TCP + 64, _TCP + 96, "zero"),  # TCP acknowledgement number
    (_TCP + 128, _TCP + 144, "zero"),  # TCP checksum
    (_TCP + 144, _TCP + 160, "zero"),  # TCP urgent pointer
    (_UDP + 32, _UDP + 48, "zero"),  # UDP length
    (_UDP + 48, _UDP + 64, "zero"),  # UDP checksum
    (_ICMP + 16, _ICMP + 32, "zero"),  # ICMP checksum
)
_FORMAT = 2
_FORMATS = (1, 2)  # format 1: no inter-arrival bits
#: Inter-arrival bits of new layouts: 2**14 levels over the feature's [0, 1] (iat_scale 20: about
#: 0.12 % of the gap per level).
DEFAULT_IAT_BITS = 14
#: Largest distance (in the [0, 1] inter-arrival feature) between the bits' value and the
#: continuous feature at which sampling takes the bits' value (1/64: about +-37 % of the gap).
IAT_BITS_TOLERANCE = 1.0 / 64.0


def _bit_block() -> NDArray[np.int8]:
    """Block of every bit: 0 IPv4, 1 TCP, 2 UDP, 3 ICMP."""
    out = np.zeros(N_BITS, np.int8)
    for k, (a, b) in enumerate(_BLOCK_BITS, start=1):
        out[a:b] = k
    return out


_BLOCK_OF = _bit_block()


def _excluded_mask() -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    excluded = np.zeros(N_BITS, np.bool_)
    random = np.zeros(N_BITS, np.bool_)
    for a, b, fill in _EXCLUDED:
        excluded[a:b] = True
        random[a:b] = fill == "random"
    return excluded, random


_EXCLUDED_MASK, _RANDOM_MASK = _excluded_mask()


@dataclass
class ModelBatch:
    """A batch of flows in model space, as torch tensors on one device.

    ``x`` float ``[b, p, K]``, ``mask`` bool ``[b, p]`` (real packet slots), ``label`` long
    ``[b]``, ``length`` long ``[b]``.
    """

    x: torch.Tensor
    mask: torch.Tensor
    label: torch.Tensor
    length: torch.Tensor


#: Feature groups :meth:`FeatureLayout.loss_weights` can weigh: ``("bits", start, end)``, the
#: active bits of an nPrint bit range, or ``("extra", i, j)``, extra features ``i..j-1`` after
#: the active bits (TCP/UDP/ICMP block scores, direction, inter-arrival time).
WEIGHT_GROUPS: dict[str, tuple[str, int, int]] = {
    "ip_length": ("bits", 16, 32),  # IPv4 total length
    "ip_ttl": ("bits", 64, 72),
    "tcp_offset": ("bits", 576, 580),  # TCP data offset: header length, hence payload length
    "tcp_flags": ("bits", 584, 592),
    "tcp_window": ("bits", 592, 608),
    "l4_kind": ("extra", 0, 3),
    "direction": ("extra", 3, 4),
    "iat": ("extra", 4, 5),
    "iat_bits": ("iat_bits", 0, 0),  # the Gray-coded inter-arrival bits, however many
}


@dataclass
class FeatureLayout:
    """Which encoder features the model sees and how the others are restored (see module doc).

    ``active``: encoder bit indices the model learns (ascending). ``constants``: int8 ``[4,
    1088]``, the full bit vector of a packet whose L4 block is TCP, UDP or ICMP (rows 1..3; row 0
    unused), with -1 for the other blocks' bits, the constants of each block, 0 for excluded bits.
    """

    active: NDArray[np.int64]
    constants: NDArray[np.int8]
    max_packets: int
    iat_scale: float
    iat_bits: int = 0

    # -- sizes ----------------------------------------------------------------------------

    @property
    def n_active_bits(self) -> int:
        """Learned bit columns."""
        return len(self.active)

    @property
    def n_features(self) -> int:
        """Model-space width ``K``: active bits, three block features, direction, iat, iat bits."""
        return len(self.active) + 5 + self.iat_bits

    def loss_weights(self, weights: Mapping[str, float] | None) -> NDArray[np.float32]:
        """Per-feature training loss weights ``[K]`` (mean 1) from weights of named groups
        (:data:`WEIGHT_GROUPS`); features of no named group weigh 1."""
        w = np.ones(self.n_features, np.float32)
        a = self.n_active_bits
        for name, value in (weights or {}).items():
            if name not in WEIGHT_GROUPS:
                known = ", ".join(WEIGHT_GROUPS)
                raise ModelError(f"unknown feature group {name!r}; known groups: {known}")
            if not value > 0:
                raise ModelError(f"feature weight {name}={value!r} is not a positive number")
            kind, lo, hi = WEIGHT_GROUPS[name]
            if kind == "iat_bits":
                w[a + 5 : a + 5 + self.iat_bits] = value
            elif kind == "extra":
                w[a + lo : a + hi] = value
            else:
                w[:a][(self.active >= lo) & (self.active < hi)] = value
        return w / w.mean()

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def learn(
        cls, flows: FlowTensor, *, iat_bits: int = DEFAULT_IAT_BITS, chunk: int = 65536
    ) -> FeatureLayout:
        """The layout of ``flows``' packets: which bits vary within their block; ``iat_bits``
        inter-arrival bits (0: none)."""
        if not 0 <= iat_bits <= 24:
            raise ModelError(f"iat_bits {iat_bits} is not in 0..24")
        if flows.n_packets == 0:
            raise ModelError("no packets to learn from")
        first = np.full((4, N_BITS), -2, np.int16)  # first value seen, per block kind
        varies = np.zeros((4, N_BITS), np.bool_)  # row 0: IPv4 bits over every packet
        for start in range(0, flows.n_packets, chunk):
            bits = _codes_to_bits(flows.codes[start : start + chunk])
            kind = _packet_kind(bits)
            for k in (0, 1, 2, 3):
                rows = bits if k == 0 else bits[kind == k]
                if not len(rows):
                    continue
                ref = np.where(first[k] == -2, rows[0], first[k]).astype(np.int16)
                first[k] = ref
                varies[k] |= (rows != ref).any(axis=0)
        own = np.zeros(N_BITS, np.bool_)
        for k in (0, 1, 2, 3):
            own |= (k == _BLOCK_OF) & varies[k]
        active = np.flatnonzero(own & ~_EXCLUDED_MASK).astype(np.int64)

        constants = np.zeros((4, N_BITS), np.int8)
        for k in (1, 2, 3):
            row = np.where(_BLOCK_OF == 0, first[0], np.where(k == _BLOCK_OF, first[k], -1))
            row = np.where(row == -2, -1, row)
            in_block = (_BLOCK_OF == 0) | (k == _BLOCK_OF)
            row = np.where(_EXCLUDED_MASK & in_block, 0, row)
            constants[k] = row.astype(np.int8)
        return cls(active, constants, int(flows.max_packets), float(flows.iat_scale), int(iat_bits))

    # -- (de)serialisation ----------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """A JSON-able description (stored in ``netdiffusion.json``)."""
        return {
            "format": _FORMAT,
            "encoder_features": N_FEATURES,
            "max_packets": self.max_packets,
            "iat_scale": self.iat_scale,
            "active_bits": [int(i) for i in self.active],
            "constants": {
                name: "".join("x" if v < 0 else str(int(v)) for v in self.constants[k])
                for k, name in enumerate(BLOCK_NAMES, start=1)
            },
            "excluded": [[a, b, fill] for a, b, fill in _EXCLUDED],
            "extra_features": ["tcp", "udp", "icmp", "direction", "iat"]
            + [f"iat_bit{i}" for i in range(self.iat_bits)],
            "iat_transform": "2 * log1p(gap_us) / iat_scale - 1",
            "iat_bits": self.iat_bits,
            "iat_bits_transform": "Gray code of min(floor(log1p(gap_us) / iat_scale "
            "* 2**iat_bits), 2**iat_bits - 1), most significant bit first, 1 -> +1, 0 -> -1",
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureLayout:
        """Inverse of :meth:`to_json`; raises :class:`ModelError` on a malformed layout."""
        try:
            if int(data["format"]) not in _FORMATS:
                raise ModelError(f"feature layout format {data['format']} is not one of {_FORMATS}")
            iat_bits = int(data.get("iat_bits", 0)) if int(data["format"]) >= 2 else 0
            if not 0 <= iat_bits <= 24:
                raise ModelError(f"iat_bits {iat_bits} is not in 0..24")
            active = np.asarray(data["active_bits"], np.int64)
            constants = np.zeros((4, N_BITS), np.int8)
            for k, name in enumerate(BLOCK_NAMES, start=1):
                text = data["constants"][name]
                if len(text) != N_BITS:
                    raise ModelError(f"constants of {name} have {len(text)} values, not {N_BITS}")
                raw = np.frombuffer(text.encode("ascii"), np.uint8)
                constants[k] = np.where(raw == ord("x"), -1, raw.astype(np.int16) - ord("0"))
            if len(active) and (active.min() < 0 or active.max() >= N_BITS):
                raise ModelError("active bit index out of range")
            return cls(
                active, constants, int(data["max_packets"]), float(data["iat_scale"]), iat_bits
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"malformed feature layout ({type(exc).__name__}: {exc})") from None

    # -- encoder -> model space -----------------------------------------------------------

    def packed(self, flows: FlowTensor, *, chunk: int = 65536) -> NDArray[np.float16]:
        """Model-space rows of every held packet: float16 ``[M, K]`` (exact for bits; the iat
        column to float16 precision, ~1e-3)."""
        out = np.empty((flows.n_packets, self.n_features), np.float16)
        a = self.n_active_bits
        for start in range(0, flows.n_packets, chunk):
            end = min(start + chunk, flows.n_packets)
            bits = _codes_to_bits(flows.codes[start:end])
            kind = _packet_kind(bits)
            out[start:end, :a] = bits[:, self.active]
            for k in (1, 2, 3):
                out[start:end, a + k - 1] = np.where(kind == k, 1, -1)
            out[start:end, a + 3] = flows.direction[start:end]
            out[start:end, a + 4] = 2.0 * flows.iat[start:end] - 1.0
            out[start:end, a + 5 :] = _iat_to_bits(flows.iat[start:end], self.iat_bits)
        return out

    def from_encoder(self, tensor: NDArray[np.floating], mask: NDArray[np.bool_]) -> NDArray:
        """Model-space float32 ``[f, P, K]`` of an encoder tensor ``[f, P, 1090]`` (padding 0)."""
        f, p, _ = tensor.shape
        bits = np.clip(np.rint(tensor[..., :N_BITS]), -1, 1).astype(np.int8).reshape(f * p, -1)
        kind = _packet_kind(bits)
        a = self.n_active_bits
        out = np.zeros((f * p, self.n_features), np.float32)
        out[:, :a] = bits[:, self.active]
        for k in (1, 2, 3):
            out[:, a + k - 1] = np.where(kind == k, 1, -1)
        out[:, a + 3] = tensor[..., DIRECTION_FEATURE].reshape(-1)
        iat = tensor[..., IAT_FEATURE].reshape(-1)
        out[:, a + 4] = 2.0 * iat - 1.0
        out[:, a + 5 :] = _iat_to_bits(iat, self.iat_bits)
        out[~mask.reshape(-1)] = 0
        return out.reshape(f, p, -1)

    # -- model space -> encoder (torch, on the sampling device) ---------------------------

    def tables(self, device: torch.device) -> dict[str, torch.Tensor]:
        """Device-resident lookup tables for :meth:`to_bits`."""
        import torch

        block = torch.as_tensor(_BLOCK_OF[self.active].astype(np.int64), device=device)
        rand_cols = np.flatnonzero(_RANDOM_MASK)
        return {
            "active": torch.as_tensor(self.active, device=device),
            "block": block,
            "constants": torch.as_tensor(self.constants, device=device),
            "rand_cols": torch.as_tensor(rand_cols, device=device),
            "rand_block": torch.as_tensor(_BLOCK_OF[rand_cols].astype(np.int64), device=device),
            "weights": torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], device=device),
            "iat_weights": torch.tensor(
                [2.0 ** (self.iat_bits - 1 - i) for i in range(self.iat_bits)],
                dtype=torch.float64,
                device=device,
            ),
        }

    def to_bits(
        self,
        x: torch.Tensor,
        tables: dict[str, torch.Tensor],
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Snap model-space rows ``[M, K]`` to nPrint values.

        Returns ``(bits int8 [M, 1088], direction int8 [M] (+1/-1), iat float32 [M])``: the L4
        block is the largest of the three block features, bits of the other blocks are -1,
        constants and excluded fields restored (random fields drawn from ``generator``).
        """
        import torch

        a = self.n_active_bits
        m = x.shape[0]
        kind = torch.argmax(x[:, a : a + 3], dim=1) + 1  # 1 TCP, 2 UDP, 3 ICMP
        bits = tables["constants"][kind].clone()
        vals = torch.clamp(torch.round(x[:, :a]), -1, 1).to(torch.int8)
        block = tables["block"]
        keep = (block == 0) | (block[None, :] == kind[:, None])
        bits[:, tables["active"]] = torch.where(keep, vals, torch.full_like(vals, -1))
        rcols = tables["rand_cols"]
        if len(rcols):
            rnd = torch.randint(
                0, 2, (m, len(rcols)), generator=generator, device=x.device, dtype=torch.int8
            )
            rb = tables["rand_block"]
            in_block = (rb == 0) | (rb[None, :] == kind[:, None])
            bits[:, rcols] = torch.where(in_block, rnd, torch.full_like(rnd, -1))
        direction = torch.where(x[:, a + 3] < 0, -1, 1).to(torch.int8)
        iat = torch.clamp((x[:, a + 4].float() + 1.0) * 0.5, min=0.0)
        if self.iat_bits:
            # Gray -> binary: each binary bit is the parity of the Gray bits up to it
            gray = (x[:, a + 5 : a + 5 + self.iat_bits] > 0).to(torch.int32)
            binary = torch.remainder(torch.cumsum(gray, dim=1), 2).to(torch.float64)
            level = binary @ tables["iat_weights"]
            fine = ((level + 0.5) / 2.0**self.iat_bits).to(torch.float32)
            iat = torch.where((fine - iat).abs() <= IAT_BITS_TOLERANCE, fine, iat)
        return bits, direction, iat

    def to_codes(self, bits: torch.Tensor, tables: dict[str, torch.Tensor]) -> torch.Tensor:
        """nPrint byte codes ``[M, 136]`` (int16; 256 = fill) of snapped bits ``[M, 1088]``:
        a byte is present when most of its 8 values are not -1."""
        import torch

        b8 = bits.view(bits.shape[0], -1, 8)
        present = (b8 != -1).sum(dim=2) > 4
        byte = ((b8 > 0).to(torch.int16) * tables["weights"].to(torch.int16)).sum(dim=2)
        return torch.where(
            present, byte.to(torch.int16), torch.full_like(byte, 256, dtype=torch.int16)
        )


def _iat_to_bits(iat: NDArray[np.floating], n: int) -> NDArray[np.float32]:
    """``[M, n]`` +1/-1 Gray-code bits (most significant first) of the [0, 1] inter-arrival
    feature quantised to ``2 ** n`` levels."""
    levels = 1 << n
    q = np.clip(np.floor(np.asarray(iat, np.float64) * levels), 0, levels - 1).astype(np.int64)
    gray = q ^ (q >> 1)
    shifts = np.arange(n - 1, -1, -1, dtype=np.int64)
    return np.where((gray[:, None] >> shifts) & 1, 1.0, -1.0).astype(np.float32)


def _codes_to_bits(codes: NDArray[np.uint16]) -> NDArray[np.int8]:
    from netdiffusion.encoding import _codes_to_bits as expand

    return expand(codes)


def _packet_kind(bits: NDArray[np.int8]) -> NDArray[np.int8]:
    """L4 block of each packet: 1 TCP, 2 UDP, 3 ICMP (0 none), as the decoder chooses it."""
    score = np.stack(
        [
            (bits[:, _TCP : _TCP + 160] != -1).mean(axis=1),
            (bits[:, _UDP : _UDP + 64] != -1).mean(axis=1),
            (bits[:, _ICMP : _ICMP + 64] != -1).mean(axis=1),
        ],
        axis=1,
    )
    return np.where(score.max(axis=1) > 0.5, score.argmax(axis=1) + 1, 0).astype(np.int8)
