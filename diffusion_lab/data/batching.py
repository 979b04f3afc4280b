"""Batch assembly: dynamic padding (``PadCollator``) and length-bucketed batches (``BucketBatchSampler``).

Padding to the longest row of each batch instead of ``max_length`` and grouping rows of similar
length into the same batch both cut wasted compute on pad tokens (IMDB lengths vary 10x).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from diffusion_lab.data.splits import NO_LABEL


class PadCollator:
    """Rows ``{"input_ids": list[int], "label": int}`` -> ``input_ids`` / ``attention_mask`` [B, L], ``labels`` [B];
    evaluation rows (with ``doc`` and ``score_from``) also give ``doc_ids`` [B] and ``score_mask`` [B, L].

    L is the longest row in the batch; padding goes on the right with ``pad_token_id``;
    ``attention_mask`` is 1 on real tokens. Rows without a label get ``NO_LABEL``.

    On labelled rows this is exactly transformers' ``DataCollatorWithPadding`` (tests/test_windows.py); it
    stays the project's because the library does not turn ``doc`` / ``score_from`` into ``doc_ids`` /
    ``score_mask``, drops ``labels`` for unlabelled rows, pads on the tokenizer's ``padding_side`` and needs
    the tokenizer object (this needs only the pad id).
    """

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, rows: Sequence[dict]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            input_ids[i, :n] = torch.as_tensor(r["input_ids"], dtype=torch.long)
            attention_mask[i, :n] = 1
        labels = torch.tensor([int(r.get("label", NO_LABEL)) for r in rows], dtype=torch.long)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if "doc" in rows[0]:  # evaluation rows (data/windows.py): which document, which tokens to score
            batch["doc_ids"] = torch.tensor([int(r["doc"]) for r in rows], dtype=torch.long)
            starts = torch.tensor([int(r.get("score_from", 0)) for r in rows])
            batch["score_mask"] = attention_mask.bool() & (torch.arange(width)[None, :] >= starts[:, None])
        return batch


class SeededPermutationSampler(Sampler[int]):
    """A random permutation of ``range(n)`` that depends only on ``(seed, epoch)``.

    Lightning calls ``set_epoch`` on ``dataloader.batch_sampler.sampler`` at each epoch start, which
    is how ``BucketBatchSampler`` (holding one of these) gets a fresh, reproducible order per epoch.
    """

    def __init__(self, n: int, seed: int = 0, on_epoch=None):
        self.n = n
        self.seed = seed
        self.epoch = 0
        self.on_epoch = on_epoch  # e.g. RandomWindows.set_epoch: the dataset's crops follow the epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.on_epoch is not None:
            self.on_epoch(epoch)

    def rng(self, stream: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, stream])

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        yield from self.rng().permutation(self.n).tolist()


class BucketBatchSampler(Sampler[list[int]]):
    """Seeded length-bucketed batches: shuffle, sort chunks of ``bucket_batches * batch_size`` rows
    by length, cut into batches, shuffle the batch order.

    The order depends only on ``seed`` and the epoch (see ``SeededPermutationSampler``). Single
    process only: under DDP the datamodule falls back to a plain shuffled loader.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, bucket_batches: int = 50,
                 drop_last: bool = False, on_epoch=None):
        self.lengths = np.asarray(lengths)
        self.sampler = SeededPermutationSampler(len(self.lengths), seed, on_epoch)
        self.batch_size = batch_size
        self.bucket_batches = bucket_batches
        self.drop_last = drop_last

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        perm = np.fromiter(self.sampler, dtype=np.int64, count=len(self.lengths))
        chunk = self.bucket_batches * self.batch_size  # a multiple of batch_size: only the last batch is short
        batches = []
        for start in range(0, len(perm), chunk):
            idx = perm[start:start + chunk]
            idx = idx[np.argsort(self.lengths[idx], kind="stable")]
            batches += [idx[i:i + self.batch_size] for i in range(0, len(idx), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        for b in self.sampler.rng(stream=1).permutation(len(batches)):
            yield batches[b].tolist()
