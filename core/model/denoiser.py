"""The denoiser: a small transformer over a flow's packets, conditioned DiT-style.

Each packet slot is a token. Input: the noisy model-space features ``[b, p, K]`` projected to
``width``, plus a learned position embedding over ``max_packets`` slots. Conditioning (one vector
per flow): the diffusion timestep (sinusoidal then MLP), the class (``num_classes + 1``
embeddings: the last is the null class for classifier-free guidance) and the flow length (an
embedding over ``0..max_packets``). Every block is pre-norm with adaLN-Zero modulation (shift,
scale and gate from the conditioning, the gate initialised at zero so each block starts as the
identity): full bidirectional self-attention over the flow's real packets
(``scaled_dot_product_attention`` with a key mask), then an MLP. The output projection is zero
initialised.

With ``self_condition`` (Chen et al., "Analog Bits", 2022) the input is the noisy features
concatenated with the model's previous estimate of the clean flow (zeros when there is none):
sampling feeds each step's estimate into the next, which lets the bits of a packet agree with
each other over few sampling steps.

Cost per packet slot and denoising step, in multiply-adds: ``layers * (4 + 2 * mlp_ratio) *
width^2`` for the blocks plus ``2 * K * width`` for the projections (attention scores add
``2 * layers * length * width``); :meth:`Denoiser.flops_per_token` returns twice that (FLOPs).
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DISABLE_TELEMETRY", "1")

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

__all__ = ["Denoiser", "clean_estimate"]


def _timestep_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of (possibly fractional) timesteps ``[b]`` -> ``[b, dim]``."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def clean_estimate(
    out: torch.Tensor, noisy: torch.Tensor, alpha_bar: torch.Tensor, prediction: str
) -> torch.Tensor:
    """The clean sample implied by a model output ``out`` for ``noisy`` at cumulative signal
    level ``alpha_bar`` (broadcastable), for prediction type ``epsilon``, ``v_prediction`` or
    ``sample``."""
    if prediction == "sample":
        return out
    a = alpha_bar.to(out.dtype)
    if prediction == "epsilon":
        return (noisy - (1 - a).sqrt() * out) / a.sqrt()
    return a.sqrt() * noisy - (1 - a).sqrt() * out


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)
        self.ada = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, attn_mask: torch.Tensor | None
    ) -> torch.Tensor:
        b, p, w = x.shape
        s1, g1, a1, s2, g2, a2 = self.ada(c)[:, None, :].chunk(6, dim=2)
        h = self.norm1(x) * (1 + g1) + s1
        qkv = self.qkv(h).view(b, p, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)
        x = x + a1 * self.proj(att.transpose(1, 2).reshape(b, p, w))
        h = self.norm2(x) * (1 + g2) + s2
        return x + a2 * self.fc2(F.gelu(self.fc1(h), approximate="tanh"))


class Denoiser(ModelMixin, ConfigMixin):
    """Packet-sequence transformer predicting the diffusion target from noisy flows."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        in_features: int = 64,
        num_classes: int = 1,
        max_packets: int = 64,
        width: int = 128,
        layers: int = 3,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        self_condition: bool = False,
    ) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not a multiple of heads {heads}")
        self.inp = nn.Linear(in_features * (2 if self_condition else 1), width)
        self.pos = nn.Parameter(torch.randn(max_packets, width) * 0.02)
        self.t_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.cls = nn.Embedding(num_classes + 1, width)
        self.len_emb = nn.Embedding(max_packets + 1, width)
        nn.init.normal_(self.cls.weight, std=0.02)
        nn.init.normal_(self.len_emb.weight, std=0.02)
        self.blocks = nn.ModuleList(_Block(width, heads, mlp_ratio) for _ in range(layers))
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, in_features)
        for lin in (self.ada_out, self.out):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    @property
    def null_class(self) -> int:
        """Index of the unconditional (null) class embedding."""
        return int(self.config.num_classes)

    def flops_per_token(self, length: int = 16) -> int:
        """Forward FLOPs per packet slot for flows of ``length`` slots (see module docstring)."""
        c = self.config
        w = c.width
        k_in = c.in_features * (2 if c.get("self_condition") else 1)
        macs = c.layers * (4 + 2 * c.mlp_ratio) * w * w + (k_in + c.in_features) * w
        macs += 2 * c.layers * length * w
        return int(2 * macs)

    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        label: torch.Tensor,
        length: torch.Tensor,
        mask: torch.Tensor | None = None,
        x_self: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Prediction ``[b, p, K]`` for noisy ``x`` ``[b, p, K]`` at ``timestep`` ``[b]`` (or a
        scalar), class ``label`` ``[b]`` and flow ``length`` ``[b]``; ``mask`` ``[b, p]`` marks
        real slots (keys outside it are not attended to); ``x_self`` is the previous estimate of
        the clean flow for a self-conditioned model (None: zeros; ignored otherwise)."""
        b, p, _ = x.shape
        if self.config.get("self_condition"):
            x = torch.cat([x, torch.zeros_like(x) if x_self is None else x_self.to(x.dtype)], 2)
        if timestep.ndim == 0:
            timestep = timestep.expand(b)
        c = self.t_mlp(_timestep_features(timestep, self.config.width).to(x.dtype))
        c = F.silu(c + self.cls(label) + self.len_emb(length))
        h = self.inp(x) + self.pos[:p]
        attn_mask = None
        # on CUDA the mask is used as given: asking whether it is all True would wait for the GPU
        if mask is not None and (mask.is_cuda or not bool(mask.all())):
            attn_mask = mask[:, None, None, :]
        for block in self.blocks:
            h = block(h, c, attn_mask)
        shift, scale = self.ada_out(c)[:, None, :].chunk(2, dim=2)
        return self.out(self.norm_out(h) * (1 + scale) + shift)
