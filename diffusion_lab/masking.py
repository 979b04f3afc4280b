"""Masking (noise) schedules of the absorbing forward process, and the training loss they define.

Forward process ``q(x_t | x_0)``: each maskable token becomes the mask token independently with
probability ``m(t)``. Every schedule draws per-sequence times ``t``, maps them to mask rates
``m(t)``, and weights the masked cross-entropy. The loss weight lives in ``loss_weight``.

``LogLinearSchedule`` (MDLM): ``m(t) = t``, continuous-time NELBO

    L = E_t [ (1/t) * sum_i 1[x_t^i = mask] * (-log p(x_0^i | x_t)) ] / (number of real tokens)

with ``t`` antithetic across the batch: ``t_j = (u + j/B) mod 1`` mapped to ``[min_rate, max_rate]``.
In general the weight is ``m'(t) / m(t)``; the bound holds when ``[min_rate, max_rate] = (0, 1]``.

Training window (BD3-LM's clipped schedules, ``train_min_rate`` / ``train_max_rate``): training draws
``t ~ U[t_lo, t_hi]`` with ``t_lo = t(train_min_rate)``, ``t_hi = t(train_max_rate)``, which lowers the
variance of the ``1/t`` objective, and multiplies the weight by ``(t_hi - t_lo)`` so that

    E[train/loss] = int_{t_lo}^{t_hi} (m'(t)/m(t)) E[sum_i 1[x_t^i = mask] (-log p(x_0^i | x_t))] dt / N,

the NELBO truncated to the window (comparable across windows: a part of the full NELBO, never a
rescaled one). Only training reads the window: the bound of validation, scoring and perplexity
(``diffusion_lab.likelihood``) takes nothing from the schedule but ``prefix_keep``.

``SeedDiscreteSchedule`` (the original "RoBERTa diffusion" recipe): one rate per batch from
``{0.1, ..., 1.0}``, loss = mean cross-entropy over the masked tokens, no weight. Not a bound.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def real_tokens(attention_mask: torch.Tensor, prefix_keep: int = 0, score_mask: torch.Tensor | None = None):
    """``[B, L]`` bool: the positions a loss or a likelihood counts: real (attended) tokens, within
    ``score_mask`` when given, minus the first ``prefix_keep`` (a kept prompt or label token, visible
    but never masked nor scored). The one definition behind ``MaskingSchedule.maskable``,
    ``AutoregressiveLM.scored`` and ``likelihood.elbo_log_likelihood``."""
    real = (attention_mask.bool() if score_mask is None else score_mask.bool() & attention_mask.bool()).clone()
    real[:, :prefix_keep] = False  # a new tensor (never the caller's mask), safe to edit in place
    return real


class MaskingSchedule:
    """Base class. Subclasses define ``rate(t)``, ``loss_weight(t)`` and ``sample_t``.

    ``min_rate`` / ``max_rate`` bound the mask probability (a sweep varies them);
    ``prefix_keep`` leading tokens of every sequence are never masked (prompts, label tokens).
    """

    elbo: bool = True  #: whether ``loss`` is a (scaled) negative ELBO

    def __init__(self, min_rate: float = 1e-3, max_rate: float = 1.0, prefix_keep: int = 0, name: str = "",
                 train_min_rate: float | None = None, train_max_rate: float | None = None):
        if not 0.0 < min_rate <= max_rate <= 1.0:
            raise ValueError(
                f"masking.min_rate={min_rate}, masking.max_rate={max_rate}: need 0 < min_rate <= max_rate <= 1"
            )
        if prefix_keep < 0:
            raise ValueError(f"masking.prefix_keep must be >= 0, got {prefix_keep}")
        self.min_rate, self.max_rate, self.prefix_keep, self.name = min_rate, max_rate, prefix_keep, name
        lo = min_rate if train_min_rate is None else train_min_rate
        hi = max_rate if train_max_rate is None else train_max_rate
        windowed = train_min_rate is not None or train_max_rate is not None
        if not min_rate <= lo <= hi <= max_rate or (windowed and lo == hi):
            raise ValueError(
                f"masking.train_min_rate={train_min_rate}, masking.train_max_rate={train_max_rate}: need "
                f"min_rate ({min_rate}) <= train_min_rate < train_max_rate <= max_rate ({max_rate})"
            )
        self.windowed = windowed
        self.train_min_rate, self.train_max_rate = lo, hi

    # --- the schedule -------------------------------------------------------------------------
    def rate(self, t: torch.Tensor) -> torch.Tensor:
        """Mask probability ``m(t)``."""
        raise NotImplementedError

    def inverse_rate(self, m: float) -> float:
        """``t`` with ``m(t) = m`` (maps the rate range to a time range)."""
        raise NotImplementedError

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """Per-sequence weight of the summed masked cross-entropy."""
        raise NotImplementedError

    def time_window(self) -> tuple[float, float]:
        """``(t_lo, t_hi)`` of training draws: ``t(train_min_rate), t(train_max_rate)``."""
        return self.inverse_rate(self.train_min_rate), self.inverse_rate(self.train_max_rate)

    def window_factor(self) -> float:
        """``t_hi - t_lo`` with a training window (the truncated NELBO), 1 without one."""
        if not self.windowed:
            return 1.0
        lo, hi = self.time_window()
        return hi - lo

    def sample_t(self, batch_size: int, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
        """Antithetic times in the training window ``[t_lo, t_hi]``: ``t_j = (u + j/B) mod 1``, rescaled."""
        u = torch.rand((), generator=generator, device=device)
        offsets = torch.arange(batch_size, device=device, dtype=torch.float32) / batch_size
        s = (u + offsets) % 1.0
        lo, hi = self.time_window()
        return lo + (hi - lo) * s

    # --- forward process and loss ------------------------------------------------------------
    def maskable(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """Real tokens that may be masked (not padding, not the kept prefix)."""
        return real_tokens(attention_mask, self.prefix_keep)

    def q_xt(self, input_ids, attention_mask, rates, mask_token_id, generator=None):
        """Sample ``x_t``: mask each maskable token with probability ``rates[b]``. Returns (x_t, masked)."""
        draws = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
        masked = (draws < rates[:, None]) & self.maskable(attention_mask)
        return torch.where(masked, torch.full_like(input_ids, mask_token_id), input_ids), masked

    def loss(self, logits, input_ids, attention_mask, masked, t, nll=None) -> torch.Tensor:
        """Scalar training loss (weighted masked NLL summed, divided by the number of real tokens).

        ``nll``: precomputed ``token_nll(logits, input_ids)`` (saves a second cross-entropy)."""
        nll = (token_nll(logits, input_ids) if nll is None else nll) * masked
        weighted = (nll.sum(1) * self.loss_weight(t) * self.window_factor()).sum()
        return weighted / self.maskable(attention_mask).sum().clamp_min(1)


def token_nll(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """``-log p(x_0^i | x_t)`` per position, ``[B, L]`` (float32 for stability under bf16)."""
    return F.cross_entropy(logits.float().transpose(1, 2), input_ids, reduction="none")


class LogLinearSchedule(MaskingSchedule):
    """MDLM: ``m(t) = t``, weight ``m'(t)/m(t) = 1/t`` (the continuous-time NELBO)."""

    def rate(self, t):
        return t

    def inverse_rate(self, m):
        return m

    def loss_weight(self, t):
        return 1.0 / t


class CosineSchedule(MaskingSchedule):
    """``m(t) = 1 - cos(pi t / 2)``, weight ``m'(t)/m(t) = (pi/2) sin(pi t/2) / (1 - cos(pi t/2))``."""

    def rate(self, t):
        return 1.0 - torch.cos(0.5 * math.pi * t)

    def inverse_rate(self, m):
        return 2.0 / math.pi * math.acos(1.0 - m)

    def loss_weight(self, t):
        half = 0.5 * math.pi * t
        return 0.5 * math.pi * torch.sin(half) / (1.0 - torch.cos(half)).clamp_min(1e-8)


class SeedDiscreteSchedule(MaskingSchedule):
    """The original recipe: ONE rate per batch from ``{0.1, 0.2, ..., 1.0}`` within
    ``[min_rate, max_rate]``, loss = mean cross-entropy over masked tokens, no weight. Not a bound."""

    elbo = False

    def __init__(self, min_rate: float = 0.1, max_rate: float = 1.0, prefix_keep: int = 0, name: str = ""):
        super().__init__(min_rate, max_rate, prefix_keep, name)
        self.levels = [k / 10 for k in range(1, 11) if min_rate - 1e-9 <= k / 10 <= max_rate + 1e-9]
        if not self.levels:
            raise ValueError(
                f"masking.min_rate={min_rate}, max_rate={max_rate} contain none of the rates 0.1..1.0 "
                "of seed_discrete; widen the range"
            )

    def rate(self, t):
        return t

    def inverse_rate(self, m):
        return m

    def sample_t(self, batch_size, generator=None, device="cpu"):
        k = torch.randint(len(self.levels), (), generator=generator, device=device)
        return torch.full((batch_size,), self.levels[int(k)], device=device)

    def loss_weight(self, t):
        return torch.ones_like(t)

    def loss(self, logits, input_ids, attention_mask, masked, t, nll=None):
        nll = (token_nll(logits, input_ids) if nll is None else nll) * masked
        return nll.sum() / masked.sum().clamp_min(1)


def rate_buckets(rates: torch.Tensor, width: float = 0.1) -> torch.Tensor:
    """Bucket label (upper edge, e.g. 0.1 ... 1.0) of each rate, for per-bucket loss curves."""
    return (torch.ceil(rates / width - 1e-6).clamp(1, round(1 / width)) * width).round(decimals=1)
