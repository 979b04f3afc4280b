"""Smoothed unigram statistics of the training set, for ``Denoiser.init_unigram``.

    log p(w)     = log (n_w + alpha) / (N + alpha V)
    log p(w | c) = log (n_{w,c} + alpha) / (N_c + alpha V)

Counts are over real (non-padding) training tokens; special tokens get ``alpha`` only.
"""

from __future__ import annotations

import numpy as np
import torch


def unigram_log_probs(token_lists, labels, vocab_size: int, num_classes: int = 0, alpha: float = 0.5):
    """``(log_p [V], log_p_cond [C, V] or None)`` as float32 tensors."""
    counts = np.zeros((max(num_classes, 1), vocab_size), dtype=np.float64)
    for ids, y in zip(token_lists, labels, strict=True):
        row = int(y) if num_classes and 0 <= int(y) < num_classes else 0
        counts[row] += np.bincount(np.asarray(ids, dtype=np.int64), minlength=vocab_size)[:vocab_size]
    total = counts.sum(0)
    log_p = np.log(total + alpha) - np.log(total.sum() + alpha * vocab_size)
    log_p_cond = None
    if num_classes:
        log_p_cond = np.log(counts + alpha) - np.log(counts.sum(1, keepdims=True) + alpha * vocab_size)
    as_t = lambda a: None if a is None else torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return as_t(log_p), as_t(log_p_cond)
