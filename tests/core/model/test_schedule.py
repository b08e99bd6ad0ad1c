"""The sampler's steps: where they fall on the noise schedule, and the solver built from a model."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from netdiffusion.model.schedule import make_solver, sampling_timesteps

SCHEDULER = Path(__file__).parents[3] / "core/model/default/scheduler/scheduler_config.json"


@pytest.fixture(scope="module")
def alphas() -> np.ndarray:
    solver = make_solver(json.loads(SCHEDULER.read_text()), 3)
    return solver.alphas_cumprod.numpy().astype(np.float64)


def _log_snr(ab: np.ndarray) -> np.ndarray:
    return 0.5 * np.log(ab / (1 - ab))


@pytest.mark.parametrize("steps", [1, 2, 3, 8, 12, 40])
def test_steps_start_at_pure_noise_then_uniform_in_log_snr(alphas: np.ndarray, steps: int) -> None:
    ts = sampling_timesteps(alphas, steps, -2.5)
    assert len(ts) == steps and ts[0] == len(alphas) - 1
    assert all(a > b for a, b in itertools.pairwise(ts)) and ts[-1] >= 0
    if 3 <= steps <= 12:
        lam = _log_snr(alphas)
        targets = np.linspace(-2.5, lam[0], steps)[:-1]
        for t, want in zip(ts[1:], targets, strict=True):
            # the timestep nearest its target in log-SNR: within half a timestep's spacing
            near = max(
                abs(lam[max(t - 1, 0)] - lam[t]), abs(lam[min(t + 1, len(lam) - 1)] - lam[t])
            )
            assert abs(lam[t] - want) <= 0.5 * near + 1e-9


def test_bundled_eight_steps_skip_the_pure_noise_end(alphas: np.ndarray) -> None:
    ts = sampling_timesteps(alphas, 8, -2.5)
    # uniform over the whole schedule would put three steps at 999..996
    assert sum(t >= 990 for t in ts) == 1
    # and no jump across the middle of the schedule (838 -> 269 before)
    assert max(a - b for a, b in itertools.pairwise(ts)) < 350


def test_every_timestep_is_usable(alphas: np.ndarray) -> None:
    n = len(alphas)
    assert sampling_timesteps(alphas, n, -2.5) == list(range(n - 1, -1, -1))
    with pytest.raises(ValueError, match="at most"):
        sampling_timesteps(alphas, n + 1, -2.5)
    with pytest.raises(ValueError, match="at least 1"):
        sampling_timesteps(alphas, 0, -2.5)


def test_solver_order_from_config() -> None:
    cfg = json.loads(SCHEDULER.read_text())
    assert make_solver(cfg, 2).config.solver_order == 2
    assert make_solver(cfg, 3).config.algorithm_type == "dpmsolver++"
    with pytest.raises(ValueError, match="order"):
        make_solver(cfg, 5)


def test_cpu_bf16_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    from netdiffusion.model.sampling import _cpu_bf16

    monkeypatch.setenv("NETDIFFUSION_CPU_BF16", "0")
    assert _cpu_bf16() is False
    monkeypatch.setenv("NETDIFFUSION_CPU_BF16", "1")
    assert _cpu_bf16() is True
