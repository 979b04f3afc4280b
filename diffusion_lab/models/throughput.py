"""Training throughput shared by every language model: real (non-padding) tokens per second of
forward + backward + optimizer step, data loading excluded (``train/tokens_per_s``).

Kept rather than Lightning's ``ThroughputMonitor`` (issue 11 asked to check): that callback times the
interval between consecutive batch ends (data loading, logging and every hook included), reports only a
sliding window to the loggers (no mean since fit start, which ``results.json``'s ``train_tokens_per_s``
is), runs on rank zero only, and exists only when listed in ``callbacks`` (the tests' ``callbacks=none``
would lose the number). It can be added beside this for its window metrics; this stays the reported one.
"""

from __future__ import annotations

import time


class TokenThroughputMixin:
    """Mix into a LightningModule before ``L.LightningModule``; uses ``batch["attention_mask"]``."""

    _train_time: float = 0.0
    _train_tokens: int = 0
    _batch_start: float | None = None

    def on_train_batch_start(self, batch, batch_idx):
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self._batch_start is None:
            return
        dt = time.perf_counter() - self._batch_start
        tokens = int(batch["attention_mask"].sum())
        self._train_time += dt
        self._train_tokens += tokens
        self.log("train/tokens_per_s", tokens / max(dt, 1e-9), batch_size=1)

    def train_tokens_per_s(self) -> float | None:
        """Mean training throughput of this process since the start (or resume) of fit."""
        return self._train_tokens / self._train_time if self._train_time > 0 else None
