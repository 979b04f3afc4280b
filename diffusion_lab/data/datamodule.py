"""``TextDataModule``: splits + tokenizer -> tokenized datasets -> padded batches, for every task.

Owns the order of data preparation (load splits with the seed, build or reload the tokenizer,
subset validation/test, tokenize, batch). Batches are dicts of LongTensors: ``input_ids`` and
``attention_mask`` [B, L] padded to the longest row of the batch, ``labels`` [B] (NO_LABEL = -1
for unlabelled rows). No special tokens are added: the models add what they need.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
from datasets import Dataset, concatenate_datasets
from lightning.pytorch.strategies import ParallelStrategy
from torch.utils.data import DataLoader, DistributedSampler

from diffusion_lab.data.batching import BucketBatchSampler, PadCollator
from diffusion_lab.data.cleaning import stratified_indices
from diffusion_lab.data.labels import warn_many_classes
from diffusion_lab.data.splits import TextSplits
from diffusion_lab.data.tokenizer import encode_texts
from diffusion_lab.data.windows import POLICIES, RandomWindows, document_batches, window_rows, window_stats

log = logging.getLogger(__name__)


def _distributed(trainer) -> bool:
    """A parallel strategy (DDP, FSDP; also with one device) or an initialised process group of several
    ranks: the training loader then shards with a ``DistributedSampler`` (no length buckets)."""
    if trainer is not None and isinstance(trainer.strategy, ParallelStrategy):
        return True
    return torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1


def _ranks(trainer) -> tuple[int, int]:
    """``(rank, world size)`` of the trainer's processes; ``(0, 1)`` without a trainer."""
    if trainer is None:
        return 0, 1
    return int(getattr(trainer, "global_rank", 0)), int(getattr(trainer, "world_size", 1))


def shard_batches(batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """Rank ``rank``'s share of ``batches``: every ``world``-th, wrapped around so every rank gets the same
    number (a rank that ran out repeats the first batches, as ``DistributedSampler`` pads): ranks that
    step through validation a different number of times would wait on each other forever."""
    per_rank = math.ceil(len(batches) / world)
    return [batches[i % len(batches)] for i in range(rank, per_rank * world, world)]


class TextDataModule(L.LightningDataModule):
    """Args:
        source: a dataset source (``conf/dataset``), anything with ``load(seed) -> TextSplits``.
        tokenizer: a tokenizer builder (``conf/tokenizer``), anything with ``build(texts, save_dir)``.
        max_length: tokens kept per text (truncation); batches are padded only to their longest row.
        cache_dir: where the tokenizer is saved (``cache_dir/tokenizer``) and reloaded from.
        lm_use_unsup: add the source's ``unsup`` rows (label NO_LABEL) to the training set and to the
            tokenizer's training texts: for language-model (pre)training only, never for classifiers.
        bucket_by_length: group training rows of similar length (seeded; single process only).
        max_val, max_test: stratified random subsets (seeded) of validation / test, never the first N.
        long_text: ``truncate`` (the first ``max_length`` tokens) or ``windows`` (whole documents:
            random windows in training, every token scored once in evaluation; ``data/windows.py``).
        window_overlap: tokens of visible, unscored context each evaluation window repeats.

    Evaluation batches (``dataloader(split)``) always carry ``doc_ids`` [B] (the document of each
    row; a batch holds all windows of its documents) and ``score_mask`` [B, L] (tokens to score).
    """

    def __init__(self, source, tokenizer, max_length: int = 128, batch_size: int = 32, eval_batch_size: int = 64,
                 num_workers: int = 0, seed: int = 0, cache_dir: str | Path | None = None, lm_use_unsup: bool = False,
                 bucket_by_length: bool = True, max_val: int | None = None, max_test: int | None = None,
                 long_text: str = "truncate", window_overlap: int = 0):
        if long_text not in POLICIES:
            raise ValueError(f"data.long_text={long_text!r}: allowed values are {', '.join(POLICIES)}")
        super().__init__()
        self.source = source
        self.tokenizer_builder = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.lm_use_unsup = lm_use_unsup
        self.bucket_by_length = bucket_by_length
        self.max_val = max_val
        self.max_test = max_test
        self.long_text, self.window_overlap = long_text, window_overlap
        self._eval_rows: dict[str, list[dict]] = {}
        self._splits: TextSplits | None = None
        self._tokenizer = None
        self.datasets: dict[str, Dataset] = {}

    # ---- splits and tokenizer -------------------------------------------------------------------
    def prepare_tokenizer(self) -> None:
        """Load the splits (seeded) and build or reload the tokenizer; idempotent."""
        if self._tokenizer is not None:
            return
        self._splits = self.source.load(self.seed)
        if self.lm_use_unsup and self._splits.unsup is None:
            raise ValueError("lm_use_unsup=true but this dataset has no unsup split (for IMDB set dataset.use_unsup=true)")
        save_dir = self.cache_dir / "tokenizer" if self.cache_dir is not None else None

        def texts():  # lazy: not read at all when the tokenizer is reloaded from save_dir
            yield from self._splits.train["text"]
            if self.lm_use_unsup:
                yield from self._splits.unsup["text"]

        self._tokenizer = self.tokenizer_builder.build(texts, save_dir)
        warn_many_classes(self._splits.num_classes, len(self._tokenizer))

    def prepare_data(self) -> None:
        # rank 0 only: with a cache_dir the tokenizer is trained once and the other ranks reload it
        if self.cache_dir is not None:
            self.prepare_tokenizer()

    @property
    def tokenizer(self):
        self.prepare_tokenizer()
        return self._tokenizer

    @property
    def splits(self) -> TextSplits:
        self.prepare_tokenizer()
        return self._splits

    @property
    def label_names(self) -> list[str]:
        return self.splits.label_names

    @property
    def num_classes(self) -> int:
        return self.splits.num_classes

    @property
    def mask_token_id(self) -> int:
        return self.tokenizer.mask_token_id

    @property
    def pad_token_id(self) -> int:
        return self.tokenizer.pad_token_id

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Plain text token ids (no special tokens), truncated to ``max_length`` unless ``long_text=windows``
        (``data.tokenizer.encode_texts``, which scoring uses too)."""
        return encode_texts(self.tokenizer, texts, self.max_length, self.long_text)

    # ---- tokenized datasets ---------------------------------------------------------------------
    def _subset(self, ds: Dataset, n: int | None) -> Dataset:
        if n is None or n >= len(ds):
            return ds
        return ds.select(np.sort(stratified_indices(ds["label"], n, self.seed)))

    def _encode(self, texts: list[str]) -> dict[str, list]:
        """``input_ids`` as ``tokenize`` gives them (cut on the tokenizer's truncation side) and ``full_length``,
        each document's token count BEFORE truncation (``window_stats``); one pass without the "longer than
        the model" warning."""
        full, n = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"], self.max_length
        cut = (lambda x: x) if self.long_text == "windows" else (
            (lambda x: x[-n:]) if getattr(self.tokenizer, "truncation_side", "right") == "left" else (lambda x: x[:n]))
        return {"input_ids": [cut(x) for x in full], "full_length": [len(x) for x in full]}

    def _tokenized(self, name: str, ds: Dataset) -> Dataset:
        # an explicit fingerprint: hashing the tokenizer object for the default one is slow
        fp = hashlib.sha1(f"{name}-{len(ds)}-{self.max_length}-{self.long_text}-{len(self.tokenizer)}-full".encode()).hexdigest()
        out = ds.map(
            lambda b: self._encode(b["text"]),
            batched=True, new_fingerprint=fp, desc=f"tokenizing {name}",  # text kept: reports show it
        )
        lengths = [len(x) for x in out["input_ids"]]
        out = out.add_column("length", lengths)
        dropped = sum(n == 0 for n in lengths)
        if dropped:
            log.warning("%s: dropped %d rows with no tokens", name, dropped)
            out = out.select(np.flatnonzero(np.asarray(lengths) > 0))
        return out

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        splits = self.splits
        raw = {
            "train": splits.train,
            "validation": self._subset(splits.validation, self.max_val),
            "test": self._subset(splits.test, self.max_test),
        }
        if splits.unsup is not None:
            raw["unsup"] = splits.unsup
        self.datasets = {name: self._tokenized(name, ds) for name, ds in raw.items()}
        if self.lm_use_unsup:
            self.datasets["train"] = concatenate_datasets([self.datasets["train"], self.datasets["unsup"]])

    # ---- loaders --------------------------------------------------------------------------------
    def split_texts(self, split: str, window: bool = False) -> list[str]:
        """The split's texts in model order; ``window``: only what the models see (the token window, decoded)."""
        ds = self.datasets[split]
        if window:
            return self.tokenizer.batch_decode([list(map(int, ids)) for ids in ds["input_ids"]],
                                               skip_special_tokens=True)
        return list(ds["text"])

    def window_stats(self, split: str) -> dict:
        """The window policy and how many documents of ``split`` were longer than one window: counted on
        the documents' token counts before truncation (``full_length``), so ``truncate`` reports what it cut."""
        self.setup()
        return window_stats(self.datasets[split]["full_length"], self.long_text, self.max_length, self.window_overlap)

    def eval_rows(self, split_name: str) -> list[dict]:
        """``split_name`` as window rows (one per document when truncating), documents in order."""
        if split_name not in self._eval_rows:
            ds = self.datasets[split_name]
            self._eval_rows[split_name] = window_rows(ds["input_ids"], ds["label"], self.max_length, self.window_overlap)
        return self._eval_rows[split_name]

    def dataloader(self, split_name: str, shuffle: bool = False, batch_size: int | None = None,
                   shard: tuple[int, int] = (0, 1)) -> DataLoader:
        """Any split (``train``, ``validation``, ``test``, ``unsup``) as padded batches.

        ``shuffle`` (training): seeded order, long documents as one random window each epoch.
        Otherwise (evaluation): documents in order as window rows, whole documents per batch.
        ``shard=(rank, world)``: this rank's part (the trainer's own loaders under DDP / FSDP; the
        datamodule shards them itself, ``build_trainer`` sets ``use_distributed_sampler=False``: Lightning
        cannot put a sampler into the evaluation loaders' document batches). Scoring after training
        (``classifiers.predict``) reads whole splits.
        """
        self.setup()
        if split_name not in self.datasets:
            raise KeyError(f"no split {split_name!r}; available: {sorted(self.datasets)}")
        ds = self.datasets[split_name]
        batch_size = batch_size or self.eval_batch_size
        collate = PadCollator(self.pad_token_id)
        common = {"collate_fn": collate, "num_workers": self.num_workers, "persistent_workers": self.num_workers > 0}
        rank, world = shard
        if not shuffle:
            rows = self.eval_rows(split_name)
            if self.long_text == "truncate" and world > 1:  # one row per document: every world-th, padded
                sampler = DistributedSampler(rows, num_replicas=world, rank=rank, shuffle=False)
                return DataLoader(rows, batch_size=batch_size, sampler=sampler, **common)
            if self.long_text == "truncate":
                return DataLoader(rows, batch_size=batch_size, shuffle=False, **common)
            batches = document_batches([r["doc"] for r in rows], batch_size)
            return DataLoader(rows, batch_sampler=shard_batches(batches, rank, world), **common)
        lengths = [min(n, self.max_length) for n in ds["length"]]
        data = ds.select_columns(["input_ids", "label"])
        if self.long_text == "windows":
            data = RandomWindows(data, self.max_length, self.seed)
        if self.bucket_by_length and world == 1 and not _distributed(self.trainer):
            sampler = BucketBatchSampler(lengths, batch_size, seed=self.seed, on_epoch=getattr(data, "set_epoch", None))
            return DataLoader(data, batch_sampler=sampler, **common)
        if world > 1:  # seeded shards; Lightning calls the sampler's set_epoch every epoch (RandomWindows
            # then keeps epoch 0's windows: each long document gets one random window for the whole run)
            sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=self.seed)
            return DataLoader(data, batch_size=batch_size, sampler=sampler, **common)
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(data, batch_size=batch_size, shuffle=True, generator=generator, **common)

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train", shuffle=True, batch_size=self.batch_size, shard=_ranks(self.trainer))

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("validation", shard=_ranks(self.trainer))

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test", shard=_ranks(self.trainer))
