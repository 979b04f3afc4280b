"""Issue 11's recipe options: ModernBERT, optimizer/schedule configs, EMA, the training window on
the masking rate, SUBS, and pretraining on an LM run."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback


def test_modernbert_tiny_trains_and_generates(tiny_run):
    results, train_dir = tiny_run(["model=modernbert_tiny"], "train")
    assert results["global_step"] > 0 and results["val/nll_per_token"] > 0
    res, out = tiny_run(["task=generate", f"run_dir={train_dir}", "task.length=10", "task.num_samples=2",
                         "sampler.steps=4"], "gen")
    tokens = torch.load(out / "trajectory.pt")["main"]["trajectory"]
    assert tokens.shape[-1] == 10 and len(res["main"]["texts"]) == 2


PROBE: dict = {}


class Probe(Callback):
    """Records one weight tensor as validation sees it and as training leaves it."""

    def on_validation_epoch_start(self, trainer, pl_module):
        PROBE["validated"] = _first_weight(pl_module).clone()

    def on_train_end(self, trainer, pl_module):
        PROBE["final"] = _first_weight(pl_module).clone()


def _first_weight(module):
    return next(p for n, p in module.named_parameters() if n.endswith("word_embeddings.weight")).detach()


def test_ema_weights_are_validated_checkpointed_and_kept(tiny_run):
    import importlib

    probes = importlib.import_module("tests.test_recipe").PROBE  # the module Hydra instantiates from
    probes.clear()
    probe = ["+callbacks.probe._target_=tests.test_recipe.Probe"]
    _, out = tiny_run(["callbacks=[none,ema]", "callbacks.ema.decay=0.5", "optimizer.lr=1e-2", *probe])
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    key = next(k for k in ckpt["state_dict"] if k.endswith("word_embeddings.weight"))
    ema, raw = ckpt["state_dict"][key], ckpt["current_model_state"][key]
    assert not torch.allclose(ema, raw)  # the average is not the last iterate
    assert torch.equal(probes["validated"], ema) and torch.equal(probes["final"], ema)
    from diffusion_lab.runs import load_run

    loaded = load_run(out, "last").module  # what generate / evaluate score
    assert torch.equal(_first_weight(loaded), ema)


def test_budget_triangle_follows_elapsed_time_not_steps():
    from diffusion_lab.optim import time_budget_triangle

    now = {"t": 0.0}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = time_budget_triangle(opt, num_training_steps=10, warmup_fraction=0.25, min_lr_ratio=0.1,
                                 clock=lambda: (now["t"], 100.0))
    seen = []
    for t in (10.0, 25.0, 62.5, 100.0, 130.0):
        now["t"] = t
        sched.step()
        seen.append(opt.param_groups[0]["lr"])
    assert seen == pytest.approx([0.4, 1.0, 0.55, 0.1, 0.1])


def test_cramming_optimizer_and_budget_schedule_run(tiny_run, monkeypatch):
    from diffusion_lab import optim
    from diffusion_lab.optim import training_clock

    clocks = []
    monkeypatch.setattr(optim, "training_clock", lambda trainer: clocks.append(training_clock(trainer)) or clocks[-1])

    cfg_overrides = ["optimizer=cramming", "scheduler=budget_triangle", "trainer.max_time=00:00:05:00"]
    results, _ = tiny_run(cfg_overrides)
    assert results["global_step"] > 0
    assert clocks and clocks[0] is not None and 0 <= clocks[0]()[0] < clocks[0]()[1] == pytest.approx(300)
    from tests.conftest import TINY, compose

    cfg = compose([*TINY, *cfg_overrides])
    assert tuple(cfg.optimizer.betas) == (0.9, 0.98) and cfg.optimizer.eps == 1e-12
    assert training_clock(object()) is None  # no Timer: the triangle falls back to steps
