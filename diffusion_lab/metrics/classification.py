"""Classification metrics with intervals and paired tests, as plain Python numbers for JSON.

Owns: accuracy (+ Wilson 95% interval), macro-F1, NLL, Brier, ECE (15 bins, top-label, L1),
confusion matrix, the Student-t interval for means over seeds, and McNemar's exact paired test.
Counting metrics come from torchmetrics; the few formulas it lacks are written out here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats
from torchmetrics.functional.classification import (
    multiclass_calibration_error,
    multiclass_confusion_matrix,
    multiclass_f1_score,
)

ECE_BINS = 15
PROB_FLOOR = 1e-12  # clamp for log(p): one confidently wrong item must not make the NLL infinite


def _as_tensor(x, dtype=None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    t = t.detach().cpu()
    return t.to(dtype) if dtype is not None else t


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n (scipy's ``binomtest(k, n).proportion_ci``):

    centre = (p + z^2/(2n)) / (1 + z^2/n),
    half   = z * sqrt(p(1-p)/n + z^2/(4n^2)) / (1 + z^2/n),  with p = k/n, z = 1.96 for 95%.
    Unlike the normal (Wald) interval it stays inside [0, 1] and is sensible at p = 0 or 1.
    """
    if n <= 0:
        raise ValueError(f"wilson_interval needs n > 0, got n={n}")
    if not 0 <= k <= n:
        raise ValueError(f"wilson_interval needs 0 <= k <= n, got k={k}, n={n}")
    confidence = 2.0 * stats.norm.cdf(z) - 1.0
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


def mean_ci95(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval: mean -/+ t_{0.975, n-1} * s / sqrt(n), s the sample std.

    For a mean over seeds. With n = 1 the spread is unknown, so the bounds are NaN (not the
    value itself: a zero-width interval would claim a certainty that one seed cannot give).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("mean_ci95 needs at least one value")
    mean = float(v.mean())
    if v.size == 1:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, df=v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return mean, mean - half, mean + half


def discordant_counts(correct_a, correct_b) -> tuple[int, int]:
    """``(b, c)`` on paired correctness: b = #(A right, B wrong), c = #(A wrong, B right). Sums of these over
    independent test sets give a pooled exact McNemar test (``mcnemar_pvalue_from_counts``)."""
    a = _as_tensor(correct_a).bool().ravel()
    bb = _as_tensor(correct_b).bool().ravel()
    if a.shape != bb.shape:
        raise ValueError(f"paired inputs differ in length: {a.numel()} vs {bb.numel()}")
    return int((a & ~bb).sum()), int((~a & bb).sum())


def mcnemar_pvalue(correct_a, correct_b) -> float:
    """Exact two-sided McNemar test on paired correctness of two models on the same items.

    b = #(A right, B wrong), c = #(A wrong, B right). Under H0 b ~ Binomial(b + c, 1/2), so
    p = min(1, 2 * P[X <= min(b, c)]). Exact (no chi-square approximation), since discordant
    counts in small test sets are often tiny. p = 1.0 when there are no discordant pairs.
    """
    return mcnemar_pvalue_from_counts(*discordant_counts(correct_a, correct_b))


def mcnemar_pvalue_from_counts(b: int, c: int) -> float:
    """``mcnemar_pvalue`` from the discordant counts themselves (e.g. summed over seeds)."""
    if b + c == 0:
        return 1.0
    # binom.cdf works in log space internally, so it stays exact-ish for thousands of pairs
    return float(min(1.0, 2.0 * stats.binom.cdf(min(b, c), b + c, 0.5)))


def nll(probs, labels) -> float:
    """Mean negative log-likelihood: -1/N sum_i log max(p_i[y_i], 1e-12)."""
    p = _as_tensor(probs, torch.float64)
    y = _as_tensor(labels, torch.long)
    picked = p.gather(1, y.view(-1, 1)).squeeze(1).clamp_min(PROB_FLOOR)
    return float(-picked.log().mean())


def brier(probs, labels) -> float:
    """Multiclass Brier score: 1/N sum_i sum_c (p_ic - 1[y_i = c])^2 (range [0, 2])."""
    p = _as_tensor(probs, torch.float64)
    y = _as_tensor(labels, torch.long)
    onehot = torch.nn.functional.one_hot(y, p.shape[1]).to(torch.float64)
    return float(((p - onehot) ** 2).sum(1).mean())


def classification_metrics(probs, labels, z: float = 1.96) -> dict:
    """All the numbers a result row needs, from posterior probabilities [N, C] and labels [N].

    Keys: n, accuracy, accuracy_ci95 ([low, high], Wilson), macro_f1, nll, brier,
    ece (15 equal-width bins over the top-label confidence, L1 norm), confusion_matrix
    (rows = true class, columns = predicted class).
    """
    p = _as_tensor(probs, torch.float64)
    y = _as_tensor(labels, torch.long).ravel()
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"probs must be [N, C] with N = len(labels); got {tuple(p.shape)}, {y.shape[0]}")
    n, num_classes = p.shape
    pred = p.argmax(1)
    k = int((pred == y).sum())
    low, high = wilson_interval(k, n, z)
    pf = p.float()  # torchmetrics' binning is float32 internally
    return {
        "n": int(n),
        # exact count ratio; torchmetrics' multiclass_accuracy agrees but returns float32 (0.800000011...)
        "accuracy": k / n,
        "accuracy_ci95": [low, high],
        "macro_f1": float(multiclass_f1_score(pred, y, num_classes, average="macro")),
        "nll": nll(p, y),
        "brier": brier(p, y),
        "ece": float(multiclass_calibration_error(pf, y, num_classes, n_bins=ECE_BINS, norm="l1")),
        "confusion_matrix": multiclass_confusion_matrix(pred, y, num_classes).tolist(),
    }
