"""Documents longer than the model's window (``data.long_text``).

``truncate``: only the first ``max_length`` tokens of a document exist for the models.

``windows``: a document of ``n`` tokens is cut into consecutive windows of at most ``window`` tokens
that together score every token exactly once. The first window scores its tokens from 0; each later
window starts ``overlap`` tokens before its first scored token (those are visible context, not scored)
and the last window is aligned to the end of the document (full context, still scored once):

    log p(x | y) = sum_w log p(x_{S_w} | x_{C_w}, y)        S_w scored, C_w context of window w

This is the likelihood of a windowed model (each window conditions only on its own context), a
valid basis for Bayes' rule: every number computed from it says so by recording the policy.
Training reads one random window of each long document per epoch (``RandomWindows``).
"""

from __future__ import annotations

import numpy as np
import torch

POLICIES = ("truncate", "windows")


def document_windows(n: int, window: int, overlap: int = 0) -> list[tuple[int, int, int]]:
    """``[(start, end, score_from)]`` over ``range(n)``; ``score_from`` is relative to ``start``."""
    if not 0 <= overlap < window:
        raise ValueError(f"data.window_overlap={overlap}: must lie in [0, data.max_length={window})")
    if n <= window:
        return [(0, n, 0)]
    out, scored_end = [(0, window, 0)], window
    while scored_end < n:
        start = min(scored_end - overlap, n - window)
        end = min(start + window, n)
        out.append((start, end, scored_end - start))
        scored_end = end
    return out


def window_rows(docs_ids: list[list[int]], labels: list[int], window: int, overlap: int) -> list[dict]:
    """One row per window: ``input_ids``, ``label`` (the document's), ``doc``, ``score_from``."""
    rows = []
    for doc, (ids, label) in enumerate(zip(docs_ids, labels, strict=True)):
        for start, end, score_from in document_windows(len(ids), window, overlap):
            rows.append({"input_ids": ids[start:end], "label": int(label), "doc": doc, "score_from": score_from})
    return rows


def document_batches(docs: list[int], max_rows: int) -> list[list[int]]:
    """Row indices grouped so a batch holds whole documents (all their windows), at most
    ``max_rows`` rows unless one document alone has more."""
    batches, current, current_doc = [], [], None
    for i, doc in enumerate(docs):
        if doc != current_doc and len(current) and len(current) + _doc_len(docs, i) > max_rows:
            batches.append(current)
            current = []
        current.append(i)
        current_doc = doc
    if current:
        batches.append(current)
    return batches


def _doc_len(docs: list[int], i: int) -> int:
    j = i
    while j < len(docs) and docs[j] == docs[i]:
        j += 1
    return j - i


def window_stats(lengths: list[int], policy: str, window: int, overlap: int) -> dict:
    """What ``results.json`` records about the window policy for one split."""
    longer = sum(n > window for n in lengths)
    windows = sum(len(document_windows(n, window, overlap)) for n in lengths) if policy == "windows" else len(lengths)
    return {"long_text": policy, "window": window, "overlap": overlap, "stride": window - overlap,
            "documents": len(lengths), "longer_than_window": longer, "windows": windows,
            "tokens_seen_fraction": float(sum(min(n, window) for n in lengths) / max(sum(lengths), 1))
            if policy == "truncate" else 1.0}


class RandomWindows(torch.utils.data.Dataset):
    """Training rows: a document longer than ``window`` gives one random window, drawn from
    ``(seed, epoch, row)`` so the order is reproducible and a resumed run sees the same windows.
    ``set_epoch`` is called by the length-bucketed training sampler; without it (DDP, or
    ``bucket_by_length=false``) every epoch reuses the epoch-0 windows."""

    def __init__(self, ds, window: int, seed: int = 0):
        self.ds, self.window, self.seed, self.epoch = ds, window, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        row = dict(self.ds[int(i)])
        ids = row["input_ids"]
        if len(ids) > self.window:
            start = int(np.random.default_rng([self.seed, self.epoch, int(i)]).integers(0, len(ids) - self.window + 1))
            row["input_ids"] = ids[start:start + self.window]
        return row
