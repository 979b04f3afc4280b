"""The real data of a ``task=synthesize`` run, and the one door to its test split.

Loads the configured dataset once (shuffled, de-duplicated, validation carved from train, as every
task does), takes a stratified seeded ``task.real_train_size`` subset of train (the rest is the
pool for the same-size real baseline), a stratified ``data.max_val`` subset of validation, and
builds the contamination guard from the validation and test texts (their n-grams only: nothing is
scored or chosen with them). The test items are handed out by ``final_test()``, which counts its
calls: the loop calls it once, after every choice is made.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hydra.utils import instantiate

from diffusion_lab.data.cleaning import stratified_indices
from diffusion_lab.synthesis.text_overlap import ContaminationGuard

PLACEHOLDER = "(no test split in a synthesize round: the real test items are scored once, by the synthesize task)"


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, default=float) + "\n")
    return path


class RealData:
    def __init__(self, cfg, out: Path):
        splits = instantiate(cfg.dataset).load(cfg.seed)
        self.seed, self.label_names = int(cfg.seed), list(splits.label_names)
        self.stats = splits.stats
        texts, labels = list(splits.train["text"]), [int(y) for y in splits.train["label"]]
        size = cfg.task.get("real_train_size")
        chosen = np.sort(stratified_indices(labels, int(size), self.seed)) if size else np.arange(len(texts))
        rest = np.setdiff1d(np.arange(len(texts)), chosen)
        self.train = [(texts[i], labels[i]) for i in chosen]
        self.pool = [(texts[i], labels[i]) for i in rest]
        val = splits.validation
        max_val = cfg.data.get("max_val")
        idx = np.sort(stratified_indices(val["label"], max_val, self.seed)) if max_val and max_val < len(val) else range(len(val))
        self.validation = [(val[int(i)]["text"], int(val[int(i)]["label"])) for i in idx]
        self.guard = ContaminationGuard([*val["text"], *splits.test["text"]], int(cfg.task.guard.ngram))
        self._test, self._max_test = splits.test, cfg.eval.get("max_test")
        self.test_reads = 0
        data = Path(out) / "data"
        self.train_path = write_jsonl(data / "real_train.jsonl", self.rows(self.train))
        self.val_path = write_jsonl(data / "validation.jsonl", self.rows(self.validation))
        self.placeholder_path = write_jsonl(data / "no_test.jsonl", [{"text": PLACEHOLDER, "label": self.label_names[0]}])

    def rows(self, pairs) -> list[dict]:
        return [{"text": t, "label": self.label_names[y]} for t, y in pairs]

    def same_size_extra(self, n: int) -> tuple[list, str]:
        """``n`` more real training rows from the pool (stratified, seeded), or ([], why not)."""
        if n <= 0:
            return [], "no synthetic texts were kept"
        if n > len(self.pool):
            return [], f"the real pool has {len(self.pool)} unused training rows, {n} needed"
        idx = stratified_indices([y for _, y in self.pool], n, self.seed + 1)
        return [self.pool[int(i)] for i in np.sort(idx)], ""

    def final_test(self) -> tuple[list[str], list[int]]:
        """The test items (a stratified seeded ``eval.max_test`` subset): call once, at the very end."""
        self.test_reads += 1
        test = self._test
        if self._max_test and self._max_test < len(test):
            test = test.select(np.sort(stratified_indices(test["label"], self._max_test, self.seed)))
        return list(test["text"]), [int(y) for y in test["label"]]
