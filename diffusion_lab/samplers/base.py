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
    """Base class. ``steps`` denoising steps; subclasses implement ``sample``.

    ``name`` is stored and otherwise ignored: it lets a ``conf/sampler/*.yaml`` carry a ``name:`` key
    that ``hydra.utils.instantiate`` passes through (used for run names and plot legends).
    """

    def __init__(self, steps: int = 32, name: str | None = None):
        if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
            raise ValueError(f"sampler.steps must be an integer >= 1, got {steps!r}")
        self.steps = steps
        self.name = name if name is not None else type(self).__name__

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, steps={self.steps})"

    @staticmethod
    def predict(denoise: DenoiseFn, canvas: torch.Tensor) -> torch.Tensor:
        """Call the network on the whole canvas (no padding: attention mask of ones), check the shape."""
        logits = denoise(canvas, torch.ones_like(canvas))
        if logits.dim() != 3 or logits.shape[:2] != canvas.shape:
            raise ValueError(
                f"denoise must return logits [B, L, V] = [{canvas.shape[0]}, {canvas.shape[1]}, V], "
                f"got {tuple(logits.shape)}"
            )
        return logits.float()

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

        ``forbidden_token_ids`` (mask, pad, other specials) are never produced; the mask id is always
        forbidden. All randomness comes from ``generator`` (same seed, same output).
        """
