"""What reading whole reviews buys: the trained run's models on its own test items, scored on the
first ``data.max_length`` tokens only (``truncate``), against the run's whole-review predictions
(``windows``, read from its ``predictions.csv``: the same items in the same order).

    python experiments/imdb_gen_clf/window_policy.py experiments/imdb_gen_clf/runs/conditional --n 500 \
        --out experiments/imdb_gen_clf/window_policy.json

``--n``: the first n of the run's test items (the split is shuffled with the run seed, so they are a
random subset of them).

This reads the test split of a finished run again: a reported ablation of the run's own models with
its own scoring settings; nothing is chosen from it.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch
from hydra.utils import instantiate

from diffusion_lab.classifiers.build import load_classifier_run
from diffusion_lab.classifiers.predict import predict
from diffusion_lab.metrics.classification import classification_metrics, mcnemar_pvalue


def windowed_correct(run_dir: Path, name: str, labels: torch.Tensor, label_names: list[str]) -> torch.Tensor:
    rows = list(csv.DictReader((run_dir / "predictions.csv").open(encoding="utf-8")))[: len(labels)]
    gold = [label_names[int(y)] for y in labels]
    if [r["label"] for r in rows] != gold:
        raise RuntimeError("the run's predictions.csv does not hold the same test items in the same order")
    return torch.tensor([r[f"{name}_pred"] == r["label"] for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--n", type=int, default=None, help="the first n test items (default: all)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    cfg, _, clf, baselines = load_classifier_run(args.run_dir)
    results = json.loads((args.run_dir / "results.json").read_text())
    cfg.datamodule.cache_dir = str(args.run_dir)  # the run's tokenizer (with its label tokens)
    cfg.datamodule.long_text = "truncate"
    dm = instantiate(cfg.datamodule)
    dm.setup()
    if args.n is not None:
        dm.datasets["test"] = dm.datasets["test"].select(range(min(args.n, len(dm.datasets["test"]))))
    score = {"num_draws": int(results.get("num_draws_chosen") or cfg.classifier.num_draws)}
    out = {"n": len(dm.datasets["test"]), "window": int(cfg.data.max_length), "score": score,
           "truncate_stats": dm.window_stats("test"), "windows_stats": results.get("windows", {}).get("test")}
    models = {"generative": clf, **{n: m for n, m in baselines.items() if n == "discriminative"}}
    for name, model in models.items():
        p = predict(model, dm.dataloader("test"), seed=cfg.task.eval_seed + 1, **(score if name == "generative" else {}))
        truncated = p.log_joint.argmax(1) == p.labels
        whole = windowed_correct(args.run_dir, name, p.labels, results["label_names"])
        out[name] = {"truncate": {**classification_metrics(p.probs, p.labels),
                                  "forward_passes_per_example": p.forward_passes_per_example},
                     "windows": {"accuracy": float(whole.float().mean()), "n": len(whole),
                                 "forward_passes_per_example": results["models"][name]["forward_passes_per_example"]},
                     "mcnemar_p_truncate_vs_windows": mcnemar_pvalue(truncated, whole)}
    print(json.dumps(out, indent=2, default=float))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
