"""Training tokens/s of the same model and batches in a plain PyTorch loop (no Lightning).

Compares with the framework's ``train/tokens_per_s`` to measure Lightning's overhead:

    python experiments/imdb_lm/plain_loop.py +experiment=imdb_lm trainer=cpu model=roberta_tiny \
        data.lm_use_unsup=false data.batch_size=32 dataset.use_unsup=false --steps 60

The timed region matches ``DiffusionLM.on_train_batch_start/end``: masking, forward, loss,
backward, clip, optimizer step; data loading excluded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import diffusion_lab.resolvers  # noqa: F401
from diffusion_lab.app import conf_dir
from diffusion_lab.builders import build_backbone, build_datamodule


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    args, overrides = parser.parse_known_args()
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "output_dir=/tmp/plain_loop"])
    torch.manual_seed(cfg.seed)
    dm = build_datamodule(cfg, cache_dir=None)
    dm.setup()
    backbone = build_backbone(cfg, dm.tokenizer)
    masking = instantiate(cfg.masking)
    opt = torch.optim.AdamW(backbone.parameters(), lr=cfg.optimizer.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    tokens, elapsed, step = 0, 0.0, 0
    while step < args.steps + args.warmup:
        for batch in dm.train_dataloader():
            start = time.perf_counter()
            ids, att = batch["input_ids"], batch["attention_mask"]
            t = masking.sample_t(ids.shape[0], gen)
            x_t, masked = masking.q_xt(ids, att, masking.rate(t), dm.mask_token_id, gen)
            loss = masking.loss(backbone(x_t, att), ids, att, masked, t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(backbone.parameters(), cfg.trainer.gradient_clip_val)
            opt.step()
            if step >= args.warmup:
                elapsed += time.perf_counter() - start
                tokens += int(att.sum())
            step += 1
            if step >= args.steps + args.warmup:
                break
    result = {"plain_tokens_per_s": tokens / elapsed, "steps": args.steps, "overrides": overrides,
              "torch_threads": torch.get_num_threads()}
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
