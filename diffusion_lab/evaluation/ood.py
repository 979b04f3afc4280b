"""Out-of-distribution detection: metrics over scores, per-item scores, and length matching.

Convention: a HIGHER score means MORE in-distribution (log-likelihood, max softmax, energy as
T * logsumexp). In-distribution items are the positive class for AUROC and TPR.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc, binary_roc


def _scores(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x))
    return t.to(torch.float64).ravel()


def _dense_rank01(s: torch.Tensor) -> torch.Tensor:
    """Map scores to [0, 1] by dense rank (ties kept as ties).

    torchmetrics squashes scores outside [0, 1] through a sigmoid, which saturates for
    log-likelihoods like -512 vs -640 and would turn them into ties. A rank transform is monotone,
    so AUROC and the ROC curve are unchanged, and it cannot saturate.
    """
    uniq, inv = torch.unique(s, return_inverse=True)
    return inv.to(torch.float64) / max(len(uniq) - 1, 1)


def ood_metrics(scores_in, scores_out) -> dict:
    """AUROC (in = positive) and FPR at 95% TPR: the fraction of OOD items scoring at or above
    the highest threshold that keeps >= 95% of in-distribution items. Lower FPR is better."""
    s_in, s_out = _scores(scores_in), _scores(scores_out)
    if len(s_in) == 0 or len(s_out) == 0:
        raise ValueError("ood_metrics needs at least one in- and one out-of-distribution score")
    if torch.isnan(s_in).any() or torch.isnan(s_out).any():
        raise ValueError("OOD scores contain NaN")
    preds = _dense_rank01(torch.cat([s_in, s_out]))
    target = torch.cat([torch.ones(len(s_in)), torch.zeros(len(s_out))]).long()
    fpr, tpr, _ = binary_roc(preds, target)
    return {
        "auroc": float(binary_auroc(preds, target)),
        "fpr_at_95_tpr": float(fpr[tpr >= 0.95].min()),
        "n_in": len(s_in),
        "n_out": len(s_out),
    }


def max_softmax_score(logits) -> torch.Tensor:
    """Per-item max_c softmax(logits)_c  [N] (Hendrycks & Gimpel baseline)."""
    return torch.softmax(torch.as_tensor(logits).to(torch.float64), dim=-1).max(-1).values


def energy_score(logits, T: float = 1.0) -> torch.Tensor:
    """Per-item negative free energy T * logsumexp_c(logits_c / T)  [N] (higher = more in-dist).
    For a generative classifier with logits log p(x|y) + log p(y) and T = 1 this is log p(x)."""
    z = torch.as_tensor(logits).to(torch.float64)
    return T * torch.logsumexp(z / T, dim=-1)


def length_matched_indices(lengths_in, lengths_out, seed: int, bins=10) -> tuple[list[int], list[int]]:
    """Subsample both sets so their length histograms are equal (removes the length confounder:
    summed log-likelihoods fall with length, so a length shift alone would look like OOD).

    bins: number of equal-width bins over the pooled range, or explicit edges. In each bin keep
    min(count_in, count_out) items of each set, drawn without replacement with `seed`.
    Returns sorted index lists (into lengths_in, into lengths_out).
    """
    li, lo = np.asarray(lengths_in, dtype=np.float64), np.asarray(lengths_out, dtype=np.float64)
    edges = np.histogram_bin_edges(np.concatenate([li, lo]), bins=bins)
    # interior edges only: values beyond explicit outer edges fall in the first/last bin
    bi, bo = np.digitize(li, edges[1:-1]), np.digitize(lo, edges[1:-1])
    rng = np.random.default_rng(seed)
    keep_in, keep_out = [], []
    for b in range(len(edges) - 1):
        ii, oo = np.flatnonzero(bi == b), np.flatnonzero(bo == b)
        m = min(len(ii), len(oo))
        keep_in.extend(rng.choice(ii, m, replace=False).tolist())
        keep_out.extend(rng.choice(oo, m, replace=False).tolist())
    return sorted(keep_in), sorted(keep_out)
