"""Accuracy against the number of forward passes, for both estimators, on the SAME model and items.

    python experiments/imdb_gen_clf/accuracy_vs_k.py experiments/imdb_gen_clf/runs/conditional \
        --n 300 --ks 1 2 4 8 16 --out experiments/imdb_gen_clf/accuracy_vs_k.md

``elbo_crn``: the stratified bound with K draws shared by all classes (K x C passes per item).
``seed_mean_loss``: the original recipe with K independent 15% masks per class (K x C passes;
the original used K = 5). Items: a stratified random subset of the run's test split (seed 0).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from hydra.utils import instantiate

from diffusion_lab.classifiers.build import load_classifier_run
from diffusion_lab.classifiers.predict import predict
from diffusion_lab.metrics.classification import classification_metrics


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    cfg, tokenizer, clf, _ = load_classifier_run(args.run_dir)
    cfg.datamodule.cache_dir = None
    cfg.datamodule.max_test = args.n
    cfg.datamodule.tokenizer = {"_target_": "diffusion_lab.data.tokenizer.PretrainedTokenizer",
                                "name_or_path": str(Path(args.run_dir) / "tokenizer")}
    dm = instantiate(cfg.datamodule)
    dm.setup()
    loader = dm.dataloader("test")
    rows = []
    for k in args.ks:
        for estimator in ("elbo_crn", "seed_mean_loss"):
            extra = {"seed_draws": k} if estimator == "seed_mean_loss" else {}
            p = predict(clf, loader, seed=args.seed, estimator=estimator, num_draws=k, adaptive=False, **extra)
            m = classification_metrics(p.probs, p.labels)
            rows.append({"estimator": estimator, "K": k, "accuracy": m["accuracy"], "ci95": m["accuracy_ci95"],
                         "nll": m["nll"], "passes_per_example": p.forward_passes_per_example, "n": m["n"]})
            print(json.dumps(rows[-1]), flush=True)
    lines = ["| estimator | K | forward passes / example | accuracy [95% CI] | NLL |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['estimator']} | {r['K']} | {r['passes_per_example']:.0f} | {r['accuracy']:.3f} "
                     f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] | {r['nll']:.3f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(f"n = {rows[0]['n']} test items, seed {args.seed}, run {args.run_dir}\n\n{table}\n")
        Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
