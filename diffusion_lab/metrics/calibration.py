"""Temperature scaling (fitted on validation only) and reliability diagrams.

For a generative classifier the "logits" are the unnormalised log joint
log p(x|y) + log p(y); softmax of them is the Bayes posterior p(y|x), and dividing them by T
before the softmax is the same one-parameter recalibration as for a discriminative model.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.optimize import minimize, minimize_scalar  # noqa: E402

T_MIN, T_MAX = 0.05, 20.0


def _nll_at(logits: torch.Tensor, labels: torch.Tensor, log_t: float) -> float:
    """NLL(T) = mean_i [ logsumexp_c(z_ic / T) - z_{i,y_i} / T ] with T = exp(log_t), float64."""
    z = logits / math.exp(log_t)
    return float((torch.logsumexp(z, 1) - z.gather(1, labels.view(-1, 1)).squeeze(1)).mean())


def fit_temperature(logits_val, labels_val) -> float:
    """The single T in [0.05, 20] minimising validation NLL of softmax(logits / T).

    NLL is convex in 1/T (logsumexp is convex, the label term linear), hence unimodal in log T,
    so a bounded 1-D search (Brent) over log T finds the minimum without gradients or step sizes
    to tune. Computed in float64; falls back to T = 1 if anything is non-finite, never NaN.
    """
    z = torch.as_tensor(logits_val).detach().cpu().to(torch.float64)
    y = torch.as_tensor(labels_val).detach().cpu().long().ravel()
    if z.ndim != 2 or z.shape[0] != y.shape[0] or z.shape[0] == 0:
        raise ValueError(f"logits must be [N, C] with N = len(labels) > 0; got {tuple(z.shape)}")
    if torch.isnan(z).any():
        raise ValueError("logits contain NaN")
    # centre each row: softmax is shift-invariant and this keeps large log-likelihoods well scaled
    z = z - z.max(1, keepdim=True).values
    res = minimize_scalar(
        lambda lt: _nll_at(z, y, lt),
        bounds=(math.log(T_MIN), math.log(T_MAX)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    t = math.exp(res.x) if np.isfinite(res.x) else 1.0
    # Brent may stop just short of a bound-optimum; never do worse than the uncalibrated T = 1 (ties, e.g. constant logits, keep T = 1)
    if not np.isfinite(res.fun) or _nll_at(z, y, 0.0) <= res.fun:
        t = 1.0
    return float(min(max(t, T_MIN), T_MAX))


def fit_bias_temperature(logits_val, labels_val) -> tuple[float, np.ndarray]:
    """Bias-corrected temperature scaling: ``(T, b)`` minimising the validation NLL of
    ``softmax(z / T + b)``, ``b_0 = 0`` (C - 1 class offsets; L-BFGS over ``(log T, b_1..)``, float64).

    Unlike T alone, the offsets move the decision threshold: the accuracy after them says how much of
    a classifier's error is a shifted class prior (for the generative one, a miscalibrated
    ``log p(x | c)`` per class) rather than a wrong ranking of the items.
    """
    z = torch.as_tensor(logits_val).detach().cpu().to(torch.float64)
    y = torch.as_tensor(labels_val).detach().cpu().long().ravel()
    if z.ndim != 2 or z.shape[0] != y.shape[0] or z.shape[0] == 0:
        raise ValueError(f"logits must be [N, C] with N = len(labels) > 0; got {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError("logits contain NaN or inf")
    z = z - z.max(1, keepdim=True).values

    def nll(theta):
        s = z / math.exp(theta[0]) + torch.cat([torch.zeros(1, dtype=torch.float64), torch.as_tensor(theta[1:])])
        return float((torch.logsumexp(s, 1) - s.gather(1, y[:, None]).squeeze(1)).mean())

    res = minimize(nll, np.zeros(z.shape[1]), method="L-BFGS-B",
                   bounds=[(math.log(T_MIN), math.log(T_MAX))] + [(None, None)] * (z.shape[1] - 1))
    return float(math.exp(res.x[0])), np.concatenate([[0.0], res.x[1:]])


def apply_bias_temperature(logits, T: float, b) -> torch.Tensor:
    """``softmax(z / T + b)``, the posterior after ``fit_bias_temperature``."""
    return torch.softmax(torch.as_tensor(logits).to(torch.float64) / T + torch.as_tensor(b, dtype=torch.float64), dim=-1)


def apply_temperature(logits, T: float) -> torch.Tensor:
    """Calibrated posterior softmax(logits / T). Dividing by T > 0 never changes the argmax."""
    if not T > 0:
        raise ValueError(f"temperature must be > 0, got {T}")
    z = torch.as_tensor(logits).to(torch.float64)
    return torch.softmax(z / T, dim=-1)


def _bin_stats(probs: np.ndarray, labels: np.ndarray, n_bins: int):
    """Per-bin (mean confidence, accuracy, count) over equal-width top-label confidence bins."""
    conf = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(np.float64)
    idx = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)  # (lo, hi] like torchmetrics
    count = np.bincount(idx, minlength=n_bins)
    safe = np.maximum(count, 1)
    return np.bincount(idx, conf, n_bins) / safe, np.bincount(idx, correct, n_bins) / safe, count, conf


def reliability_diagram(named_probs: dict, path, n_bins: int = 15, title: str = "Reliability diagram"):
    """One PNG: every model's reliability curve (accuracy vs mean confidence per bin, empty bins
    skipped), the diagonal of perfect calibration, and below it a histogram of confidences.

    named_probs: {model name: (probs [N, C], labels [N])}. Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(5.5, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    edges = np.linspace(0, 1, n_bins + 1)
    for name, (probs, labels) in named_probs.items():
        p = torch.as_tensor(probs).detach().cpu().double().numpy()
        y = torch.as_tensor(labels).detach().cpu().long().numpy().ravel()
        mean_conf, acc, count, conf = _bin_stats(p, y, n_bins)
        keep = count > 0
        ax.plot(mean_conf[keep], acc[keep], marker="o", ms=4, label=f"{name} (n={len(y)})")
        axh.hist(conf, bins=edges, histtype="step", lw=1.5, label=name)
    ax.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(loc="upper left", fontsize=8)
    axh.set(xlabel="confidence (max posterior)", ylabel="items")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
