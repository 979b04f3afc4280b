"""How a token is chosen at a position from its logits: the ``strategy`` of a sampler.

- ``greedy``:  argmax of the logits (``temperature`` does not change the choice)
- ``sample``:  a draw from softmax(logits / temperature)
- ``top_k``:   a draw from softmax(logits / temperature) restricted to the ``top_k`` largest logits
- ``nucleus``: a draw from the smallest set of most likely tokens whose probability reaches ``top_p``
               (the most likely token is always kept)

The top-k and nucleus filters are transformers' logits warpers (``TopKLogitsWarper``, ``TopPLogitsWarper``).

Forbidden ids (the mask id, specials) get logit -inf before any of this, so no strategy can pick them.
Draws use the Gumbel-max trick in float64: float32 Gumbel noise truncates the tail and acts like a
lower temperature (Zheng et al. 2024, "Masked diffusion models are secretly time-agnostic ...").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import TopKLogitsWarper, TopPLogitsWarper

STRATEGIES = ("greedy", "top_k", "nucleus", "sample")


def check_choice_args(strategy: str, temperature: float, top_k: int, top_p: float) -> None:
    """Raise ``ValueError`` naming the key and its allowed values."""
    if strategy not in STRATEGIES:
        raise ValueError(f"sampler.strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    check_temperature(temperature)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"sampler.top_k must be an integer >= 1, got {top_k!r}")
    if not 0.0 < float(top_p) <= 1.0:
        raise ValueError(f"sampler.top_p must be in (0, 1], got {top_p!r}")


def check_temperature(temperature: float) -> None:
    if not float(temperature) > 0.0:
        raise ValueError(f"sampler.temperature must be > 0, got {temperature!r}")


def forbid(logits: torch.Tensor, mask_token_id: int, forbidden_token_ids: Sequence[int]) -> torch.Tensor:
    """Copy of ``logits`` [..., V] with the mask id and every forbidden id set to -inf."""
    ids = sorted({int(mask_token_id), *(int(i) for i in forbidden_token_ids)})
    vocab = logits.shape[-1]
    if any(i < 0 or i >= vocab for i in ids):
        raise ValueError(f"forbidden/mask token ids {ids} must lie in [0, {vocab}) (vocabulary size {vocab})")
    if len(ids) >= vocab:
        raise ValueError("every token id is forbidden: nothing left to generate")
    out = logits.clone()
    out[..., ids] = float("-inf")
    return out


def uniform(shape: Sequence[int], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """U[0, 1) float64 draws from ``generator`` (made on the generator's device, moved to ``device``)."""
    where = generator.device if generator is not None else device
    return torch.rand(tuple(shape), generator=generator, device=where, dtype=torch.float64).to(device)


def gumbel_argmax(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row of softmax(logits) [N, V] (-inf logits are never drawn)."""
    u = uniform(logits.shape, generator, logits.device).clamp_(min=1e-300)  # log(0) would give -inf noise
    gumbel = -torch.log(-torch.log(u))
    return (logits.double() + gumbel).argmax(dim=-1)


def choose_tokens(
    logits: torch.Tensor,
    strategy: str,
    temperature: float = 1.0,
    top_k: int = 50,
    top_p: float = 0.9,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Token ids [N] chosen from ``logits`` [N, V] (forbidden ids already at -inf)."""
    if strategy == "greedy":
        return logits.argmax(dim=-1)
    scaled = logits / temperature
    if strategy == "top_k":  # transformers' own filters (checked equal to the ones they replaced)
        scaled = TopKLogitsWarper(top_k)(None, scaled)
    elif strategy == "nucleus":
        scaled = TopPLogitsWarper(top_p)(None, scaled)
    return gumbel_argmax(scaled, generator)
