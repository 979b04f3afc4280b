"""Staged draws for generative classifiers: stop an item, or drop a class for it, once it is decided.

After each stage of draws, per item (document) and per class ``c`` still alive, the paired
(common-random-numbers) difference to the leader ``a`` over the ``n`` draws both have had,

    d_k = s_k(a) - s_k(c),    z_c = (mean_k d_k + log p(a) - log p(c)) / (sd_k(d_k) / sqrt(n)),

decides it: ``z_c >= prune_z`` drops class ``c`` for THIS item only (more than two classes), and an
item stops once every other alive class has ``z_c >= stop_z`` (for two classes: the mean difference
over its standard error), at most ``num_draws`` draws. ``s_k`` is draw k's estimate of
``log p(x | y)`` (summed over the item's windows; its windows always share their draw counts).

Unbiasedness: each stage is stratified over ``l`` on its own (``l`` stratified within the stage, one
``u`` per stage), so every stage mean is an unbiased estimate and so is any fixed mix of stages. The
standard error treats the draws of a stage as independent; stratification only lowers the true
variance, so the rule is conservative. The stopped estimate is used to decide the argmax; its value
at a data-dependent stopping time is not claimed unbiased.
"""

from __future__ import annotations

import torch


def stage_plan(num_draws: int, first_stage_draws: int, sequential: bool, prune: bool,
               stage_draws: int | None = None) -> list[int]:
    """Draws per stage, summing to ``num_draws``: fixed K is one stage; pruning without sequential
    stopping is ``[first_stage_draws, rest]``; sequential is ``first_stage_draws`` (at least two give
    the first standard error) then stages of ``stage_draws`` (default the first stage's size): a
    ``stage_draws`` of 1 decides after every draw once the first stage is in."""
    if sequential:
        first = min(max(int(first_stage_draws), 1), num_draws)
        size = max(int(stage_draws or first), 1)
        rest = num_draws - first
        return [first] + [size] * (rest // size) + ([rest % size] if rest % size else [])
    if prune and num_draws > first_stage_draws:
        return [first_stage_draws, num_draws - first_stage_draws]
    return [num_draws]


def paired_z(values: torch.Tensor, alive: torch.Tensor, log_prior: torch.Tensor | None = None):
    """``(leader [D], z [D, C])`` from per-draw estimates ``values [D, n, C]`` (NaN = not drawn).

    The leader has the largest joint (mean + prior) among alive classes; ``z`` is each alive class's
    paired z against it (``+inf`` for a difference with zero spread, ``-inf`` for the leader and dead
    classes, 0 with fewer than two draws)."""
    prior = torch.zeros(values.shape[-1], dtype=values.dtype, device=values.device) if log_prior is None \
        else log_prior.to(values)
    count = (~values.isnan()).sum(1)
    joint = values.nansum(1) / count.clamp_min(1) + prior
    joint = joint.masked_fill(~alive, float("-inf"))
    leader = joint.argmax(1)
    rows = torch.arange(len(values), device=values.device)
    diff = values[rows, :, leader][..., None] - values  # [D, n, C]
    n = (~diff.isnan()).sum(1)
    raw = diff.nansum(1) / n.clamp_min(1)
    mean = raw + (prior[leader][:, None] - prior[None])  # the joint difference: priors enter once
    var = ((diff - raw[:, None]).nan_to_num(0.0) ** 2).sum(1) / (n - 1).clamp_min(1)
    se = (var / n.clamp_min(1)).sqrt()
    z = torch.where(se > 0, mean / se.clamp_min(1e-300), torch.where(mean > 0, float("inf"), 0.0))
    z = torch.where(n >= 2, z, torch.zeros_like(z))
    z = z.masked_fill(~alive, float("-inf"))
    z[rows, leader] = float("-inf")
    return leader, z


def decide(values, alive, done, log_prior, prune_z: float | None, stop_z: float | None):
    """One decision after a stage: returns the new ``(alive, done)`` (items already done stay so)."""
    active = ~done
    _, z = paired_z(values, alive, log_prior)
    if prune_z is not None:
        alive = alive & ~((z >= prune_z) & active[:, None])
    others = alive.clone()
    others[z == float("-inf")] = False  # the leader (and dead classes) decide nothing
    if stop_z is not None:
        done = done | (active & ((z >= stop_z) | ~others).all(1))
    return alive, done | (alive.sum(1) <= 1)  # one class left: nothing more to decide


def replay_stages(values: torch.Tensor, plan: list[int], log_prior=None, prune_z: float | None = None,
                  stop_z: float | None = None):
    """The staged rule re-run on recorded draws: ``(log_lik [D, C], entries [D])``.

    ``values [D, K, C]`` are per-draw estimates recorded with the same ``plan`` and ``prune_z`` but no
    stopping (``stop_z=inf``). Stopping only truncates an item's draws and pruning depends on the item's
    own draws, so the result is the staged estimate ``stop_z`` would have given ON THESE DRAWS (a live
    run draws the same law; its generator stream differs once items stop). ``entries`` counts the
    (draw, class) pairs used: forward passes are that times the item's windows."""
    num_docs, total, num_classes = values.shape
    used = torch.full_like(values, float("nan"))
    alive = torch.ones(num_docs, num_classes, dtype=torch.bool, device=values.device)
    done = torch.zeros(num_docs, dtype=torch.bool, device=values.device)
    prior = None if log_prior is None else log_prior.to(values)
    k0 = 0
    for stage, size in enumerate(plan):
        keep = (alive & ~done[:, None])[:, None, :]
        used[:, k0:k0 + size] = torch.where(keep, values[:, k0:k0 + size], used[:, k0:k0 + size])
        k0 += size
        if stage < len(plan) - 1:
            alive, done = decide(used[:, :k0], alive, done, prior, prune_z, stop_z)
    spent = (~used.isnan()).sum(1)
    return used.nansum(1) / spent.clamp_min(1), spent.sum(1)
