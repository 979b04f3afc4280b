"""The sampler interface: generate text from an all-masked canvas by iterative denoising.

Every sampler takes a ``denoise`` callable ``(input_ids [B, L], attention_mask [B, L]) -> logits
[B, L, V]`` and never sees the model class, so the same sampler runs on any backbone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class SampleOutput:
    """``tokens``: final ids ``[B, L]`` (prompt included, never a mask id).

    ``trajectory``: the canvas after every step, ``trajectory[0]`` the start (all masks except the
    prompt) and ``trajectory[-1] == tokens``; ``len == steps + 1``. Empty unless requested.
    ``step_times``: wall seconds of each step (for side-by-side animations).
    """

    tokens: torch.Tensor
    trajectory: list[torch.Tensor] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)


class Sampler(ABC):
    """Base class. ``steps`` denoising steps; subclasses implement ``sample``."""

    def __init__(self, steps: int = 32):
        if steps <= 0:
            raise ValueError(f"sampler.steps must be a positive integer, got {steps}")
        self.steps = steps

    @abstractmethod
    @torch.no_grad()
    def sample(
        self,
        denoise: DenoiseFn,
        prompt_ids: Sequence[Sequence[int]],
        length: int,
        mask_token_id: int,
        forbidden_token_ids: Sequence[int] = (),
        generator: torch.Generator | None = None,
        return_trajectory: bool = False,
        device: torch.device | str = "cpu",
    ) -> SampleOutput:
        """Generate ``len(prompt_ids)`` sequences of ``length`` tokens, each starting with its prompt.

        ``forbidden_token_ids`` (mask, pad, other specials) are never produced.
        """
