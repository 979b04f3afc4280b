"""Figures of the evaluation suite (PNG, Agg backend): robustness curves, deletion curves, OOD scores."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def robustness_figure(robustness: dict, path: Path, title: str = "Robustness") -> Path:
    """Accuracy (with its 95% interval) and ECE against strength: one column per perturbation."""
    perts = sorted({p for entry in robustness.values() for p in entry})
    fig, axes = plt.subplots(2, max(len(perts), 1), figsize=(3.6 * max(len(perts), 1), 6), squeeze=False)
    for j, pert in enumerate(perts):
        for name, entry in robustness.items():
            row = entry.get(pert)
            if not row:
                continue
            x = row["strengths"]
            line = axes[0, j].plot(x, row["accuracy"], marker="o", ms=3, label=name)[0]
            lo, hi = zip(*row["accuracy_ci95"], strict=True)
            axes[0, j].fill_between(x, lo, hi, color=line.get_color(), alpha=0.12)
            axes[1, j].plot(x, row["ece"], marker="o", ms=3, color=line.get_color(), label=name)
        n = next((e[pert]["n"] for e in robustness.values() if pert in e), 0)
        axes[0, j].set(title=f"{pert} (n={n})", ylim=(0, 1), ylabel="accuracy" if j == 0 else None)
        axes[1, j].set(xlabel="strength (fraction of words)", ylabel="ECE (15 bins)" if j == 0 else None)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def deletion_figure(explanations: dict, path: Path) -> Path:
    """Probability of the originally predicted class after deleting k tokens: attributed vs random."""
    names = list(explanations)
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.2 * max(len(names), 1), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=False):
        curve = explanations[name]["deletion"]
        ks = [0, *curve["ks"]]
        for key, style in (("attributed", "-o"), ("random", "--s")):
            if key in curve:
                ax.plot(ks, [curve["original_prob"], *curve[key]], style, ms=3, label=f"top-k {key}" if key ==
                        "attributed" else "k random")
        ax.set(title=f"{name} (n={curve['n']})", xlabel="tokens deleted (k)", ylabel="p(original prediction)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def ood_figure(pairs: dict, path: Path, title: str) -> Path:
    """Histograms of in- vs out-of-distribution scores, one panel per ``{label: (in, out)}``."""
    fig, axes = plt.subplots(1, max(len(pairs), 1), figsize=(3.8 * max(len(pairs), 1), 3.2), squeeze=False)
    for ax, (label, (s_in, s_out)) in zip(axes[0], pairs.items(), strict=False):
        a, b = np.asarray(s_in, dtype=float), np.asarray(s_out, dtype=float)
        edges = np.histogram_bin_edges(np.concatenate([a, b]), bins=30)
        ax.hist(a, bins=edges, alpha=0.55, label=f"in (n={len(a)})")
        ax.hist(b, bins=edges, alpha=0.55, label=f"OOD (n={len(b)})")
        ax.set(title=label, xlabel="score (higher = more in-distribution)")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
