"""``AutoregressiveSampler``: left to right, one token per step, for a causal model.

It shares the diffusion samplers' interface and canvas, so its trajectory can be animated next to a
diffusion run: ``trajectory[0]`` is the prompt followed by mask ids, and each step fills exactly one
more position (left to right) until the canvas is full.
"""

from __future__ import annotations

import copy
import logging

import torch

from .base import Sampler
from .token_choice import check_choice_args, choose_tokens

log = logging.getLogger(__name__)

#: the token-choice settings every sampler config may carry, copied by ``as_autoregressive``
CHOICE_KEYS = ("strategy", "temperature", "top_k", "top_p")


class AutoregressiveSampler(Sampler):
    """x_p ~ choice(logits of p(x_p | s, x_{<p})) for p = shortest prompt length .. length-1.

    ``s`` is ``start_token_id`` (the tokenizer's bos, see ``models.ar_likelihood.start_token_id``),
    prepended to every model input exactly as in training and scoring (``ar_loss``,
    ``ar_log_likelihood``); it never appears in the output. Each step calls ``denoise`` on the
    whole prefix ``[s, x_1..x_{p}]`` (no KV cache: simple, and fast enough for small models) and
    reads the last position's logits; rows whose prompt still covers position p keep their prompt
    token. Mask and forbidden ids get -inf, then ``strategy`` (greedy / top_k / nucleus / sample,
    with ``temperature``) picks the token.

    ``steps`` is accepted so every ``conf/sampler`` file has the same keys, and ignored: the number
    of steps is always ``length - min(len(prompt))``, one per generated position.
    """

    def __init__(
        self,
        start_token_id: int | None = None,
        strategy: str = "nucleus",
        temperature: float = 1.0,
        top_k: int = 50,
        top_p: float = 0.9,
        steps: int | None = None,
        name: str = "autoregressive",
    ):
        super().__init__(1, name)
        self.steps = steps  # ignored, see the class docstring
        check_choice_args(strategy, temperature, top_k, top_p)
        self.strategy, self.temperature, self.top_k, self.top_p = strategy, temperature, top_k, top_p
        self.start_token_id = start_token_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, strategy={self.strategy!r})"

    def points(self, run):
        """One step per position from the shortest prompt's end to the canvas end."""
        return range(int(run.is_prompt.sum(dim=1).min()), run.is_prompt.shape[1])

    def begin(self, canvas, run):
        if self.start_token_id is None:
            raise ValueError(
                "AutoregressiveSampler needs start_token_id (the tokenizer's bos id, "
                "diffusion_lab.models.ar_likelihood.start_token_id(tokenizer)) to condition the first token. "
                "It is the sampler of model.objective=autoregressive, whose module fills the id in; a "
                "diffusion model needs a diffusion sampler (confidence, random_remask, ddpm_cache)"
            )
        return torch.full_like(canvas[:, :1], int(self.start_token_id))  # the start token, before every prefix

    def step(self, point, canvas, state, run):
        prefix = torch.cat([state, canvas[:, :point]], dim=1)
        logits = run.logits(prefix)[:, -1]
        chosen = choose_tokens(logits, self.strategy, self.temperature, self.top_k, self.top_p, run.generator)
        free = ~run.is_prompt[:, point]
        canvas[free, point] = chosen[free]
        return canvas


def as_autoregressive(sampler: Sampler | None, start_token_id: int) -> AutoregressiveSampler:
    """The sampler a causal model generates with, whatever ``sampler=`` the run was given.

    - an ``AutoregressiveSampler``: itself, with ``start_token_id`` filled in when the config left
      it null (``conf/sampler/autoregressive.yaml`` cannot know the tokenizer's id); a copy, so the
      caller's object is not changed;
    - any other sampler (a diffusion sampler from the run's default ``sampler=``): a new
      ``AutoregressiveSampler`` with the same token choice (strategy / temperature / top_k / top_p,
      where the given sampler has them), since a causal model cannot fill a canvas in any order
      but left to right;
    - ``None``: an ``AutoregressiveSampler`` with its defaults.
    """
    if isinstance(sampler, AutoregressiveSampler):
        if sampler.start_token_id is None:
            sampler = copy.copy(sampler)
            sampler.start_token_id = int(start_token_id)
        return sampler
    choice = {k: getattr(sampler, k) for k in CHOICE_KEYS if sampler is not None and hasattr(sampler, k)}
    if sampler is not None:
        log.info("autoregressive model: sampling left to right instead of with %r (token choice %s)", sampler, choice)
    return AutoregressiveSampler(start_token_id=int(start_token_id), **choice)
