"""Condition ids of class-conditional language models: the class ``c``, and ``num_conditions - 1`` = "no label".

``label_conditions`` is the one rule by which a training batch's labels become condition ids; the two
language models (``DiffusionLM``, ``AutoregressiveLM``) draw ``drop`` (probability ``uncond_prob``)
from their own generators (documented in each) and then call it.
"""

from __future__ import annotations

import torch


def label_conditions(labels: torch.Tensor, no_label: int, drop) -> torch.Tensor:
    """Every row "no label" when ``drop`` (a batch for the unconditional ``p(x)``), else each row's
    label, with unlabelled rows (label < 0) as "no label"."""
    return torch.full_like(labels, no_label) if drop else labels.masked_fill(labels < 0, no_label)
