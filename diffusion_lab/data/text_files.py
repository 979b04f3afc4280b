"""Your own labelled text from local files: json, jsonl, jsonl.gz, csv, tsv, txt.

``json`` is a list of objects (or JSON lines); ``csv``/``tsv`` need a header row; ``txt`` is one
text per line and has no labels (every row NO_LABEL: language-model data only). Labels may be ints
(class ids) or strings: strings map to ids in sorted order, or in the order of ``label_names`` when
given; the mapping ends up in ``TextSplits.label_names``. Any number of classes.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable
from pathlib import Path

from diffusion_lab.data.cleaning import assemble_splits, clean_rows
from diffusion_lab.data.splits import NO_LABEL, TextSplits

FORMATS = (".json", ".jsonl", ".jsonl.gz", ".json.gz", ".csv", ".tsv", ".txt")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in sorted(FORMATS, key=len, reverse=True) if name.endswith(s)), path.suffix)


def read_records(path: Path) -> list[dict]:
    """Rows of one file as dicts (``txt``: ``{"text": line}``); text that is not UTF-8 is an error naming the file."""
    try:
        return _read_records(Path(path))
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not UTF-8 text (byte {err.object[err.start:err.start + 1]!r} at offset {err.start}); "
            f"re-save it as UTF-8, e.g. iconv -f latin1 -t utf-8 {path} > utf8{_suffix(Path(path))}"
        ) from None
    except (csv.Error, json.JSONDecodeError) as err:
        raise ValueError(f"{path} cannot be parsed as {_suffix(Path(path))}: {err}") from None


def _read_records(path: Path) -> list[dict]:
    fmt = _suffix(path)
    opener = gzip.open if fmt.endswith(".gz") else open
    if fmt in (".csv", ".tsv"):
        csv.field_size_limit(2**31 - 1)  # a long review is one field: no 128 KiB limit (JSONL has none)
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f, delimiter="\t" if fmt == ".tsv" else ","))
    if fmt == ".txt":
        return [{"text": line} for line in path.read_text(encoding="utf-8").splitlines()]
    if fmt in (".json", ".jsonl", ".jsonl.gz", ".json.gz"):
        with opener(path, "rt", encoding="utf-8") as f:
            content = f.read()
        if fmt == ".json" and content.lstrip().startswith("["):
            return json.loads(content)
        return [json.loads(line) for line in content.splitlines() if line.strip()]
    raise ValueError(f"{path}: unsupported file type {fmt!r}; use one of {', '.join(FORMATS)}")


def _as_int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)  # csv gives every field as a string: "0"/"1" are class ids
    return None


def _as_str(value) -> str | None:
    return None if value is None or (isinstance(value, str) and not value.strip()) else str(value).strip()


class TextFilesSource:
    """Train / test (/ validation) files -> ``TextSplits``; validation carved from train when absent.

    Args:
        train_path, test_path: files (see module docstring for formats).
        val_path: optional validation file; otherwise ``val_size`` (fraction or rows) of train.
        text_column, label_column: field names in the files (ignored for ``txt``).
        label_names: the classes, in id order; required to fix the order of string labels or to
            declare classes absent from ints' max.
    """

    def __init__(self, train_path: str | Path, test_path: str | Path, val_path: str | Path | None = None,
                 text_column: str = "text", label_column: str = "label", val_size: int | float = 0.1,
                 label_names: list[str] | None = None, name: str = "text_files"):
        self.paths = {"train": train_path, "validation": val_path, "test": test_path}
        self.text_column = text_column
        self.label_column = label_column
        self.val_size = val_size
        self.label_names = list(label_names) if label_names is not None else None
        self.name = name

    def _read(self, split: str) -> tuple[list, list, bool]:
        """(texts, raw labels, has_labels) of one split's file."""
        path = Path(self.paths[split]).expanduser().resolve()
        if not path.is_file():
            key = {"validation": "val_path"}.get(split, f"{split}_path")
            raise FileNotFoundError(f"{split} file not found: {path}; set dataset.{key}=/path/to/file")
        records = read_records(path)
        if not records:
            raise ValueError(f"{split} file {path} holds no rows; the {split} split would be empty")
        if _suffix(path) == ".txt":
            return [r["text"] for r in records], [NO_LABEL] * len(records), False
        columns = sorted(records[0].keys())
        if self.text_column not in columns:
            raise ValueError(f"{path}: no text column {self.text_column!r}; columns found: {columns}. "
                             "Set dataset.text_column=<one of them>")
        has_labels = self.label_column in columns
        if not has_labels:
            raise ValueError(f"{path}: no label column {self.label_column!r}; columns found: {columns}. "
                             "Set dataset.label_column=<one of them> (or use a .txt file for unlabelled text)")
        labels = [r.get(self.label_column) for r in records] if has_labels else [None] * len(records)
        return [r.get(self.text_column) for r in records], labels, has_labels

    def _label_map(self, train_labels: list) -> tuple[Callable, dict, list[str]]:
        """(raw label -> key, key -> class id, class names in id order), decided by the train labels.

        Labels must be all class ids or all names: a file that mixes ``0``/``1`` with ``neg``/``pos``
        would otherwise silently become a 4-class problem.
        """
        ints = [_as_int(y) is not None for y in train_labels]
        names = sorted({_as_str(y) for y, i in zip(train_labels, ints, strict=True) if not i} - {None})[:5]
        if self.label_names is None and any(ints) and names:
            ids = sorted({str(y).strip() for y, i in zip(train_labels, ints, strict=True) if i})[:5]
            raise ValueError(
                f"train file {self.paths['train']}: column {self.label_column!r} mixes class ids {ids} with label "
                f"names {names}; write every label one way, or set dataset.label_names=[...] (names in class-id order)"
            )
        if all(ints) or (any(ints) and not names):
            top = max(i for i in map(_as_int, train_labels) if i is not None)
            names = self.label_names or [str(i) for i in range(top + 1)]
            return _as_int, {i: i for i in range(len(names))}, names
        names = self.label_names or sorted({_as_str(y) for y in train_labels} - {None})
        return _as_str, {n: i for i, n in enumerate(names)}, names

    def load(self, seed: int) -> TextSplits:
        raw = {s: self._read(s) for s, p in self.paths.items() if p is not None}
        labelled = raw["train"][2]
        key, mapping, names = self._label_map(raw["train"][1]) if labelled else (None, {}, [])
        rows, empty = {}, 0
        for split, (texts, labels, has_labels) in raw.items():
            if not labelled or not has_labels:
                ids = [NO_LABEL] * len(texts)
            else:
                keys = [key(y) for y in labels]
                unknown = sorted({"<missing>" if k is None else str(k) for k in keys if k not in mapping})
                if unknown:
                    raise ValueError(f"{split}: labels {unknown[:10]} are not among the declared classes {names}; "
                                     "fix the file or set dataset.label_names=[...]")
                ids = [mapping[k] for k in keys]
            rows[split], skipped = clean_rows(texts, ids, where=f"{self.name}/{split}")
            empty += skipped
        return assemble_splits(
            rows["train"], rows["test"], validation=rows.get("validation"), label_names=names, seed=seed,
            val_size=self.val_size, stats={"empty_skipped": empty, "source": {s: str(p) for s, p in self.paths.items()}},
            source=self.name,
        )
