"""The IMDB movie-review sentiment source (Maas et al. 2011): local gzipped JSON lines, else the hub.

Local layout (see ``../shared/data/README.md``): ``{root}/train.jsonl.gz``, ``test.jsonl.gz``,
``unsup.jsonl.gz``, one JSON object per line with ``text`` and ``label`` (0 negative, 1 positive;
``unsup`` has no label). The files are sorted by label, ~59% of reviews hold ``<br />`` tags and
there are exact duplicates inside and across splits: ``assemble_splits`` shuffles and removes them.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from diffusion_lab.data.cleaning import Rows, assemble_splits, clean_rows
from diffusion_lab.data.splits import NO_LABEL, TextSplits
from diffusion_lab.hub import OFFLINE_HINT, hub_endpoint, hub_offline, hub_reachable

DATA_DIR_HINT = "set data_dir=/path/to/data on the command line or the environment variable DIFFUSION_LAB_DATA_DIR"


def read_jsonl_gz(path: Path, text_key: str = "text", label_key: str = "label") -> tuple[list, list[int]]:
    """Read a gzipped JSON-lines file into (texts, labels); rows without a label get NO_LABEL."""
    texts, labels = [], []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                texts.append(row.get(text_key))
                labels.append(row.get(label_key, NO_LABEL))
    return texts, labels


class ImdbSource:
    """IMDB reviews, cleaned and split honestly; ``load(seed)`` returns ``TextSplits``.

    Args:
        root: folder holding ``train.jsonl.gz`` / ``test.jsonl.gz`` (/ ``unsup.jsonl.gz``).
        val_size: validation rows carved (stratified) from train; a float in (0, 1) is a fraction.
        use_unsup: also load the 50k unlabelled reviews into ``splits.unsup``.
        hub_id: dataset id for ``datasets.load_dataset`` when the local files are absent
            (needs a network); ``None`` disables the fallback.
        max_train: optional stratified random subset of train (after shuffling, never the first N).
        max_train_per_class: optional n training examples of every class (seeded; learning curves).
        name: the dataset name used in run names (from the config).
    """

    label_names = ["negative", "positive"]

    def __init__(
        self,
        root: str | Path,
        val_size: int | float = 1000,
        use_unsup: bool = False,
        hub_id: str | None = "stanfordnlp/imdb",
        max_train: int | None = None,
        name: str = "imdb",
        max_train_per_class: int | None = None,
    ):
        self.root = Path(root).expanduser()
        self.val_size = val_size
        self.use_unsup = use_unsup
        self.hub_id = hub_id
        self.max_train = max_train
        self.max_train_per_class = max_train_per_class
        self.name = name

    def _read_local(self) -> dict[str, tuple[list, list[int]]] | None:
        files = {s: self.root / f"{s}.jsonl.gz" for s in ("train", "test", "unsup")}
        if not (files["train"].is_file() and files["test"].is_file()):
            return None
        if self.use_unsup and not files["unsup"].is_file():
            raise FileNotFoundError(f"use_unsup=true but {files['unsup']} does not exist; add it or set use_unsup=false")
        wanted = ("train", "test", "unsup") if self.use_unsup else ("train", "test")
        return {s: read_jsonl_gz(files[s]) for s in wanted}

    def _read_hub(self) -> dict[str, tuple[list, list[int]]]:
        looked = f"{self.root}/train.jsonl.gz and {self.root}/test.jsonl.gz"
        if self.hub_id is None:
            raise FileNotFoundError(f"IMDB files not found: looked for {looked}; {DATA_DIR_HINT}")

        if hub_offline("HF_DATASETS_OFFLINE"):
            raise FileNotFoundError(
                f"IMDB files not found: looked for {looked}, and the hub is offline (HF_HUB_OFFLINE); {DATA_DIR_HINT}"
            )
        if not hub_reachable():
            raise FileNotFoundError(f"IMDB files not found: looked for {looked}, and {hub_endpoint()} cannot be "
                                    f"reached (no network?); {DATA_DIR_HINT}; or {OFFLINE_HINT}")
        from datasets import load_dataset  # only users with a network reach this

        try:
            ds = load_dataset(self.hub_id)
        except Exception as e:  # any hub / network failure becomes one actionable message
            raise FileNotFoundError(
                f"IMDB files not found: looked for {looked}, and downloading {self.hub_id!r} failed ({e}); {DATA_DIR_HINT}"
            ) from e
        out = {"train": (ds["train"]["text"], ds["train"]["label"]), "test": (ds["test"]["text"], ds["test"]["label"])}
        if self.use_unsup:
            n = len(ds["unsupervised"])
            out["unsup"] = (ds["unsupervised"]["text"], [NO_LABEL] * n)
        return out

    def load(self, seed: int) -> TextSplits:
        raw = self._read_local()
        origin = str(self.root)
        if raw is None:
            raw, origin = self._read_hub(), f"hub:{self.hub_id}"
        cleaned: dict[str, Rows] = {}
        empty = 0
        for split, (texts, labels) in raw.items():
            if split == "unsup":
                labels = [NO_LABEL] * len(texts)
            cleaned[split], skipped = clean_rows(texts, labels, where=f"imdb/{split}", strip_html_breaks=True)
            empty += skipped
        return assemble_splits(
            cleaned["train"],
            cleaned["test"],
            label_names=self.label_names,
            seed=seed,
            val_size=self.val_size,
            max_train=self.max_train,
            max_train_per_class=self.max_train_per_class,
            unsup=cleaned.get("unsup"),
            stats={"empty_skipped": empty, "source": origin},
            source="imdb",
        )
