"""``RandomRemaskSampler``: the original "RoBERTa diffusion" recipe (fill all, re-mask at random)."""

from __future__ import annotations

from types import SimpleNamespace

from .base import Sampler
from .canvas import keep_top
from .schedules import check_schedule, masked_counts
from .token_choice import check_choice_args, choose_tokens, uniform


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

    def begin(self, canvas, run):
        masked = ~run.is_prompt  # tracked as a flag, not by comparing with the mask id
        return SimpleNamespace(masked=masked, generated=masked.sum(dim=1))

    def step(self, point, canvas, state, run):
        target = masked_counts(self.schedule, point, self.steps, state.generated)
        if bool((target < state.masked.sum(dim=1)).any()):
            logits = run.logits(canvas)
            canvas[state.masked] = choose_tokens(
                logits[state.masked], self.strategy, self.temperature, self.top_k, self.top_p, run.generator
            )
            # random scores; positions outside M_s score -1 so they are never among the k_s re-masked
            scores = uniform(canvas.shape, run.generator, canvas.device).masked_fill(~state.masked, -1.0)
            state.masked = keep_top(scores, target)
            canvas[state.masked] = run.mask_token_id
        return canvas
