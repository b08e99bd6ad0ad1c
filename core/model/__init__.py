"""The class-conditional diffusion model of flows: denoiser, training, sampling, model dirs."""
