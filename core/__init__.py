"""netdiffusion: protocol-valid synthetic network traffic from a diffusion model."""

from netdiffusion._traffic import Traffic

__all__ = ["Traffic", "__version__"]
__version__ = "0.1.0"
