"""PNG plots of one metric against each swept key (matplotlib, Agg: no display needed).

One line per setting of the other swept keys (seed excluded); with several seeds a point is the mean
and the bar its 95% Student-t interval, so the plot shows the same numbers as the summary table.
Classifier sweeps also get ``accuracy_by_model_vs_<key>.png``: one line per model (``<model>/accuracy``),
the learning-curve figure when the key is the training-set size. A numeric axis spanning 16x or more is
drawn on a log scale.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from diffusion_lab.metrics.classification import mean_ci95


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _short(value, width: int = 24) -> str:
    """Legend text: long values (paths) keep their end, which is where they differ."""
    text = str(value)
    return text if len(text) <= width else "..." + text[-width:]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def plot_metric_vs_key(rows: list[dict], key: str, others: list[str], metric: str | list[str],
                       path: Path) -> Path | None:
    """``metric`` against ``key``; a list of metrics: one line for each (and each setting of ``others``)."""
    import matplotlib  # deferred: a heavy import, only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [metric] if isinstance(metric, str) else list(metric)
    done = [r for r in rows if r.get("status") == "finished" and any(r.get(m) is not None for m in metrics)]
    if not done:
        return None
    xs = sorted({r[key] for r in done}, key=lambda v: (not _is_number(v), v if _is_number(v) else str(v)))
    numeric = all(_is_number(x) for x in xs)
    lines: dict[tuple, dict] = {}
    for r in done:
        for m in metrics:
            if r.get(m) is not None:
                label = tuple((k, r[k]) for k in others) + ((("", m),) if len(metrics) > 1 else ())
                lines.setdefault(label, {}).setdefault(r[key], []).append(r[m])
    metric = metrics[0] if len(metrics) == 1 else "accuracy"
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, by_x in sorted(lines.items(), key=lambda kv: str(kv[0])):
        present = [x for x in xs if x in by_x]
        pos = present if numeric else [xs.index(x) for x in present]
        stats = [mean_ci95(by_x[x]) for x in present]
        means = [s[0] for s in stats]
        err = [[0 if math.isnan(s[1]) else s[0] - s[1] for s in stats],
               [0 if math.isnan(s[2]) else s[2] - s[0] for s in stats]]
        name = ", ".join(f"{k.split('.')[-1]}={_short(v)}" if k else str(v).split("/")[0] for k, v in label) or metric
        ax.errorbar(pos, means, yerr=err, marker="o", capsize=3, label=name)
    if not numeric:
        ax.set_xticks(range(len(xs)), [_short(x) for x in xs])
    elif min(xs) > 0 and max(xs) >= 16 * min(xs):
        ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    n_seeds = max(len(v) for by_x in lines.values() for v in by_x.values())
    ax.set_title(f"{metric} vs {key}" + (f" (mean, 95% CI over {n_seeds} seeds)" if n_seeds > 1 else ""),
                 fontsize=9)
    if len(lines) > 1:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_all(rows: list[dict], keys: list[str], metric: str, out_dir: Path) -> list[Path]:
    """``<metric>_vs_<key>.png`` in ``out_dir`` for every swept key except ``seed``; with two or more
    classifier models (``<model>/accuracy`` columns), ``accuracy_by_model_vs_<key>.png`` too."""
    factors = [k for k in keys if k != "seed"]
    models = [c for c in dict.fromkeys(k for r in rows for k in r) if c.endswith("/accuracy") and c.count("/") == 1]
    paths = []
    for key in factors:
        others = [k for k in factors if k != key]
        for name, what in ((metric, metric), ("accuracy_by_model", models if len(models) > 1 else None)):
            path = out_dir / f"{_slug(name)}_vs_{_slug(key)}.png"
            if what and plot_metric_vs_key(rows, key, others, what, path):
                paths.append(path)
    return paths
