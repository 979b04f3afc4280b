"""Training throughput of one model, batch and length through four paths, in one process and thread count:

(a) ``bare``: a bare transformers forward/backward/AdamW loop on ``backbone.model`` (masked tokens as labels);
(b) ``plain``: the project's plain PyTorch loop through ``DiffusionLM.training_loss`` (+ clip, AdamW);
(c) ``train_lm`` and ``train_classifier``: the tasks through Lightning (subprocesses, same overrides).

Tokens/s counts real (non-padding) tokens. MFU = model FLOPs/s over the matmul peak measured here with the
same threads: FLOPs/token ~ 6 N + 12 n_layer L H (N = non-embedding parameters + the LM head's H x V, the
attention term for the L x L scores; Kaplan et al.). ``--compile`` wraps (a) and (b) in ``torch.compile``.
Prints a markdown table and ``uptime`` (the load when measured): numbers from a shared machine are not results.

    python experiments/throughput/run.py --threads 2 --steps 60 +experiment=scratch_lm trainer.max_time=null
    python experiments/throughput/run.py --threads 1 --steps 3 --warmup 1 --lightning-steps 3 \
        data.max_length=16 tokenizer.vocab_size=300 model.backbone.hidden_size=32     # a seconds-long check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

import diffusion_lab.resolvers  # noqa: F401
from diffusion_lab.app import conf_dir
from diffusion_lab.builders import build_datamodule, build_lm
from diffusion_lab.metrics.flops import flops_per_token, matmul_peak


def batches(dm, steps):
    while True:
        for batch in dm.train_dataloader():
            yield batch
            steps -= 1
            if steps <= 0:
                return


def timed(step_fn, dm, steps, warmup):
    tokens, elapsed = 0, 0.0
    for i, batch in enumerate(batches(dm, steps + warmup)):
        start = time.perf_counter()
        step_fn(batch)
        if i >= warmup:
            elapsed += time.perf_counter() - start
            tokens += int(batch["attention_mask"].sum())
    return tokens / max(elapsed, 1e-9)


def bare_loop(lm, dm, args, clip):
    model = lm.backbone.model
    fwd = torch.compile(model) if args.compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)

    def step(batch):
        ids, att = batch["input_ids"], batch["attention_mask"]
        masked = (torch.rand(ids.shape, generator=gen) < 0.5) & att.bool()
        x = ids.masked_fill(masked, dm.tokenizer.mask_token_id)
        loss = fwd(input_ids=x, attention_mask=att, labels=ids.masked_fill(~masked, -100)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()

    return timed(step, dm, args.steps, args.warmup)


def plain_loop(lm, dm, args, clip):
    if args.compile:
        lm.backbone = torch.compile(lm.backbone)
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-3)

    def step(batch):
        loss = lm.training_loss(batch["input_ids"], batch["attention_mask"])["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), clip)
        opt.step()

    return timed(step, dm, args.steps, args.warmup)


def lightning_task(task, overrides, args, threads):
    """tokens/s of a task run: its own train_tokens_per_s, else steps x mean batch tokens / wall (incl. setup)."""
    out = Path(tempfile.mkdtemp(prefix=f"throughput_{task}_"))
    # a classifier trains on labelled text only: unsup reviews (label -1) are for language-model training
    # (and a small test subset: the run scores its test split after training, which is not what is timed)
    extra = (["task.baselines=[]", "task.val_draws=1", "classifier.num_draws=2", "data.lm_use_unsup=false",
              "eval.max_test=32", "data.max_val=32"] if task == "train_classifier" else [])
    cmd = [sys.executable, "-m", "diffusion_lab", f"task={task}", *overrides, *extra,
           f"trainer.max_steps={args.lightning_steps}", "trainer.max_time=null", "trainer.limit_val_batches=0",
           "logger=csv", "callbacks=none", "trainer.enable_progress_bar=false", f"hydra.run.dir={out}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}  # torch reads it at start-up
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return None, proc.stderr.strip().splitlines()[-1:]
    res = json.loads((out / "results.json").read_text())
    return res.get("train_tokens_per_s"), res


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--lightning-steps", type=int, default=65)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--compile", action="store_true", help="torch.compile the bare and plain loops")
    parser.add_argument("--skip-lightning", action="store_true")
    args, overrides = parser.parse_known_args()
    torch.set_num_threads(args.threads)
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "output_dir=/tmp/throughput"])
    torch.manual_seed(cfg.seed)
    dm = build_datamodule(cfg, cache_dir=None)
    dm.setup()
    clip = cfg.trainer.gradient_clip_val or 1e9
    peak = matmul_peak()
    rows = {}
    lm = build_lm(cfg, dm.tokenizer)
    per_token = flops_per_token(lm.backbone.model, cfg.data.max_length)
    rows["(a) bare transformers loop"] = bare_loop(lm, dm, args, clip)
    rows["(b) plain loop, DiffusionLM.training_loss"] = plain_loop(build_lm(cfg, dm.tokenizer), dm, args, clip)
    if not args.skip_lightning:
        for task in ("train_lm", "train_classifier"):
            rows[f"(c) task={task} (Lightning)"] = lightning_task(task, overrides, args, args.threads)[0]
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    bare = rows["(a) bare transformers loop"]
    print(f"\nmodel {cfg.model.name}, batch {cfg.data.batch_size} x {cfg.data.max_length}, threads {args.threads}, "
          f"compile {args.compile}, matmul peak {peak / 1e9:.1f} GFLOP/s, {per_token / 1e6:.2f} MFLOP/token\n"
          f"uptime: {uptime}\n")
    print("| path | tokens/s | x bare | MFU |\n|---|---:|---:|---:|")
    for name, tps in rows.items():
        if tps is None:
            print(f"| {name} | n/a | | |")
            continue
        print(f"| {name} | {tps:,.0f} | {tps / bare:.2f} | {100 * tps * per_token / peak:.1f}% |")


if __name__ == "__main__":
    main()
