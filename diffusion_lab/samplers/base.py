"""The sampler interface: generate text from an all-masked canvas by iterative denoising.

Every sampler takes a ``denoise`` callable ``(input_ids [B, L], attention_mask [B, L]) -> logits
[B, L, V]`` and never sees the model class, so the same sampler runs on any backbone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch

from .canvas import StepRecorder, initial_canvas
from .token_choice import forbid

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
    """Base class. ``steps`` denoising steps; subclasses implement ``step`` (and ``begin`` / ``points``
    where the default state, the masked positions, or the default steps 1..steps do not fit).

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

        The loop every sampler shares: the canvas (prompt, then mask ids), ``begin`` (the sampler's
        state), one ``step`` per entry of ``points``, each timed and recorded for the trajectory.
        """
        canvas, is_prompt = initial_canvas(prompt_ids, length, mask_token_id, device)
        run = SamplingRun(denoise, mask_token_id, tuple(forbidden_token_ids), generator, is_prompt)
        state = self.begin(canvas, run)
        recorder = StepRecorder(canvas, return_trajectory)
        for point in self.points(run):
            recorder.start()
            canvas = self.step(point, canvas, state, run)
            recorder.stop(canvas)
        return SampleOutput(canvas, recorder.trajectory, recorder.step_times)

    def begin(self, canvas: torch.Tensor, run: SamplingRun):
        """The sampler's state before the first step (default: which positions are still masked)."""
        return ~run.is_prompt

    def points(self, run: SamplingRun) -> Iterable:
        """What each step is given as ``point`` (default: the step number 1..steps)."""
        return range(1, self.steps + 1)

    @abstractmethod
    def step(self, point, canvas: torch.Tensor, state, run: SamplingRun) -> torch.Tensor:
        """One denoising step: the new canvas (``state`` may be updated in place)."""


@dataclass
class SamplingRun:
    """What one ``sample`` call's steps share: the network, the ids, the random stream, the prompt."""

    denoise: DenoiseFn
    mask_token_id: int
    forbidden_token_ids: tuple[int, ...]
    generator: torch.Generator | None
    is_prompt: torch.Tensor

    def logits(self, canvas: torch.Tensor) -> torch.Tensor:
        """The network's logits on ``canvas`` [B, L, V], with the mask and forbidden ids at -inf."""
        return forbid(Sampler.predict(self.denoise, canvas), self.mask_token_id, self.forbidden_token_ids)
