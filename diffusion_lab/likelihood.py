"""The per-sequence log-likelihood bound of a masked-diffusion model (classification, perplexity, OOD).

For a sequence of ``L`` maskable (scored) tokens,

    log p(x) >= -E_l [ (L / l) * sum_{i in M_l} -log p(x^i | x_{M_l}) ]

with ``l`` uniform on ``{1..L}`` and ``M_l`` exactly ``l`` positions chosen uniformly without
replacement. The K draws are stratified over ``l``: ``l_k = ceil(L * (k + u) / K)`` with one
``u ~ U[0, 1)`` per sequence, which keeps the estimator unbiased and lowers its variance.
The result is summed over tokens (never length-normalised), so class posteriors built from it
are real Bayes posteriors. Tokens that are visible but not maskable (a kept prefix, the overlap of a
window with the previous one) are context: never masked, never scored.

Common random numbers: ``conditions`` lists class ids; every class is scored on the SAME ``l`` and
the same masked positions, so differences between classes are not drowned in Monte Carlo noise.

Cost, the pass-count limit: one row per (sequence, draw, class), classes innermost, all classes of a
draw in the same forward pass; the LM head runs only at the masked positions (``positions=``, the
sparse head); masks are drawn on the generator's device; log-probabilities stay float32 and only the
per-draw sums are float64; rows per pass come from a token budget (``rows_per_pass``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from diffusion_lab.masking import real_tokens

ScoreFn = Callable[..., torch.Tensor]  # (input_ids, attention_mask, condition=None, positions=None) -> logits

#: tokens per forward pass when the device cannot tell its free memory (CPU)
CPU_TOKEN_BUDGET = 16_384


@dataclass
class MaskDraws:
    """``masked [B, K, L]`` bool and the per-draw weight ``L / l`` as ``weight [B, K]``."""

    masked: torch.Tensor
    weight: torch.Tensor


def device_generator(seed: int, device) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``: masks are drawn where the model runs, and the
    same seed on the same device type gives the same masks."""
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


def stratified_mask_draws(maskable: torch.Tensor, num_draws: int, generator: torch.Generator | None = None):
    """Exactly ``l_k`` of the maskable positions of each row, ``l_k`` stratified over ``{1..L}``.

    Drawn on the generator's device (else ``maskable``'s), returned on ``maskable``'s device."""
    out_device = maskable.device
    device = generator.device if generator is not None else out_device
    maskable = maskable.to(device)
    batch, length = maskable.shape
    n = maskable.sum(1)  # L per row
    u = torch.rand(batch, 1, generator=generator, device=device)
    strata = (torch.arange(num_draws, device=device).float()[None, :] + u) / num_draws  # [B, K] in (0, 1)
    counts = torch.ceil(strata * n[:, None].float()).clamp(min=1).long()  # l in {1..L}
    counts = torch.minimum(counts, n[:, None].clamp(min=1))
    # uniform positions without replacement: rank random keys, non-maskable positions rank last
    keys = torch.rand(batch, num_draws, length, generator=generator, device=device)
    keys = keys.masked_fill(~maskable[:, None, :], 2.0)
    ranks = keys.argsort(-1).argsort(-1)
    masked = ranks < counts[..., None]
    masked &= maskable[:, None, :]
    weight = n[:, None].float() / counts.float()
    return MaskDraws(masked=masked.to(out_device), weight=weight.to(out_device))


def rows_per_pass(length: int, device, vocab_size: int = 50_000, hidden_size: int = 768,
                  token_budget: int | None = None) -> int:
    """Sequences per forward pass from a token budget: ``token_budget`` tokens when given, else half of
    the accelerator's free memory over an estimate of the bytes one token costs in inference
    (about 24 hidden-size float32 activations, plus float32 logits and cross-entropy at the half of the
    positions that are masked on average)."""
    device = torch.device(device)
    if token_budget is None:
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            per_token = 4 * (24 * hidden_size + 3 * vocab_size // 2)
            token_budget = int(0.5 * free / per_token)
        else:
            token_budget = CPU_TOKEN_BUDGET
    return max(1, int(token_budget) // max(int(length), 1))


def _takes_positions(score) -> bool:
    try:
        params = inspect.signature(score.forward if isinstance(score, torch.nn.Module) else score).parameters
    except (TypeError, ValueError):
        return False
    return "positions" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def sparse_logits(score: ScoreFn, x, att, condition, positions) -> torch.Tensor:
    """Logits ``[N, V]`` at ``positions`` (row-major), through the sparse head when ``score`` has one."""
    kw = {} if condition is None else {"condition": condition}
    if _takes_positions(score):
        return score(x, att, positions=positions, **kw)
    return score(x, att, **kw)[positions]  # a dense-only score function (tests, external models)


@torch.no_grad()
def draw_log_likelihoods(score: ScoreFn, input_ids, attention_mask, draws: MaskDraws, mask_token_id: int,
                         conditions: list[int] | None = None, alive: torch.Tensor | None = None,
                         rows: int | None = None, return_token_scores: bool = False):
    """Per sequence w, draw k, class c: ``s[w, k, c] = (L/l_k) sum_{i in M_wk} log p(x_i | x_{M_wk}, c)``.

    ``alive [W, C]`` (bool): only those (sequence, class) pairs are scored (NaN elsewhere). Returns
    ``(s [W, K, C] float64, tokens)``; ``tokens [W, C, L]`` float32 is ``sum_k`` of the per-token terms
    (None unless asked). One row per (w, k, c), classes innermost: a pass holds every class of a draw.
    """
    masked, weight = draws.masked, draws.weight
    batch, num_draws, length = masked.shape
    device = input_ids.device
    conds = None if conditions is None else torch.as_tensor(list(conditions), device=device, dtype=torch.long)
    num_classes = 1 if conds is None else len(conds)
    if alive is None:
        alive = torch.ones(batch, num_classes, dtype=torch.bool, device=device)
    w_i, k_i, c_i = alive[:, None, :].expand(batch, num_draws, num_classes).nonzero(as_tuple=True)
    totals = torch.full((batch, num_draws, num_classes), float("nan"), dtype=torch.float64, device=device)
    tokens = torch.zeros(batch, num_classes, length, device=device) if return_token_scores else None
    rows = rows or rows_per_pass(length, device)
    for start in range(0, len(w_i), rows):
        w, k, c = w_i[start:start + rows], k_i[start:start + rows], c_i[start:start + rows]
        m, x0 = masked[w, k], input_ids[w]
        x = torch.where(m, torch.full_like(x0, mask_token_id), x0)
        logits = sparse_logits(score, x, attention_mask[w], None if conds is None else conds[c], m)
        logp = -F.cross_entropy(logits.float(), x0[m], reduction="none")  # [N] float32
        row_of = m.nonzero(as_tuple=True)[0]
        sums = torch.zeros(len(w), dtype=torch.float64, device=device).index_add_(0, row_of, logp.double())
        totals[w, k, c] = sums * weight[w, k].double()
        if tokens is not None:
            dense = torch.zeros(len(w), length, device=device)
            dense[m] = logp
            tokens.index_put_((w, c), dense * weight[w, k, None], accumulate=True)
    return totals, tokens


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
    chunk_size: int | None = None,
    return_token_scores: bool = False,
    score_mask: torch.Tensor | None = None,
):
    """Lower bound on ``log p(x)`` (or ``log p(x | y=c)`` for every ``c`` in ``conditions``).

    Returns ``[B]`` without conditions, ``[B, C]`` with them (shared draws across classes). With
    ``return_token_scores`` also returns the per-token contributions ``[B(, C), L]``
    ``-mean_k (L/l_k) 1[i in M_k] (-log p(x^i | x_{M_k}))``, which sum to the bound: the
    token-level explanations of a classifier are differences of these between classes.
    ``score_mask [B, L]``: the tokens that are scored (default: every real token); the others are
    visible context. ``chunk_size``: rows per forward pass (default: from ``rows_per_pass``).
    """
    if num_draws < 1:
        raise ValueError(f"num_draws (K) must be >= 1, got {num_draws}")
    maskable = real_tokens(attention_mask, prefix_keep, score_mask)
    draws = stratified_mask_draws(maskable, num_draws, generator)
    totals, tokens = draw_log_likelihoods(score, input_ids, attention_mask, draws, mask_token_id, conditions,
                                          rows=chunk_size, return_token_scores=return_token_scores)
    bound = totals.mean(1)  # [B, C] float64
    per_token = tokens.double() / num_draws if tokens is not None else None
    if conditions is None:
        bound = bound[:, 0]
        per_token = per_token[:, 0] if per_token is not None else None
    return (bound, per_token) if return_token_scores else bound
