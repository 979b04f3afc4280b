"""GPT-2 (autoregressive, exact) vs masked diffusion (RoBERTa, GPT-2, GPT-2 + shift) on IMDB.

Every row: the same data (IMDB train subset, seeded), the same tokenizer (the GPT-2 BPE from the
shared data folder, ``tokenizer=gpt2``), the same size (4 layers x 256, 4 heads, MLP 1024), the
same token window, batch, optimizer, schedule and number of optimizer steps; validation on the
SAME held-out items (``data.max_val`` stratified from the validation split carved out of train).

    python experiments/gpt2_vs_roberta/run.py            # the committed numbers
    python experiments/gpt2_vs_roberta/run.py --steps 20 --max-val 32 --out /tmp/probe   # a smoke run

Each row is one ``python -m diffusion_lab`` command (printed, and saved in ``results.json``); its
run directory holds the full config, ``metrics.csv`` and ``results.json``. Per-token numbers
normalise by the same real tokens for every row: AR perplexity is exact
(``exp(sum -log p(x_i | x_<i) / n)``), the diffusion ones are upper bounds (``exp`` of the
negative ELBO per token, K = ``--eval-draws`` stratified draws per item).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

ROWS = {  # name -> (model label, objective, shift, overrides)
    "ar_gpt2": ("gpt2", "autoregressive", False, ["model=gpt2_tiny", "model.objective=autoregressive",
                                                   "sampler=autoregressive"]),
    "diffusion_roberta": ("roberta", "diffusion", False, ["model=roberta_small"]),
    "diffusion_gpt2": ("gpt2", "diffusion", False, ["model=gpt2_tiny", "model.backbone.shift=false"]),
    "diffusion_gpt2_shift": ("gpt2", "diffusion", True, ["model=gpt2_tiny", "model.backbone.shift=true"]),
}
SIZE = {  # one size for both families (gpt2_tiny is 4 x 256 already; roberta_small is 4 x 256, MLP 1024)
    "gpt2": ["model.backbone.n_embd=256", "model.backbone.n_layer=4", "model.backbone.n_head=4"],
    "roberta": ["model.backbone.hidden_size=256", "model.backbone.num_hidden_layers=4",
                "model.backbone.num_attention_heads=4", "model.backbone.intermediate_size=1024"],
}


def common(args) -> list[str]:
    return [
        "dataset=imdb", f"dataset.max_train={args.max_train}", "tokenizer=gpt2", "masking=loglinear",
        # every row starts its output biases at the training unigram log-frequencies (Denoiser.init_unigram)
        f"++model.unigram_init={str(args.unigram_init).lower()}",
        f"data.max_length={args.seq_len}", f"data.batch_size={args.batch_size}", f"data.max_val={args.max_val}",
        "data.max_test=16",  # train_lm never reads test; a small subset saves tokenizing 25k reviews per row
        f"trainer.max_steps={args.steps}", "trainer.max_epochs=-1",
        # validate once, after the last step, on the same items for every row
        f"trainer.val_check_interval={args.steps}", "trainer.check_val_every_n_epoch=null",
        "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false", "+trainer.enable_checkpointing=false", "callbacks=none",
        "~callbacks.model_checkpoint",  # no 100s-of-MB checkpoints: only the numbers are kept
        f"optimizer.lr={args.lr}", f"task.eval_draws={args.eval_draws}", "task.num_samples=2",
        "task.sample_length=32", f"seed={args.seed}", "logger=csv", "print_config=false",
    ]


def command(name: str, args) -> list[str]:
    model, _, _, overrides = ROWS[name]
    run_dir = Path(args.out) / "runs" / name
    return [sys.executable, "-m", "diffusion_lab", *overrides, *SIZE[model], *common(args), f"hydra.run.dir={run_dir}"]


def run_row(name: str, args) -> dict:
    cmd = command(name, args)
    print("$", " ".join(cmd[1:]), flush=True)
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    start, load_before = time.time(), os.getloadavg()[0]
    subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL if args.quiet else None)
    res = json.loads((Path(args.out) / "runs" / name / "results.json").read_text())
    model, objective, shift, _ = ROWS[name]
    return {
        "name": name, "model": model, "objective": objective, "shift": shift,
        "ppl": res["val/ppl_bound"], "ppl_is_bound": objective == "diffusion",
        "nll_per_token": res["val/nll_per_token"], "bits_per_token": res["val/bits_per_token"],
        "tokens_per_s": res["train_tokens_per_s"], "tokens_per_s_median": median_tokens_per_s(name, args),
        "load_avg_1min": [load_before, os.getloadavg()[0]], "steps": res["global_step"], "seq_len": args.seq_len,
        "batch_size": args.batch_size, "num_parameters": res["num_parameters"], "wall_s": time.time() - start,
        "samples": res.get("samples", []), "command": "python " + " ".join(cmd[1:]).replace(str(args.out), "$OUT"),
    }


def unigram_reference(args) -> dict:
    """NLL per token on the same validation items of the smoothed training unigram
    ``p(w) = (n_w + 1/2) / (N + V/2)``: where every row starts (``model.unigram_init``), and the
    plateau small models sit on. Exact, no training."""
    import numpy as np
    from hydra import compose, initialize_config_dir

    import diffusion_lab.resolvers  # noqa: F401
    from diffusion_lab.builders import build_datamodule

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*common(args), *ROWS["ar_gpt2"][3], "output_dir=/tmp/unused"])
    dm = build_datamodule(cfg, cache_dir=None)
    dm.setup()
    vocab = len(dm.tokenizer)
    counts = sum(np.bincount(ids, minlength=vocab) for ids in dm.datasets["train"]["input_ids"])
    log_p = np.log(counts + 0.5) - np.log(counts.sum() + 0.5 * vocab)
    val = np.concatenate(dm.datasets["validation"]["input_ids"])
    nll = float(-log_p[val].mean())
    return {"model": "unigram", "objective": "unigram (train counts)", "nll_per_token": nll,
            "ppl": float(np.exp(nll)), "ppl_is_bound": False, "n_tokens": int(val.size)}


def median_tokens_per_s(name: str, args) -> float:
    """Median of the per-step throughput in ``metrics.csv``: robust to other jobs on a shared machine."""
    rows = csv.DictReader((Path(args.out) / "runs" / name / "metrics.csv").open())
    return statistics.median(float(r["train/tokens_per_s"]) for r in rows if r.get("train/tokens_per_s"))


def markdown(rows: list[dict], args) -> str:
    head = ("| model | objective | shift | val ppl | exact or bound | nats/token | train tokens/s (mean / median step) | "
            "steps | seq_len | params |\n|---|---|---|---|---|---|---|---|---|---|\n")
    lines = [f"| {r['model']} | {r['objective']} | {str(r['shift']).lower()} | {r['ppl']:.1f} | "
             f"{'bound (upper)' if r['ppl_is_bound'] else 'exact'} | {r['nll_per_token']:.3f} | "
             f"{r['tokens_per_s']:.0f} / {r['tokens_per_s_median']:.0f} | {r['steps']} | {r['seq_len']} | {r['num_parameters'] / 1e6:.1f} M |"
             for r in rows]
    return head + "\n".join(lines) + (f"\n\nn = {args.max_val} validation reviews, seed {args.seed}, "
                                      f"K = {args.eval_draws} draws for the diffusion bounds.\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--max-train", type=int, default=2000)
    p.add_argument("--max-val", type=int, default=100)
    p.add_argument("--eval-draws", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unigram-init", type=lambda v: v.lower() in ("1", "true", "yes"), default=True)
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--out", default=str(REPO / "outputs" / "gpt2_vs_roberta"))
    p.add_argument("--results", default=str(HERE), help="where results.json / results.md go")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--unigram-only", action="store_true", help="only add the unigram reference to results.json")
    args = p.parse_args()
    if args.unigram_only:  # add the reference to an existing results.json
        path = Path(args.results) / "results.json"
        results = json.loads(path.read_text())
        results["unigram_reference"] = unigram_reference(args)
        path.write_text(json.dumps(results, indent=2))
        print(results["unigram_reference"])
        return
    rows = [run_row(name, args) for name in args.rows]
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "results", "quiet")}
    settings["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                                            text=True).stdout.strip()
    target = Path(args.results)
    target.mkdir(parents=True, exist_ok=True)
    results = {"settings": settings, "rows": rows, "unigram_reference": unigram_reference(args)}
    (target / "results.json").write_text(json.dumps(results, indent=2))
    (target / "results.md").write_text(markdown(rows, args))
    print(markdown(rows, args))


if __name__ == "__main__":
    main()
