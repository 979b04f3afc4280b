"""``ConfidenceSampler``: reveal the most confident predictions first (MaskGIT / LLaDA remasking)."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from .base import Sampler
from .canvas import keep_top
from .schedules import check_schedule, masked_counts
from .token_choice import check_choice_args, choose_tokens


class ConfidenceSampler(Sampler):
    """Keep the predictions the model is surest of; the schedule fixes how many are revealed.

    Step s = 1..S, row with n generated (non-prompt) positions:

    1. logits = denoise(canvas) with mask and forbidden ids at -inf; each masked position gets a
       candidate token chosen by ``strategy``; its confidence is its probability under
       softmax(logits / temperature) (the full distribution, before top-k / nucleus filtering);
    2. r_s = n - round(n * f(s/S)) positions must be revealed after the step (f the ``schedule``);
    3. ``remask_low_confidence=False``: revealed tokens stay; the r_s - r_{s-1} most confident
       candidates are revealed, the other masked positions stay masked.
       ``remask_low_confidence=True``: each already revealed token is scored by the probability the
       current prediction gives it, and the r_s highest-scoring positions among revealed tokens and
       new candidates are kept, everything else is (re)masked. A revealed token is therefore
       remasked only when at least r_s positions score higher, i.e. when a new candidate is strictly
       more confident than it (ties keep the revealed token).

    Either way exactly r_s positions are revealed after step s (non-decreasing, all n after step S);
    the prompt is never touched. Note: a backbone that sees a revealed token usually predicts it back
    with high probability, so with real models remasking is rare; it matters when the context changed.
    """

    def __init__(
        self,
        steps: int = 32,
        schedule: str = "linear",
        strategy: str = "greedy",
        temperature: float = 1.0,
        top_k: int = 50,
        top_p: float = 0.9,
        remask_low_confidence: bool = True,
        name: str = "confidence",
    ):
        super().__init__(steps, name)
        self.schedule = check_schedule(schedule)
        check_choice_args(strategy, temperature, top_k, top_p)
        self.strategy, self.temperature, self.top_k, self.top_p = strategy, temperature, top_k, top_p
        self.remask_low_confidence = bool(remask_low_confidence)

    def begin(self, canvas, run):
        masked = ~run.is_prompt
        return SimpleNamespace(masked=masked, prompt=run.is_prompt.sum(dim=1), generated=masked.sum(dim=1))

    def step(self, point, canvas, state, run):
        num_revealed = state.generated - masked_counts(self.schedule, point, self.steps, state.generated)
        if bool((num_revealed > (~state.masked & ~run.is_prompt).sum(dim=1)).any()):
            canvas, state.masked = self._step(canvas, state.masked, state.prompt + num_revealed, run)
        return canvas

    def _step(self, canvas, masked, keep_counts, run):
        logits, is_prompt = run.logits(canvas), run.is_prompt
        candidate = canvas.clone()
        candidate[masked] = choose_tokens(
            logits[masked], self.strategy, self.temperature, self.top_k, self.top_p, run.generator
        )
        log_probs = torch.log_softmax(logits / self.temperature, dim=-1)
        confidence = log_probs.gather(-1, candidate[..., None]).squeeze(-1).double()
        revealed = ~masked & ~is_prompt
        # +inf: always kept. The prompt always; revealed tokens too unless they may be remasked.
        confidence = confidence.masked_fill(is_prompt, float("inf"))
        if not self.remask_low_confidence:
            confidence = confidence.masked_fill(revealed, float("inf"))
        keep = keep_top(confidence, keep_counts, prefer=~masked)
        return torch.where(keep, candidate, torch.full_like(canvas, run.mask_token_id)), ~keep
