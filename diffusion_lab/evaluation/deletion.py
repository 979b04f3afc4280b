"""Deletion curves: a faithfulness check for token attributions.

If an explanation is faithful, deleting the tokens it ranks highest should lower the model's
confidence in its own prediction faster than deleting the same number of random tokens.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch

from diffusion_lab.evaluation.perturbations import item_seed
from diffusion_lab.metrics.classification import mean_ci95


def _delete(tokens: list[str], drop: set[int]) -> list[str]:
    return [t for i, t in enumerate(tokens) if i not in drop]


def _top_k(scores: Sequence[float], k: int) -> set[int]:
    """Indices of the k largest attributions (ties: earlier position first)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return set(order[:k])


def _random_orders(tokens: list[list[str]], seed: int) -> list[list[int]]:
    """One seeded permutation per item, so random deletions are nested across k like the attributed ones."""
    orders = []
    for i, t in enumerate(tokens):
        perm = list(range(len(t)))
        random.Random(item_seed(seed, i)).shuffle(perm)
        orders.append(perm)
    return orders


def deletion_curve(
    predict_proba: Callable[[list[list[str]]], torch.Tensor],
    tokens: list[list[str]],
    attributions: list[list[float]],
    labels,
    ks: Sequence[int],
    seed: int,
    baseline: str = "both",
) -> dict:
    """Mean probability of the ORIGINALLY PREDICTED class after deleting k tokens per item.

    attributions[i][j] is token j's evidence FOR the class the model originally predicts for
    item i (positive = supports it); the "attributed" curve deletes the k largest (signed, not
    |a|), the "random" curve k uniformly random tokens (the first k of one permutation per item, seeded with
    item_seed(seed, i), so deletions are nested across k).
    k larger than an item's length deletes all its tokens. predict_proba gets a batch of token
    lists and returns [N, C] probabilities; it is called once per k and curve.

    baseline: "both" (default), "attributed" or "random": which curves to compute (a generative
    classifier is expensive to call). Returns {"ks", "n", "<curve>", "<curve>_ci95", "<curve>_accuracy",
    "original_prob", "original_accuracy"}: accuracy is against `labels` at each k; ``_ci95`` is the
    Student-t 95% interval of the mean probability over items at each k.
    """
    if baseline not in ("both", "attributed", "random"):
        raise ValueError(f"baseline must be 'both', 'attributed' or 'random', got {baseline!r}")
    if len(tokens) != len(attributions) or any(
        len(t) != len(a) for t, a in zip(tokens, attributions, strict=True)
    ):
        raise ValueError("tokens and attributions must have the same shape")
    y = torch.as_tensor(labels).long().ravel()
    p0 = torch.as_tensor(predict_proba(tokens)).double()
    pred = p0.argmax(1)
    rows = torch.arange(len(tokens))

    def score(batch: list[list[str]]) -> tuple[float, float, list[float]]:
        p = torch.as_tensor(predict_proba(batch)).double()
        kept = p[rows, pred]
        ci = list(mean_ci95(kept.tolist())[1:]) if len(kept) > 1 else [float("nan")] * 2
        return float(kept.mean()), float((p.argmax(1) == y).double().mean()), ci

    out: dict = {
        "ks": [int(k) for k in ks],
        "n": len(tokens),
        "original_prob": float(p0[rows, pred].mean()),
        "original_accuracy": float((pred == y).double().mean()),
    }
    random_orders = _random_orders(tokens, seed)
    curves = ["attributed", "random"] if baseline == "both" else [baseline]
    for name in curves:
        drops = {"attributed": lambda k: [_top_k(a, k) for a in attributions],
                 "random": lambda k: [set(perm[:k]) for perm in random_orders]}[name]
        scored = [score([_delete(t, d) for t, d in zip(tokens, drops(k), strict=True)]) for k in ks]
        out[name], out[f"{name}_accuracy"], out[f"{name}_ci95"] = (list(column) for column in zip(*scored, strict=True))
    return out
