"""Built-in baselines, in every report, so each figure has context.

- ``real_resample``: held-out real flows (the ``resample`` half of ``--real``, files the
  reference half does not hold) measured exactly like the synthetic side. It is the
  real-versus-real floor: no generator can be expected to do better than real traffic from
  other capture files.
- ``independent_marginals``: every flow field and every packet field resampled independently
  (with replacement) from the real training flows of the same class
  (:func:`netdiffusion.fidelity.independent_marginals`), per class as many rows as the
  resample half holds. Its one-field figures sit near the floor by construction; the joint
  figures (discriminator, utility) show what ignoring the joint structure costs. It has fields
  only (no packets), so it gets no nPrint, validity or privacy figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from netdiffusion import fidelity as fd
from netdiffusion._traffic import Traffic

__all__ = ["BASELINES", "Source", "independent_marginals_source", "traffic_source"]

BASELINES = ("real_resample", "independent_marginals")


@dataclass
class Source:
    """One side to measure: its flow and packet fields, and its traffic when it has packets."""

    name: str
    flows: fd.Fields
    packets: fd.Fields
    traffic: Traffic | None = None


def traffic_source(name: str, t: Traffic) -> Source:
    """A side made of real packets (real, synthetic, the real resample)."""
    return Source(name, fd.flow_fields(t), fd.packet_fields(t), t)


def independent_marginals_source(train: Source, like: Source, *, seed: int = 0) -> Source:
    """Fields resampled column by column from ``train``'s class marginals, with ``like``'s
    rows per class."""
    flows = fd.independent_marginals(train.flows, like.flows, seed=seed)
    packets = fd.independent_marginals(train.packets, like.packets, seed=seed + 1)
    return Source("independent_marginals", flows, packets, None)
