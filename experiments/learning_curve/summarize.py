"""The learning-curve table and figure from the committed rows (``rows/*.json``, written by run.sh).

    python experiments/learning_curve/summarize.py            # -> table.md, curve_<dataset>.png (here)

Per (dataset, n per class, model): the mean test accuracy over the seeds present and, with two or more
seeds, its 95% Student-t interval; with one seed, the row's own 95% Wilson interval over its test items.
The figure is task=report's (``sweep_results.plots``): one line per model against n.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from diffusion_lab.metrics.classification import mean_ci95
from diffusion_lab.sweep_results.plots import plot_metric_vs_key

HERE = Path(__file__).resolve().parent
MODELS = ("generative", "generative_infill", "generative_hybrid", "discriminative", "tfidf_lr")


def rows(folder: Path) -> list[dict]:
    out = []
    for path in sorted(folder.glob("*.json")):
        r = json.loads(path.read_text())
        out.append({"dataset": path.stem.rsplit("_n", 1)[0],  # <dataset>[_<tag>]_n<n>_s<seed>
                    "n": r["dataset_stats"]["max_train_per_class"], "seed": r["seed"], "steps": r["optimizer_steps"],
                    "n_test": r["n_test"], "status": r.get("status", "finished"),
                    **{f"{m}/accuracy": r["models"][m]["accuracy"] for m in MODELS if m in r["models"]},
                    **{f"{m}/ci": r["models"][m]["accuracy_ci95"] for m in MODELS if m in r["models"]},
                    **{f"{m}/ece_after_ts": r["models"][m].get("ece_after_ts") for m in MODELS if m in r["models"]}})
    return out


def table(data: list[dict]) -> str:
    lines = ["| dataset | n per class | seeds | steps | n test | " + " | ".join(MODELS) + " |",
             "|---|---|---|---|---|" + "---|" * len(MODELS)]
    groups = defaultdict(list)
    for r in data:
        groups[(r["dataset"], r["n"])].append(r)
    for (dataset, n), members in sorted(groups.items()):
        cells = []
        for m in MODELS:
            values = [r[f"{m}/accuracy"] for r in members if f"{m}/accuracy" in r]
            if not values:
                cells.append("-")
            elif len(values) == 1:
                lo, hi = next(r[f"{m}/ci"] for r in members if f"{m}/accuracy" in r)
                cells.append(f"{values[0]:.3f} [{lo:.3f}, {hi:.3f}]")
            else:
                mean, lo, hi = mean_ci95(values)
                cells.append(f"{mean:.3f} [{lo:.3f}, {hi:.3f}]")
        seeds = " ".join(str(r["seed"]) for r in members)
        steps = "/".join(sorted({str(r["steps"]) for r in members}))
        lines.append(f"| {dataset} | {n} | {seeds} | {steps} | {members[0]['n_test']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=Path, default=HERE / "rows")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    data = rows(args.rows)
    (args.out / "table.md").write_text(table(data) + "\n")
    for dataset in sorted({r["dataset"] for r in data}):
        mine = [r for r in data if r["dataset"] == dataset]
        plot_metric_vs_key(mine, "n", [], [f"{m}/accuracy" for m in MODELS if any(f"{m}/accuracy" in r for r in mine)],
                           args.out / f"curve_{dataset}.png")
    print(table(data))


if __name__ == "__main__":
    main()
