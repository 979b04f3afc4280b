"""The per-sequence log-likelihood bound of a masked-diffusion model (classification, perplexity, OOD).

For a sequence of ``L`` maskable tokens,

    log p(x) >= -E_l [ (L / l) * sum_{i in M_l} -log p(x^i | x_{M_l}) ]

with ``l`` uniform on ``{1..L}`` and ``M_l`` exactly ``l`` positions chosen uniformly without
replacement. The K draws are stratified over ``l``: ``l_k = ceil(L * (k + u) / K)`` with one
``u ~ U[0, 1)`` per sequence, which keeps the estimator unbiased and lowers its variance.
The result is summed over tokens (never length-normalised), so class posteriors built from it
are real Bayes posteriors.

Common random numbers: ``conditions`` lists class ids; every class is scored on the SAME ``l`` and
the same masked positions, so differences between classes are not drowned in Monte Carlo noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from diffusion_lab.masking import token_nll

ScoreFn = Callable[..., torch.Tensor]  # (input_ids, attention_mask, condition=None) -> logits


@dataclass
class MaskDraws:
    """``masked [B, K, L]`` bool and the per-draw weight ``L / l`` as ``weight [B, K]``."""

    masked: torch.Tensor
    weight: torch.Tensor


def stratified_mask_draws(maskable: torch.Tensor, num_draws: int, generator: torch.Generator | None = None):
    """Exactly ``l_k`` of the maskable positions of each row, ``l_k`` stratified over ``{1..L}``."""
    batch, length = maskable.shape
    n = maskable.sum(1)  # L per row
    u = torch.rand(batch, 1, generator=generator)
    strata = (torch.arange(num_draws).float()[None, :] + u) / num_draws  # [B, K] in (0, 1)
    counts = torch.ceil(strata * n[:, None].float()).clamp(min=1).long()  # l in {1..L}
    counts = torch.minimum(counts, n[:, None].clamp(min=1))
    # uniform positions without replacement: rank random keys, non-maskable positions rank last
    keys = torch.rand(batch, num_draws, length, generator=generator)
    keys = keys.masked_fill(~maskable[:, None, :], 2.0)
    ranks = keys.argsort(-1).argsort(-1)
    masked = ranks < counts[..., None]
    masked &= maskable[:, None, :]
    weight = n[:, None].float() / counts.float()
    return MaskDraws(masked=masked, weight=weight)


@torch.no_grad()
def elbo_log_likelihood(
    score: ScoreFn,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    mask_token_id: int,
    num_draws: int = 8,
    conditions: list[int] | None = None,
    prefix_keep: int = 0,
    generator: torch.Generator | None = None,
    chunk_size: int = 256,
    return_token_scores: bool = False,
):
    """Lower bound on ``log p(x)`` (or ``log p(x | y=c)`` for every ``c`` in ``conditions``).

    Returns ``[B]`` without conditions, ``[B, C]`` with them (shared draws across classes). With
    ``return_token_scores`` also returns the per-token contributions ``[B(, C), L]``
    ``-mean_k (L/l_k) 1[i in M_k] (-log p(x^i | x_{M_k}))``, which sum to the bound: the
    token-level explanations of a classifier are differences of these between classes.
    """
    if num_draws < 1:
        raise ValueError(f"num_draws (K) must be >= 1, got {num_draws}")
    device = input_ids.device
    maskable = attention_mask.bool().clone()
    maskable[:, :prefix_keep] = False
    draws = stratified_mask_draws(maskable.cpu(), num_draws, generator)
    masked, weight = draws.masked.to(device), draws.weight.to(device)
    batch, length = input_ids.shape
    conds = [None] if conditions is None else list(conditions)

    # one row per (sequence, draw, class); classes innermost so they share the same masked input
    x_t = torch.where(masked, torch.full_like(masked, mask_token_id, dtype=input_ids.dtype), input_ids[:, None])
    rows_x = x_t.reshape(batch * num_draws, length)
    rows_att = attention_mask[:, None].expand(-1, num_draws, -1).reshape(batch * num_draws, length)
    rows_tgt = input_ids[:, None].expand(-1, num_draws, -1).reshape(batch * num_draws, length)
    token_scores = torch.zeros(batch * num_draws, len(conds), length, dtype=torch.float64, device=device)
    for ci, cond in enumerate(conds):
        for start in range(0, rows_x.shape[0], chunk_size):
            sl = slice(start, start + chunk_size)
            c = None if cond is None else torch.full((rows_x[sl].shape[0],), cond, device=device, dtype=torch.long)
            logits = score(rows_x[sl], rows_att[sl], condition=c) if c is not None else score(rows_x[sl], rows_att[sl])
            token_scores[sl, ci] = -token_nll(logits, rows_tgt[sl]).double()
    token_scores = token_scores.view(batch, num_draws, len(conds), length)
    token_scores = token_scores * masked[:, :, None, :] * weight[:, :, None, None].double()
    per_token = token_scores.mean(1)  # [B, C, L]
    bound = per_token.sum(-1)
    if conditions is None:
        bound, per_token = bound[:, 0], per_token[:, 0]
    return (bound, per_token) if return_token_scores else bound
