"""The class-conditional diffusion model of flows: denoiser, training, sampling, model dirs.

Importing this package is cheap: torch and diffusers load on first use of a name that needs
them (:func:`load_model`, :func:`train_model`, :class:`TrafficModel`, ...), so the CLI can import
:class:`ModelError` without paying for them.

Python API::

    from netdiffusion.model import load_model
    model = load_model("MODEL_DIR")            # or load_model() for the bundled default model
    traffic = model.generate(1000, classes={"HueBridge": 0.5, "WeMoLink": 0.5}, seed=1)
    for chunk in model.generate_batches(10**6, seed=1):  # bounded memory, time-ordered chunks
        ...
"""

from __future__ import annotations

from typing import Any

from netdiffusion.model._errors import ModelError

__all__ = [
    "DEFAULT_MODEL_DIR",
    "FeatureLayout",
    "ModelError",
    "TrafficModel",
    "TrainResult",
    "load_model",
    "train_model",
]

_LAZY = {
    "DEFAULT_MODEL_DIR": "netdiffusion.model.sampling",
    "TrafficModel": "netdiffusion.model.sampling",
    "load_model": "netdiffusion.model.sampling",
    "TrainResult": "netdiffusion.model.training",
    "train_model": "netdiffusion.model.training",
    "FeatureLayout": "netdiffusion.model.features",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'netdiffusion.model' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
