"""Exact likelihood of a causal LM: pure functions on logits, plus the start-token convention.

Start token: so that the FIRST real token is scored too, every causal computation runs on
``[s, x_1, ..., x_L]`` where ``s`` is the tokenizer's bos id (for GPT-2 ``<|endoftext|>``, which is
also its eos). Callers hold ``x`` WITHOUT ``s`` and call ``prepend_start_token`` once before the
model; ``ar_log_likelihood`` does both steps, and ``AutoregressiveSampler`` uses the same convention,
so training, scoring and sampling all model

    log p(x) = sum_{i=1..L} log p(x_i | s, x_{<i})     (exact, summed, never length-normalised).

The functions on logits take the ids the model saw (start token included): the logits at position
i score token i+1, so ``[B, L', V]`` logits give ``[B, L'-1]`` token log-probabilities, zero where
the target is padding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def prepend_token(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, token: int | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, L]`` -> ``[B, L + 1]``: ``token`` (one id, or one per row ``[B]``) in front, marked as a real
    (attended) token. The one helper for the start token here and the conditional classifier's label
    token (``classifiers.label_tokens.with_prefix``)."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if isinstance(token, torch.Tensor) and token.dim() > 0:
        first = token.reshape(-1, 1).to(input_ids)
    else:
        first = torch.full_like(input_ids[:, :1], int(token))
    ones = torch.ones_like(attention_mask[:, :1])
    return torch.cat([first, input_ids], dim=1), torch.cat([ones, attention_mask], dim=1)


def prepend_start_token(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, start_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, L]`` -> ``[B, L + 1]``: the start token in front, marked as a real (attended) token."""
    return prepend_token(input_ids, attention_mask, start_token_id)


def ar_token_logprobs(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``[B, L-1]``: ``log softmax(logits[:, i])[x_{i+1}]``, 0 where ``x_{i+1}`` is padding.

    Computed in float32 (log-softmax of bf16 logits loses the tail).
    """
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = input_ids[:, 1:]
    token_logp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if attention_mask is not None:
        token_logp = token_logp * attention_mask[:, 1:].to(token_logp.dtype)
    return token_logp


def ar_sequence_log_likelihood(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``[B]``: ``sum_i log p(x_{i+1} | x_{<=i})`` over real targets (ids include the start token)."""
    return ar_token_logprobs(logits, input_ids, attention_mask).sum(dim=-1)


def ar_loss(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Scalar training loss: mean NLL per scored (real, non-start) token over the batch.

    ``exp(ar_loss)`` on held-out data is the exact perplexity.
    """
    token_logp = ar_token_logprobs(logits, input_ids, attention_mask)
    if attention_mask is None:
        return -token_logp.mean()
    n_scored = attention_mask[:, 1:].sum().clamp_min(1)
    return -token_logp.sum() / n_scored


def ar_token_scores(
    model: Callable[..., torch.Tensor],
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    start_token_id: int,
    condition: torch.Tensor | None = None,
    scored: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[B, L]``: ``log p(x_i | s, x_{<i}, condition)`` at each position of ids WITHOUT the start token.

    Zero where ``scored`` is 0 (default: ``attention_mask``, i.e. every real token). ``scored`` lets a
    caller condition on a prefix without scoring it (a kept prompt / ``masking.prefix_keep``), while
    the model still attends to every real token. ``model(input_ids, attention_mask, condition)`` is a
    causal ``Denoiser``; a bidirectional one (``causal=False``) would see the tokens it scores, so it
    is refused.
    """
    if getattr(model, "causal", True) is False:
        raise ValueError("ar_log_likelihood needs a causal model (model.objective=autoregressive)")
    ids, mask = prepend_start_token(input_ids, attention_mask, start_token_id)
    logits = model(ids, mask, condition)
    if scored is None:
        return ar_token_logprobs(logits, ids, mask)
    return ar_token_logprobs(logits, ids, torch.cat([mask[:, :1], scored.to(mask.dtype)], dim=1))


def ar_log_likelihood(
    model: Callable[..., torch.Tensor],
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    start_token_id: int,
    condition: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[B]`` exact ``log p(x | condition) = sum_i ar_token_scores`` (start token added here)."""
    return ar_token_scores(model, input_ids, attention_mask, start_token_id, condition).sum(dim=-1)


def start_token_id(tokenizer) -> int:
    """The start token of the convention above: the tokenizer's bos id, else its eos id."""
    token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if token_id is None:
        raise ValueError("the tokenizer has neither a bos nor an eos token to start autoregressive sequences")
    return int(token_id)
