"""Build trajectories without a model: reveal a known text step by step.

For tests, docs and previews of the renderers. The output has the sampler's shape (a list of
``steps + 1`` LongTensors ``[B, L]``, entry 0 all masks after the prompt), and a position once
revealed is never masked again, like a sampler that never remasks.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch


def reveal_trajectory(
    prompt_ids: Sequence[int],
    target_ids: Sequence[int],
    steps: int,
    mask_token_id: int,
    order: str = "random",
    seed: int = 0,
    batch: int = 1,
) -> list[torch.Tensor]:
    """Unmask ``target_ids`` (the text after the prompt) over ``steps`` steps.

    ``order="random"`` reveals positions in a seeded random order, about the same number per step
    (diffusion-like); ``"left_to_right"`` reveals them in order (autoregressive-like, use
    ``steps=len(target_ids)`` for one token per step). Every row of the ``batch`` is the same.
    """
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    if order not in ("random", "left_to_right"):
        raise ValueError(f"unknown order {order!r}")
    prompt_length, total = len(prompt_ids), len(prompt_ids) + len(target_ids)
    positions = list(range(prompt_length, total))
    if order == "random":
        random.Random(seed).shuffle(positions)
    canvas = torch.tensor([*prompt_ids, *[mask_token_id] * len(target_ids)], dtype=torch.long)
    full = torch.tensor([*prompt_ids, *target_ids], dtype=torch.long)
    trajectory = [canvas.repeat(batch, 1)]
    for step in range(steps):
        # an even split: step s reveals positions [s*n/steps, (s+1)*n/steps)
        chunk = positions[step * len(positions) // steps : (step + 1) * len(positions) // steps]
        canvas = canvas.clone()
        canvas[chunk] = full[chunk]
        trajectory.append(canvas.repeat(batch, 1))
    return trajectory
