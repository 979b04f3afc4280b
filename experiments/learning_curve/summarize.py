"""The learning-curve table and figure from the committed rows (``rows/*.json``, written by run.sh).

    python experiments/learning_curve/summarize.py            # -> table.md, curve_<dataset>.png (here)

Per (dataset, n per class, model): the mean test accuracy over the seeds present and, with two or more
seeds, its 95% Student-t interval; with one seed, the row's own 95% Wilson interval over its test items.
The figure is task=report's (``sweep_results.plots``): one line per model against n.

Then the paired test the issue asks for: per (dataset, n), each model against the Bayes readout
(``generative``), McNemar's discordant counts summed over the seeds whose rows carry them
(``mcnemar_discordant``; rows from before it was recorded are left out and counted) and the exact binomial
p-value on the sum. The seeds' test draws overlap (RT: 1,000 of 1,066 each), so the pooled pairs are not
independent across seeds; read p as a guide, with the per-seed differences beside it.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from diffusion_lab.metrics.classification import mcnemar_pvalue_from_counts, mean_ci95
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
                    **{f"{m}/ece_after_ts": r["models"][m].get("ece_after_ts") for m in MODELS if m in r["models"]},
                    "discordant": r.get("mcnemar_discordant")})
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


def paired(data: list[dict]) -> str:
    """Each model against the Bayes readout per (dataset, n), discordant counts pooled over seeds."""
    lines = ["| dataset | n per class | model | seeds pooled | only Bayes right | only model right | exact p | "
             "per-seed difference (model - Bayes) |", "|---|---|---|---|---|---|---|---|"]
    groups = defaultdict(list)
    for r in data:
        groups[(r["dataset"], r["n"])].append(r)
    for (dataset, n), members in sorted(groups.items()):
        for m in MODELS[1:]:
            have = [r for r in members if r["discordant"] and m in r["discordant"]]
            diffs = " ".join(f"{r[f'{m}/accuracy'] - r['generative/accuracy']:+.3f}" for r in members
                             if f"{m}/accuracy" in r and "generative/accuracy" in r)
            if not have:
                lines.append(f"| {dataset} | {n} | {m} | 0 of {len(members)} | - | - | - | {diffs} |")
                continue
            b = sum(r["discordant"][m]["only_reference"] for r in have)
            c = sum(r["discordant"][m]["only_model"] for r in have)
            p = mcnemar_pvalue_from_counts(b, c)
            seeds = " ".join(str(r["seed"]) for r in have)
            lines.append(f"| {dataset} | {n} | {m} | {seeds} ({len(have)} of {len(members)}) | {b} | {c} | {p:.2g} | "
                         f"{diffs} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=Path, default=HERE / "rows")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    data = rows(args.rows)
    (args.out / "table.md").write_text(table(data) + "\n\n" + paired(data) + "\n")
    for dataset in sorted({r["dataset"] for r in data}):
        mine = [r for r in data if r["dataset"] == dataset]
        plot_metric_vs_key(mine, "n", [], [f"{m}/accuracy" for m in MODELS if any(f"{m}/accuracy" in r for r in mine)],
                           args.out / f"curve_{dataset}.png")
    print(table(data) + "\n\n" + paired(data))


if __name__ == "__main__":
    main()
