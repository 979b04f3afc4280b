"""Samplers: generate text from an all-masked canvas by iterative denoising (``conf/sampler``)."""

from .autoregressive import AutoregressiveSampler
from .base import DenoiseFn, SampleOutput, Sampler
from .confidence import ConfidenceSampler
from .ddpm_cache import DDPMCacheSampler
from .random_remask import RandomRemaskSampler

__all__ = [
    "AutoregressiveSampler",
    "ConfidenceSampler",
    "DDPMCacheSampler",
    "DenoiseFn",
    "RandomRemaskSampler",
    "SampleOutput",
    "Sampler",
]
