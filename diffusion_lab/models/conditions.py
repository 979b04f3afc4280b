"""Condition ids of class-conditional language models, and label dropout: the one convention.

- Ids: class ``c`` is condition ``c``; ``num_conditions = num_classes + 1`` and the LAST id,
  ``num_conditions - 1``, means "no label" (``no_label_condition``). The conditional classifier's
  ``<nolabel>`` token (``classifiers.label_tokens``) is that id's counterpart in the input.
- Label dropout (``uncond_prob``, in ``task=train_lm`` and ``classifier.*``): PER BATCH, not per row:
  one ``torch.rand(())`` from the caller's generator, and with probability ``uncond_prob`` every row
  of the batch trains "no label" (``draw_no_label``), so the same model also gives ``p(x)``.
- ``label_conditions`` turns a batch's labels into condition ids: all "no label" when dropped, else
  each row's label, "no label" for unlabelled rows (label < 0) and for ``hidden`` rows (the
  conditional classifier hides the label wherever its label token is masked).

Each module keeps its own generator for the draw, so its random stream (and every resumed or pinned
run) is what it was: ``DiffusionLM`` its masking generator (saved in checkpoints), ``AutoregressiveLM``
a generator seeded by ``(seed, global_step, batch_idx)`` (stateless), ``GenerativeClassifier`` its own
(saved in checkpoints; it draws even without a condition embedding, for the ``<nolabel>`` token).
"""

from __future__ import annotations

import torch


def num_conditions(num_classes: int) -> int:
    """Condition ids of a model over ``num_classes`` classes: the classes and "no label"."""
    return num_classes + 1


def no_label_condition(backbone) -> int | None:
    """The "no label" condition id of ``backbone`` (its last), or ``None`` when it takes no condition."""
    if getattr(backbone, "condition_embedding", None) is None:
        return None
    return backbone.num_conditions - 1


def draw_no_label(generator: torch.Generator | None, uncond_prob: float) -> bool:
    """Label dropout for one batch: True (train the whole batch "no label") with probability
    ``uncond_prob``; consumes exactly one ``torch.rand(())`` from ``generator``."""
    return bool(torch.rand((), generator=generator) < uncond_prob)


def label_conditions(labels: torch.Tensor, no_label: int, drop, hidden: torch.Tensor | None = None) -> torch.Tensor:
    """Every row "no label" when ``drop`` (a batch for the unconditional ``p(x)``), else each row's
    label, with unlabelled rows (label < 0) and ``hidden`` rows (bool ``[B]``) as "no label"."""
    if drop:
        return torch.full_like(labels, no_label)
    unknown = labels < 0 if hidden is None else (labels < 0) | hidden.to(labels.device)
    return labels.masked_fill(unknown, no_label)
