"""Issue 11's recipe options: ModernBERT, optimizer/schedule configs, EMA, the training window on
the masking rate, SUBS, and pretraining on an LM run."""

from __future__ import annotations

import torch


def test_modernbert_tiny_trains_and_generates(tiny_run):
    results, train_dir = tiny_run(["model=modernbert_tiny"], "train")
    assert results["global_step"] > 0 and results["val/nll_per_token"] > 0
    res, out = tiny_run(["task=generate", f"run_dir={train_dir}", "task.length=10", "task.num_samples=2",
                         "sampler.steps=4"], "gen")
    tokens = torch.load(out / "trajectory.pt")["main"]["trajectory"]
    assert tokens.shape[-1] == 10 and len(res["main"]["texts"]) == 2
