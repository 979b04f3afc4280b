"""``RandomRemaskSampler``: the original "RoBERTa diffusion" recipe (fill all, re-mask at random)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import DenoiseFn, SampleOutput, Sampler
from .canvas import StepRecorder, initial_canvas, keep_top
from .schedules import check_schedule, masked_counts
from .token_choice import check_choice_args, choose_tokens, forbid, uniform


class RandomRemaskSampler(Sampler):
    """Fill every masked position, then re-mask a uniformly random subset of them.

    Step s = 1..S, row with n generated (non-prompt) positions and M_s the positions masked at the
    start of the step:

    1. logits = denoise(canvas); every position in M_s gets a token chosen by ``strategy``
       (greedy / top_k / nucleus / sample, with ``temperature``) from its logits, mask and forbidden
       ids excluded;
    2. k_s = round(n * f(s/S)) with f the unmasking ``schedule`` (see ``schedules``: linear 1 - r,
       cosine cos(pi/2 r), exponential); k_s of the positions in M_s, drawn uniformly without
       replacement, are set back to the mask id.

    So the masked count is exactly k_s after step s (non-increasing, 0 after step S), tokens outside
    M_s never change, and the prompt is never re-masked. Steps whose k_s equals |M_s| in every row
    (more steps than positions) reveal nothing and skip the network call; they are still recorded.
    """

    def __init__(
        self,
        steps: int = 32,
        schedule: str = "linear",
        strategy: str = "nucleus",
        temperature: float = 1.0,
        top_k: int = 50,
        top_p: float = 0.9,
        name: str = "random_remask",
    ):
        super().__init__(steps, name)
        self.schedule = check_schedule(schedule)
        check_choice_args(strategy, temperature, top_k, top_p)
        self.strategy, self.temperature, self.top_k, self.top_p = strategy, temperature, top_k, top_p

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
        canvas, is_prompt = initial_canvas(prompt_ids, length, mask_token_id, device)
        masked = ~is_prompt  # tracked as a flag, not by comparing with the mask id
        num_generated = masked.sum(dim=1)
        recorder = StepRecorder(canvas, return_trajectory)
        for step in range(1, self.steps + 1):
            recorder.start()
            target = masked_counts(self.schedule, step, self.steps, num_generated)
            if bool((target < masked.sum(dim=1)).any()):
                logits = forbid(self.predict(denoise, canvas), mask_token_id, forbidden_token_ids)
                canvas[masked] = choose_tokens(
                    logits[masked], self.strategy, self.temperature, self.top_k, self.top_p, generator
                )
                # random scores; positions outside M_s score -1 so they are never among the k_s re-masked
                scores = uniform(canvas.shape, generator, canvas.device).masked_fill(~masked, -1.0)
                masked = keep_top(scores, target)
                canvas[masked] = mask_token_id
            recorder.stop(canvas)
        return SampleOutput(canvas, recorder.trajectory, recorder.step_times)
