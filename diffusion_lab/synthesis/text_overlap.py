"""Word n-grams for duplicate and contamination checks.

Words are lower-cased ``\\w+`` runs, so punctuation and spacing never hide an overlap.
``ContaminationGuard``: every n-gram (``n`` words, default 8) of the held-out texts (validation and
test), stored as 64-bit hashes in one sorted array (IMDB's 25k test reviews make ~6M n-grams: 46 MB
instead of a Python set's ~400 MB). A text shares an n-gram with the held-out set iff one of its
hashes is in the array (a 64-bit collision would drop a clean text, never keep a leaking one).
``NearDuplicates``: Jaccard similarity of word-shingle sets, ``|A & B| / |A | B|``, against every
text kept so far, through an inverted index (only texts sharing a shingle are compared).
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def _hashes(tokens: list[str], n: int) -> np.ndarray:
    return np.fromiter((hash(g) for g in ngrams(tokens, n)), dtype=np.int64)


class ContaminationGuard:
    def __init__(self, texts, n: int = 8):
        if n < 1:
            raise ValueError(f"guard.ngram={n}: must be >= 1")
        self.n = n
        parts = [_hashes(words(t), n) for t in texts]
        self.table = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def hits(self, text: str) -> int:
        """How many of ``text``'s n-grams occur in the held-out texts."""
        h = _hashes(words(text), self.n)
        if not len(h) or not len(self.table):
            return 0
        pos = np.searchsorted(self.table, h).clip(max=len(self.table) - 1)
        return int((self.table[pos] == h).sum())


class NearDuplicates:
    def __init__(self, n: int = 3, max_jaccard: float = 0.8):
        if not 0.0 < max_jaccard <= 1.0:
            raise ValueError(f"dedup.max_jaccard={max_jaccard}: must lie in (0, 1]")
        self.n, self.max_jaccard = n, max_jaccard
        self.kept: list[frozenset] = []
        self.index: dict[tuple, list[int]] = defaultdict(list)

    def shingles(self, text: str) -> frozenset:
        tokens = words(text)
        return frozenset(ngrams(tokens, self.n) if len(tokens) >= self.n else [tuple(tokens)])

    def closest(self, text: str) -> float:
        """The largest Jaccard similarity with a kept text (0 when none shares a shingle)."""
        a = self.shingles(text)
        candidates = {i for s in a for i in self.index.get(s, ())}
        return max((len(a & self.kept[i]) / len(a | self.kept[i]) for i in candidates), default=0.0)

    def add(self, text: str) -> None:
        a = self.shingles(text)
        for s in a:
            self.index[s].append(len(self.kept))
        self.kept.append(a)
