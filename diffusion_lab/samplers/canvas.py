"""The canvas a sampler works on: prompt prefix then masked positions, plus the step bookkeeping.

Each row is ``length`` tokens: its own prompt first (never changed), the rest masked; no padding, so
the attention mask is all ones. ``keep_top`` picks, per row, the positions with the highest scores
(used to choose which positions stay revealed or get re-masked).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch


def initial_canvas(
    prompt_ids: Sequence[Sequence[int]], length: int, mask_token_id: int, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(canvas [B, length], is_prompt [B, length] bool)``; every non-prompt position holds the mask id."""
    if len(prompt_ids) == 0:
        raise ValueError("prompt_ids must hold one (possibly empty) prompt per sequence, got none")
    if length <= 0:
        raise ValueError(f"length must be >= 1, got {length}")
    canvas = torch.full((len(prompt_ids), length), int(mask_token_id), dtype=torch.long)
    is_prompt = torch.zeros((len(prompt_ids), length), dtype=torch.bool)
    for row, prompt in enumerate(prompt_ids):
        prompt = list(prompt)
        if len(prompt) > length:
            raise ValueError(f"prompt {row} has {len(prompt)} tokens, more than length={length}")
        canvas[row, : len(prompt)] = torch.tensor(prompt, dtype=torch.long)
        is_prompt[row, : len(prompt)] = True
    return canvas.to(device), is_prompt.to(device)


def keep_top(scores: torch.Tensor, counts: torch.Tensor, prefer: torch.Tensor | None = None) -> torch.Tensor:
    """Bool [B, L]: in each row the ``counts[b]`` positions with the highest ``scores``.

    Ties go to positions where ``prefer`` is True, then to the earlier position (stable sorts), so
    the choice is deterministic.
    """
    batch, width = scores.shape
    order = torch.arange(width, device=scores.device).expand(batch, width)
    if prefer is not None:
        order = torch.argsort((~prefer).to(torch.int8), dim=1, stable=True)
    by_score = torch.argsort(scores.gather(1, order), dim=1, descending=True, stable=True)
    ranked = order.gather(1, by_score)
    rank = torch.empty_like(ranked).scatter_(
        1, ranked, torch.arange(width, device=scores.device).expand(batch, width)
    )
    return rank < counts[:, None]


class StepRecorder:
    """Collects the trajectory (canvas clones, on the canvas device) and the wall time of each step."""

    def __init__(self, canvas: torch.Tensor, keep_trajectory: bool):
        self.keep_trajectory = keep_trajectory
        self.trajectory: list[torch.Tensor] = [canvas.clone()] if keep_trajectory else []
        self.step_times: list[float] = []
        self._cuda = canvas.device.type == "cuda"
        self._start = 0.0

    def start(self) -> None:
        self._start = time.perf_counter()

    def stop(self, canvas: torch.Tensor) -> None:
        if self._cuda:  # kernels run asynchronously: wait for them, or the time says nothing
            torch.cuda.synchronize(canvas.device)
        self.step_times.append(time.perf_counter() - self._start)
        if self.keep_trajectory:
            self.trajectory.append(canvas.clone())
