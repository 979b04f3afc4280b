"""diffusion_lab: discrete (masked) text diffusion on Hydra + Lightning.

Masked-diffusion language models on RoBERTa or GPT-2 backbones, and generative classifiers built
from them. Entry point: ``python -m diffusion_lab`` (see ``diffusion_lab.__main__``).
"""

__version__ = "0.1.0"
