"""Your own labelled text from local files: json, jsonl, jsonl.gz, csv, tsv, txt.

``json`` is a list of objects (or JSON lines); ``csv``/``tsv`` need a header row; ``txt`` is one
text per line and has no labels (every row NO_LABEL: language-model data only). Labels may be ints
(class ids) or strings: strings map to ids in sorted order, or in the order of ``label_names`` when
given; the mapping ends up in ``TextSplits.label_names``. Any number of classes. What a label value
means (surrounding spaces, case variants, star ratings ``1``-``5``) is decided in ``data/labels.py``.

Errors name the file and the line: a ragged CSV row or an unterminated quote, a missing label, a label
that is not a class, a file whose texts are all empty.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
from pathlib import Path

from diffusion_lab.data.cleaning import assemble_splits, clean_rows
from diffusion_lab.data.labels import LabelMap, label_key
from diffusion_lab.data.splits import NO_LABEL, TextSplits

log = logging.getLogger(__name__)

FORMATS = (".json", ".jsonl", ".jsonl.gz", ".json.gz", ".csv", ".tsv", ".txt")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in sorted(FORMATS, key=len, reverse=True) if name.endswith(s)), path.suffix)


def read_records(path: Path) -> list[dict]:
    """Rows of one file as dicts (``txt``: ``{"text": line}``); text that is not UTF-8 is an error naming the file."""
    return read_rows(path)[0]


def read_rows(path: Path) -> tuple[list[dict], list[str]]:
    """``(records, where)``: ``where[i]`` says where record ``i`` starts (``line 7``, ``item 3``) for errors.

    A CSV/TSV row with fewer or more fields than the header (a ragged row, an unquoted delimiter, an
    unterminated quote that swallows the rest of the file) is an error naming the file and the line."""
    try:
        return _read_rows(Path(path))
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not UTF-8 text (byte {err.object[err.start:err.start + 1]!r} at offset {err.start}); "
            f"re-save it as UTF-8, e.g. iconv -f latin1 -t utf-8 {path} > utf8{_suffix(Path(path))}"
        ) from None
    except (csv.Error, json.JSONDecodeError) as err:
        raise ValueError(f"{path} cannot be parsed as {_suffix(Path(path))}: {err}") from None


def _read_csv(path: Path, delimiter: str) -> tuple[list[dict], list[str]]:
    csv.field_size_limit(2**31 - 1)  # a long review is one field: no 128 KiB limit (JSONL has none)
    records, where = [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header, end = next(reader, []), reader.line_num
        for row in reader:
            start, end = end + 1, reader.line_num
            if not row:  # a blank line
                continue
            if len(row) != len(header):
                hint = (f"; an unterminated quote (\") on line {start} runs to line {end}: close it, or write a quote "
                        "inside a field as \"\"" if end > start and len(row) < len(header) else
                        f"; quote fields that contain {delimiter!r}" if len(row) > len(header) else
                        f"; every row needs all {len(header)} fields")
                raise ValueError(f"{path} line {start}: {len(row)} field(s) where the header {header} has "
                                 f"{len(header)}{hint}")
            records.append(dict(zip(header, row, strict=True)))
            where.append(f"line {start}")
    return records, where


def _read_rows(path: Path) -> tuple[list[dict], list[str]]:
    fmt = _suffix(path)
    opener = gzip.open if fmt.endswith(".gz") else open
    if fmt in (".csv", ".tsv"):
        return _read_csv(path, "\t" if fmt == ".tsv" else ",")
    if fmt == ".txt":
        lines = path.read_text(encoding="utf-8").splitlines()
        return [{"text": line} for line in lines], [f"line {i + 1}" for i in range(len(lines))]
    if fmt in (".json", ".jsonl", ".jsonl.gz", ".json.gz"):
        with opener(path, "rt", encoding="utf-8") as f:
            content = f.read()
        if fmt == ".json" and content.lstrip().startswith("["):
            records = json.loads(content)
            return records, [f"item {i + 1}" for i in range(len(records))]
        numbered = [(i + 1, line) for i, line in enumerate(content.splitlines()) if line.strip()]
        return [json.loads(line) for _, line in numbered], [f"line {i}" for i, _ in numbered]
    raise ValueError(f"{path}: unsupported file type {fmt!r}; use one of {', '.join(FORMATS)}")


class TextFilesSource:
    """Train / test (/ validation) files -> ``TextSplits``; validation carved from train when absent.

    Args:
        train_path, test_path: files (see module docstring for formats).
        val_path: optional validation file; otherwise ``val_size`` (fraction or rows) of train.
        text_column, label_column: field names in the files (ignored for ``txt``).
        label_names: the classes, in id order; fixes the order of string labels, names integer class
            ids, or (labels equal to declared names, e.g. ``['1', ..., '5']``) reads numbers as names.
        max_train: optional stratified random subset of train (after validation is carved), as ``imdb``.
        max_train_per_class: optional n training examples of every class, as ``imdb``.
        missing_hint: what a missing file's error tells the user to do; ``None``: set ``dataset.<split>_path``.
            A shipped dataset on this loader (``conf/dataset/trec.yaml``) names the data folder instead.
    """

    def __init__(self, train_path: str | Path, test_path: str | Path, val_path: str | Path | None = None,
                 text_column: str = "text", label_column: str = "label", val_size: int | float = 0.1,
                 label_names: list[str] | None = None, name: str = "text_files", max_train: int | None = None,
                 max_train_per_class: int | None = None,
                 missing_hint: str | None = None):
        self.paths = {"train": train_path, "validation": val_path, "test": test_path}
        self.text_column = text_column
        self.label_column = label_column
        self.val_size = val_size
        self.label_names = list(label_names) if label_names is not None else None
        self.name = name
        self.max_train = max_train
        self.max_train_per_class = max_train_per_class
        self.missing_hint = missing_hint

    def _read(self, split: str) -> tuple[Path, list, list, bool, list[str]]:
        """(path, texts, raw labels, has_labels, where each row starts) of one split's file."""
        path = Path(self.paths[split]).expanduser().resolve()
        if not path.is_file():
            key = {"validation": "val_path"}.get(split, f"{split}_path")
            raise FileNotFoundError(f"{split} file not found: {path}; "
                                    f"{self.missing_hint or f'set dataset.{key}=/path/to/file'}")
        records, where = read_rows(path)
        if not records:
            raise ValueError(f"{split} file {path} holds no rows; the {split} split would be empty")
        if _suffix(path) == ".txt":
            return path, [r["text"] for r in records], [NO_LABEL] * len(records), False, where
        columns = sorted(records[0].keys())
        if self.text_column not in columns:
            raise ValueError(f"{path}: no text column {self.text_column!r}; columns found: {columns}. "
                             "Set dataset.text_column=<one of them>")
        if self.label_column not in columns:
            raise ValueError(f"{path}: no label column {self.label_column!r}; columns found: {columns}. "
                             "Set dataset.label_column=<one of them> (or use a .txt file for unlabelled text)")
        labels = [r.get(self.label_column) for r in records]
        return path, [r.get(self.text_column) for r in records], labels, True, where

    def _ids(self, split: str, path: Path, labels: list, where: list[str], label_map: LabelMap) -> list[int]:
        """Class ids of one split; a missing label or one that is not a class names the file and line."""
        keys = [label_key(y) for y in labels]
        missing = [w for k, w in zip(keys, where, strict=True) if k is None]
        if missing:
            raise ValueError(f"{split} file {path} {missing[0]}: no label in column {self.label_column!r} "
                             f"({len(missing)} row(s) without one); every row of a labelled file needs a label")
        ids = [label_map.id_of(k) for k in keys]
        bad = [(k, w) for k, i, w in zip(keys, ids, where, strict=True) if i is None]
        if bad:
            unknown = sorted({k for k, _ in bad})
            raise ValueError(f"{split}: labels {unknown[:10]} are not among the declared classes {label_map.names} "
                             f"({path} {bad[0][1]}); fix the file or set dataset.label_names=[...]")
        return ids

    def load(self, seed: int) -> TextSplits:
        raw = {s: self._read(s) for s, p in self.paths.items() if p is not None}
        train_path, _, train_labels, labelled, _ = raw["train"]
        label_map = LabelMap.from_train([label_key(y) for y in train_labels], self.label_names, str(train_path),
                                        self.label_column) if labelled else LabelMap([], False)
        if label_map.note:
            log.warning(label_map.note)
        rows, empty = {}, 0
        for split, (path, texts, labels, has_labels, where) in raw.items():
            ids = (self._ids(split, path, labels, where, label_map) if labelled and has_labels
                   else [NO_LABEL] * len(texts))
            rows[split], skipped = clean_rows(texts, ids, where=f"{self.name}/{split}")
            if not rows[split][0]:
                blank = next(w for t, w in zip(texts, where, strict=True) if not (isinstance(t, str) and t.strip()))
                raise ValueError(f"{split} file {path}: all {len(texts)} texts in column {self.text_column!r} are empty "
                                 f"or whitespace-only (e.g. {blank}); fix the file or set dataset.text_column=<the "
                                 "column that holds the text>")
            empty += skipped
        stats = {"empty_skipped": empty, "source": {s: str(p) for s, p in self.paths.items()}}
        note = label_map.folded_note(", ".join(str(r[0]) for r in raw.values()))
        if note:
            log.warning(note)
            stats["labels_folded"] = {name: dict(c) for name, c in label_map.folded.items()}
        return assemble_splits(
            rows["train"], rows["test"], validation=rows.get("validation"), label_names=label_map.names, seed=seed,
            val_size=self.val_size, max_train=self.max_train, max_train_per_class=self.max_train_per_class, stats=stats, source=self.name,
        )
