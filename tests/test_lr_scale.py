"""optimizer.lr_scale: named parameters train at a multiple of the base learning rate, through the schedule."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from diffusion_lab.errors import ConfigError
from diffusion_lab.optim import configure_optimizers, warmup_cosine


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(4, 4)
        self.condition_embedding = nn.Embedding(3, 4)
        self.trainer = SimpleNamespace(estimated_stepping_batches=10)


def test_matching_parameters_get_the_scaled_rate_and_the_schedule_keeps_the_ratio():
    module = Tiny()
    factory = functools.partial(torch.optim.AdamW, lr=1e-3, lr_scale={"condition_embedding": 100})
    out = configure_optimizers(module, factory, functools.partial(warmup_cosine, warmup_fraction=0.2))
    opt, sched = out["optimizer"], out["lr_scheduler"]["scheduler"]
    scaled = [g for g in opt.param_groups if any(p is module.condition_embedding.weight for p in g["params"])]
    assert len(scaled) == 1 and len(scaled[0]["params"]) == 1 and scaled[0]["weight_decay"] == 0.0
    others = [g for g in opt.param_groups if g is not scaled[0] and g["params"]]
    assert {len(g["params"]) for g in others} == {1} and sum(len(g["params"]) for g in others) == 2
    for _ in range(4):
        opt.step()
        sched.step()
        assert scaled[0]["lr"] == pytest.approx(100 * others[0]["lr"]) and others[0]["lr"] > 0


def test_without_lr_scale_the_groups_are_the_two_decay_groups_at_the_base_rate():
    opt = configure_optimizers(Tiny(), functools.partial(torch.optim.AdamW, lr=1e-3))
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 1e-3]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]


def test_a_key_that_matches_nothing_is_a_config_error():
    factory = functools.partial(torch.optim.AdamW, lr=1e-3, lr_scale={"conditon": 10})
    with pytest.raises(ConfigError, match="conditon"):
        configure_optimizers(Tiny(), factory)
