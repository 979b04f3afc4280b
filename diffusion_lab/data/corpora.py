"""Small plain-text corpora: sentence polarity (Pang & Lee 2005) and WikiText-2 (OOD / LM text).

Both ship as raw text files without an official train/test split; the sources carve seeded splits.
"""

from __future__ import annotations

import re
from pathlib import Path

from diffusion_lab.data.cleaning import assemble_splits, clean_rows, dedupe, resolve_size, stratified_split
from diffusion_lab.data.imdb import DATA_DIR_HINT
from diffusion_lab.data.splits import NO_LABEL, TextSplits


def read_lines(path: Path) -> list[str]:
    """Lines of a text file; UTF-8, falling back to latin-1 (the original RT release is latin-1)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; {DATA_DIR_HINT}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # never fails: every byte is a latin-1 character
    return text.splitlines()  # handles CRLF too


class RtPolaritySource:
    """Movie-review snippets, negative (0) / positive (1); seeded stratified train/validation/test.

    Args:
        root: folder holding ``rt-polarity.neg`` and ``rt-polarity.pos``.
        val_size, test_size: rows (int) or fractions (float in (0, 1)) of the corpus.
        max_train, max_train_per_class: optional training subsets, as ``imdb``.
    """

    label_names = ["negative", "positive"]

    def __init__(self, root: str | Path, val_size: int | float = 0.1, test_size: int | float = 0.1, name: str = "rt_polarity",
                 max_train: int | None = None, max_train_per_class: int | None = None):
        self.root = Path(root).expanduser()
        self.val_size = val_size
        self.test_size = test_size
        self.name = name
        self.max_train, self.max_train_per_class = max_train, max_train_per_class

    def load(self, seed: int) -> TextSplits:
        texts, labels = [], []
        for label, suffix in enumerate(("neg", "pos")):
            lines = read_lines(self.root / f"rt-polarity.{suffix}")
            texts += lines
            labels += [label] * len(lines)
        rows, empty = clean_rows(texts, labels, where="rt_polarity")
        # the corpus is split here, so duplicates are removed corpus-wide before any split exists
        rows, within = dedupe(rows)
        n = len(rows[0])
        rest, test = stratified_split(rows, resolve_size(self.test_size, n, "test_size"), seed)
        val_size = resolve_size(self.val_size, n, "val_size")  # a fraction of the whole corpus, not of rest
        return assemble_splits(
            rest,
            test,
            label_names=self.label_names,
            seed=seed,
            val_size=val_size,
            max_train=self.max_train,
            max_train_per_class=self.max_train_per_class,
            stats={"empty_skipped": empty, "duplicates_removed": {"within_corpus": within}, "source": str(self.root)},
            source="rt_polarity",
        )


_HEADING = re.compile(r"^=( =)* .* =( =)*$")  # " = Title = ", " = = Section = = "


class Wikitext2Source:
    """WikiText-2 raw test paragraphs, unlabelled (NO_LABEL, no classes): out-of-distribution text.

    Headings and blank lines are dropped. Most rows go to ``test``; small disjoint ``train`` and
    ``validation`` splits (``train_size``, ``val_size`` rows) exist so that LM runs work on it.
    """

    label_names: list[str] = []

    def __init__(self, root: str | Path, train_size: int = 200, val_size: int = 100, name: str = "wikitext2"):
        self.root = Path(root).expanduser()
        self.train_size = train_size
        self.val_size = val_size
        self.name = name

    def load(self, seed: int) -> TextSplits:
        lines = [ln.strip() for ln in read_lines(self.root / "wiki.test.raw")]
        paragraphs = [ln for ln in lines if ln and not _HEADING.match(ln)]
        rows, empty = clean_rows(paragraphs, [NO_LABEL] * len(paragraphs), where="wikitext2")
        rows, within = dedupe(rows)  # split here, so de-duplicate corpus-wide first
        test, train = stratified_split(rows, self.train_size + self.val_size, seed)
        return assemble_splits(
            train,
            test,
            label_names=[],
            seed=seed,
            val_size=self.val_size,
            stats={"empty_skipped": empty, "duplicates_removed": {"within_corpus": within}, "source": str(self.root)},
            source="wikitext2",
        )
