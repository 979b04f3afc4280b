"""Optimizer and LR schedule from config partials (``conf/optimizer/*``, ``conf/scheduler/*``, ``_partial_: true``).

Schedules are called ``scheduler_factory(optimizer, num_training_steps=N)``; a schedule that also
takes ``trainer`` receives the Lightning trainer (the time-budget schedule reads its ``Timer``).
"""

from __future__ import annotations

import functools
import inspect
import logging

from lightning.pytorch.callbacks import Timer
from torch.optim.lr_scheduler import LambdaLR
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from diffusion_lab.errors import ConfigError

log = logging.getLogger(__name__)


def configure_optimizers(module, optimizer_factory, scheduler_factory=None):
    """No weight decay on biases, LayerNorms and embeddings; the scheduler steps every optimizer step.

    ``scheduler_factory(optimizer, num_training_steps=...)`` (e.g. a partial of
    ``transformers.get_cosine_schedule_with_warmup``) gets the trainer's estimated total steps.

    ``optimizer.lr_scale`` (``{name substring: factor}``, absent by default): a parameter whose name
    contains a key trains at ``lr x factor`` (the first key that matches), e.g.
    ``+optimizer.lr_scale={condition_embedding:100}`` for new parameters beside pretrained ones. The
    schedule multiplies every group alike, so the ratio holds throughout.
    """
    optimizer_factory, lr_scale = split_lr_scale(optimizer_factory)
    buckets: dict[tuple[bool, float], list] = {(True, 1.0): [], (False, 1.0): []}
    matched = dict.fromkeys(lr_scale, 0)
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        decay = not (p.ndim < 2 or "embed" in name or "norm" in name.lower())
        key = next((k for k in lr_scale if k in name), None)
        if key is not None:
            matched[key] += p.numel()
        buckets.setdefault((decay, lr_scale.get(key, 1.0)), []).append(p)
    unmatched = [k for k, n in matched.items() if n == 0]
    if unmatched:
        sample = ", ".join(n for n, _ in list(module.named_parameters())[:3])
        raise ConfigError(f"optimizer.lr_scale key(s) {unmatched} match no parameter name (names look like {sample}); "
                          "use a substring of the parameters to scale, e.g. condition_embedding")
    base_lr = _default_lr(optimizer_factory) if lr_scale else None
    if lr_scale and base_lr is None:
        raise ConfigError("optimizer.lr_scale needs the optimizer's lr (set optimizer.lr)")
    groups = []
    for (decay, factor), params in buckets.items():
        group = {"params": params} if decay else {"params": params, "weight_decay": 0.0}
        if factor != 1.0:
            group["lr"] = base_lr * factor
        groups.append(group)
    for key, n in matched.items():
        log.info("optimizer.lr_scale: %d parameters matching %r train at lr x %g", n, key, lr_scale[key])
    optimizer = optimizer_factory(groups)
    if scheduler_factory is None:
        return optimizer
    total = module.trainer.estimated_stepping_batches
    extra = {"trainer": module.trainer} if takes_argument(scheduler_factory, "trainer") else {}
    if total == float("inf"):  # max_steps=-1, max_epochs=-1: only trainer.max_time ends the run
        if not extra:
            raise ValueError("the LR schedule needs a step count, but trainer.max_steps=-1 and trainer.max_epochs=-1; "
                             "set trainer.max_steps, or use scheduler=budget_triangle with trainer.max_time")
        total = 1
    total = int(total)
    scheduler = scheduler_factory(optimizer, num_training_steps=max(total, 1), **extra)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def split_lr_scale(optimizer_factory):
    """``(factory without lr_scale, {key: factor})`` from a Hydra ``_partial_`` optimizer config."""
    keywords = getattr(optimizer_factory, "keywords", None)
    if not keywords or "lr_scale" not in keywords:
        return optimizer_factory, {}
    keywords = dict(keywords)
    scale = keywords.pop("lr_scale") or {}
    factors = {str(k): float(v) for k, v in dict(scale).items()}
    return functools.partial(optimizer_factory.func, *optimizer_factory.args, **keywords), factors


def _default_lr(optimizer_factory) -> float | None:
    """The factory's ``lr`` (its keyword, else its signature's default); None when it has neither."""
    keywords = getattr(optimizer_factory, "keywords", {}) or {}
    if "lr" in keywords:
        return float(keywords["lr"])
    try:
        default = inspect.signature(getattr(optimizer_factory, "func", optimizer_factory)).parameters["lr"].default
    except (KeyError, TypeError, ValueError):
        return None
    return None if default is inspect.Parameter.empty else float(default)


def warmup_cosine(optimizer, num_training_steps: int, warmup_fraction: float = 0.05, min_lr_ratio: float = 0.0):
    """Linear warmup over ``warmup_fraction`` of the steps, then cosine decay (transformers' schedule).

    A fraction rather than a step count keeps tiny test runs and long runs on the same config.
    """

    warmup = int(round(warmup_fraction * num_training_steps))
    return get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=warmup, num_training_steps=num_training_steps, min_lr_rate=min_lr_ratio
    )


def takes_argument(fn, name: str) -> bool:
    """Whether ``fn`` (a partial, a class, a function) accepts a keyword ``name``; False if unknowable."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def triangle(progress: float, warmup_fraction: float, min_lr_ratio: float) -> float:
    """LR multiplier at ``progress`` in [0, 1]: linear 0 -> 1 over ``warmup_fraction``, then linear
    1 -> ``min_lr_ratio`` at ``progress = 1`` (and held there after)."""
    p = min(max(progress, 0.0), 1.0)
    if p < warmup_fraction:
        return p / warmup_fraction
    return 1.0 - (1.0 - min_lr_ratio) * (p - warmup_fraction) / max(1.0 - warmup_fraction, 1e-12)


def training_clock(trainer):
    """``(elapsed_s, budget_s)`` of Lightning's ``Timer`` (the one ``trainer.max_time`` installs), or None.

    Its elapsed time is part of the checkpoint, so a resumed run continues the schedule where it was."""

    timers = [c for c in getattr(trainer, "callbacks", []) if isinstance(c, Timer)]
    if not timers or timers[0].time_remaining() is None:
        return None
    timer = timers[0]
    return lambda: (timer.time_elapsed(), timer.time_elapsed() + timer.time_remaining())


def time_budget_triangle(optimizer, num_training_steps: int, trainer=None, warmup_fraction: float = 0.5,
                         min_lr_ratio: float = 0.0, clock=None):
    """Cramming's "budget triangle": warm up, then decay, over the WALL-CLOCK budget ``trainer.max_time``.

        lr(t) = lr_peak * triangle(elapsed(t) / budget)

    Progress is elapsed training time over the budget, so the schedule reaches its end when the budget
    does, whatever the throughput. Without ``trainer.max_time`` progress falls back to
    ``step / num_training_steps`` (the same triangle over steps). ``clock() -> (elapsed_s, budget_s)``
    replaces the trainer's Timer (tests, plain loops).
    """
    clock = clock or (training_clock(trainer) if trainer is not None else None)
    if clock is None:
        log.warning("scheduler=budget_triangle without trainer.max_time: the triangle runs over %d steps",
                    num_training_steps)

    def multiplier(step: int) -> float:
        if clock is None:
            return triangle(step / max(num_training_steps, 1), warmup_fraction, min_lr_ratio)
        elapsed, budget = clock()
        return triangle(elapsed / max(budget, 1e-9), warmup_fraction, min_lr_ratio)

    return LambdaLR(optimizer, multiplier)


def constant(optimizer, num_training_steps: int):
    """A constant learning rate (``scheduler=constant``)."""
    return LambdaLR(optimizer, lambda step: 1.0)
