"""Generative classifiers on IMDB: autoregressive GPT-2 (exact log p(x | y)) vs diffusion GPT-2 (bound).

Both are ``task=train_classifier classifier=conditional`` on the SAME backbone (GPT-2, 4 x 256), data,
tokenizer, window, batch, optimizer and steps as the language-model rows of ``run.py``; only
``model.objective`` differs. Bayes rule on each: ``argmax_y log p(x | y) + log p(y)``; the AR model's
``log p(x | y)`` is exact (one forward pass per class), the diffusion one the stratified bound with
``--num-draws`` shared draws per class. Both score the same test items (``eval.max_test`` stratified
with the same seed), checked here text by text, and a paired exact McNemar test compares them.

    python experiments/gpt2_vs_roberta/classify.py     # adds "classifier_rows" to results.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from diffusion_lab.metrics.classification import mcnemar_pvalue

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OBJECTIVES = ("autoregressive", "diffusion")


def command(objective: str, args) -> list[str]:
    run_dir = Path(args.out) / "runs" / f"clf_{objective}"
    return [
        sys.executable, "-m", "diffusion_lab", "task=train_classifier", "classifier=conditional",
        "model=gpt2_tiny", f"model.objective={objective}", "model.backbone.n_embd=256", "model.backbone.n_layer=4",
        "model.backbone.n_head=4", "++model.unigram_init=true", "dataset=imdb", f"dataset.max_train={args.max_train}",
        "tokenizer=gpt2", "masking=loglinear", f"data.max_length={args.seq_len}", f"data.batch_size={args.batch_size}",
        f"data.max_val={args.max_val}", f"eval.max_test={args.max_test}", f"classifier.num_draws={args.num_draws}",
        "task.val_draws=2", "task.baselines=[tfidf_lr]", f"trainer.max_steps={args.steps}", "trainer.max_epochs=-1",
        f"trainer.val_check_interval={args.steps}", "trainer.check_val_every_n_epoch=null",
        "trainer.enable_progress_bar=false", "callbacks=none", "~callbacks.model_checkpoint",
        "+trainer.enable_checkpointing=false", f"optimizer.lr={args.lr}", f"seed={args.seed}",
        "logger=csv", "print_config=false", f"hydra.run.dir={run_dir}",
    ]


def run(objective: str, args) -> tuple[dict, list[dict]]:
    cmd = command(objective, args)
    print("$", " ".join(cmd[1:]), flush=True)
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.time()
    subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL if args.quiet else None)
    run_dir = Path(args.out) / "runs" / f"clf_{objective}"
    res = json.loads((run_dir / "results.json").read_text())
    preds = list(csv.DictReader((run_dir / "predictions.csv").open(encoding="utf-8")))
    gen = res["models"]["generative"]
    row = {
        "model": "gpt2", "objective": objective, "classifier": "conditional", "accuracy": gen["accuracy"],
        "accuracy_ci95": gen["accuracy_ci95"], "nll": gen["nll"], "ece": gen["ece"],
        "examples_per_s": gen["examples_per_s"], "forward_passes_per_example": gen["forward_passes_per_example"],
        "log_lik_is_bound": objective == "diffusion", "n_test": res["n_test"], "steps": res["optimizer_steps"],
        "seq_len": args.seq_len, "tfidf_lr_accuracy": res["models"].get("tfidf_lr", {}).get("accuracy"),
        "wall_s": time.time() - start,
        "command": "python " + " ".join(cmd[1:]).replace(str(args.out), "$OUT"),
    }
    return row, preds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--max-train", type=int, default=2000)
    p.add_argument("--max-val", type=int, default=100)
    p.add_argument("--max-test", type=int, default=200)
    p.add_argument("--num-draws", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(REPO / "outputs" / "gpt2_vs_roberta"))
    p.add_argument("--results", default=str(HERE / "results.json"))
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    rows, preds = zip(*(run(o, args) for o in OBJECTIVES), strict=True)
    if [r["text"] for r in preds[0]] != [r["text"] for r in preds[1]]:
        raise RuntimeError("the two classifiers were scored on different test items")
    correct = [torch.tensor([r["generative_pred"] == r["label"] for r in rows_]) for rows_ in preds]
    p_value = mcnemar_pvalue(correct[0], correct[1])
    for row in rows:
        row["mcnemar_p_ar_vs_diffusion"] = p_value
    path = Path(args.results)
    results = json.loads(path.read_text()) if path.exists() else {"rows": []}
    results["classifier_settings"] = {k: v for k, v in vars(args).items() if k not in ("out", "results", "quiet")}
    results["classifier_rows"] = list(rows)
    path.write_text(json.dumps(results, indent=2))
    for r in rows:
        lo, hi = r["accuracy_ci95"]
        print(f"{r['objective']:>14}: accuracy {r['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]  nll {r['nll']:.3f}  "
              f"n={r['n_test']}  {r['examples_per_s']:.1f} ex/s")
    print(f"McNemar (paired, exact) p = {p_value:.3g}")


if __name__ == "__main__":
    main()
