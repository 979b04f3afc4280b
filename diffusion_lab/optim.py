"""Optimizer and LR schedule from config partials (``_partial_: true`` in ``conf/config.yaml``)."""

from __future__ import annotations


def configure_optimizers(module, optimizer_factory, scheduler_factory=None):
    """No weight decay on biases, LayerNorms and embeddings; the scheduler steps every optimizer step.

    ``scheduler_factory(optimizer, num_training_steps=...)`` (e.g. a partial of
    ``transformers.get_cosine_schedule_with_warmup``) gets the trainer's estimated total steps.
    """
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "embed" in name or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = optimizer_factory(groups)
    if scheduler_factory is None:
        return optimizer
    total = int(module.trainer.estimated_stepping_batches)
    scheduler = scheduler_factory(optimizer, num_training_steps=max(total, 1))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def warmup_cosine(optimizer, num_training_steps: int, warmup_fraction: float = 0.05, min_lr_ratio: float = 0.0):
    """Linear warmup over ``warmup_fraction`` of the steps, then cosine decay (transformers' schedule).

    A fraction rather than a step count keeps tiny test runs and long runs on the same config.
    """
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    warmup = int(round(warmup_fraction * num_training_steps))
    return get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=warmup, num_training_steps=num_training_steps, min_lr_rate=min_lr_ratio
    )
