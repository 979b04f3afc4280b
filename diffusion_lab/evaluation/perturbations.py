"""Seeded, model-independent text perturbations for robustness curves.

Every perturbation has the signature ``f(text, strength, seed, **kw) -> str`` and works on
whitespace words: the text is split with ``str.split()`` and re-joined with single spaces (so runs
of whitespace are normalised). The unit is always the word: exactly
``n_changed(n_words, strength) = floor(strength * n_words + 0.5)`` words (round half up) are
changed and every other word is returned verbatim, in order. ``char_typos`` makes one character
edit inside each chosen word, so it too changes exactly that many words.
"""

from __future__ import annotations

import math
import random
import string
from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np

#: mask_top_words' default: remove the chosen words, so every model reads the same shorter text (see there)
DELETE = "delete"
#: the old default, kept by name (``eval.mask_placeholder='<unk>'``): TF-IDF ignores it but a trained BPE maps it
#: to its ``<unk>`` id, whose embedding no training text ever produced
PLACEHOLDER = "<unk>"
LETTERS = string.ascii_lowercase


def n_changed(n_words: int, strength: float) -> int:
    """Number of words a perturbation of this strength changes: floor(strength * n + 0.5)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    return min(n_words, int(math.floor(strength * n_words + 0.5)))


def _pick(rng: random.Random, n_words: int, strength: float) -> list[int]:
    return sorted(rng.sample(range(n_words), n_changed(n_words, strength)))


def _typo(word: str, rng: random.Random) -> str:
    """One edit that is guaranteed to change the word and never empties it."""
    ops = ["insert", "substitute"]
    if len(word) > 1:
        ops.append("delete")
    swappable = [i for i in range(len(word) - 1) if word[i] != word[i + 1]]
    if swappable:
        ops.append("swap")
    op = rng.choice(ops)
    if op == "swap":
        i = rng.choice(swappable)
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == "delete":
        i = rng.randrange(len(word))
        return word[:i] + word[i + 1 :]
    i = rng.randrange(len(word) + (op == "insert"))
    if op == "insert":
        return word[:i] + rng.choice(LETTERS) + word[i:]
    return word[:i] + rng.choice([c for c in LETTERS if c != word[i]]) + word[i + 1 :]


def char_typos(text: str, strength: float, seed: int) -> str:
    """In a fraction `strength` of words, one character edit each (adjacent swap, deletion,
    insertion or substitution of a lowercase letter). Unit: words, each changed by one edit."""
    words = text.split()
    rng = random.Random(seed)
    for i in _pick(rng, len(words), strength):
        words[i] = _typo(words[i], rng)
    return " ".join(words)


def word_deletion(text: str, strength: float, seed: int) -> str:
    """Delete a fraction `strength` of the words."""
    words = text.split()
    drop = set(_pick(random.Random(seed), len(words), strength))
    return " ".join(w for i, w in enumerate(words) if i not in drop)


class FrequencyVocab(list):
    """Words sorted by training-corpus count (most frequent first), with a cached rank lookup."""

    def __init__(self, words: Iterable[str]):
        super().__init__(words)
        self.rank = {w: i for i, w in enumerate(self)}


def build_frequency_vocab(texts: Iterable[str], min_count: int = 1) -> FrequencyVocab:
    """Lowercased whitespace words of the TRAINING texts by descending count (ties alphabetical,
    so the ranking is deterministic). Build it from training texts only, never from test."""
    counts = Counter(w.lower() for t in texts for w in t.split())
    return FrequencyVocab(
        w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count
    )


def word_swap(text: str, strength: float, seed: int, vocab_by_frequency: list[str], window: int = 10) -> str:
    """Replace a fraction `strength` of words with a different word of similar corpus frequency:
    one drawn uniformly from the `window` neighbours on each side of the word's rank in
    `vocab_by_frequency` (lowercased lookup). Words absent from the vocabulary are treated as the
    rarest and draw from the last 2 * window entries. Replacements are vocabulary words (lowercase)."""
    vocab = vocab_by_frequency
    if len(vocab) < 2:
        raise ValueError("word_swap needs a vocabulary of at least 2 words")
    rank = getattr(vocab, "rank", None) or {w: i for i, w in enumerate(vocab)}
    words = text.split()
    rng = random.Random(seed)
    for i in _pick(rng, len(words), strength):
        key = words[i].lower()
        r = rank.get(key, len(vocab))
        lo, hi = max(0, r - window), min(len(vocab), r + window + 1)
        cands = [w for w in vocab[lo:hi] if w != key]
        if not cands:  # window too narrow around an OOV word: widen to the whole vocabulary
            cands = [w for w in vocab if w != key]
        words[i] = rng.choice(cands)
    return " ".join(words)


def _weight_key(word: str) -> str:
    """How a whitespace word is looked up in a word->weight dict: lowercased, edge punctuation
    stripped (matching a TF-IDF vectorizer's lowercase word tokens closely enough)."""
    return word.lower().strip(string.punctuation)


def mask_top_words(
    text: str,
    strength: float,
    seed: int,
    weights: dict[str, float],
    k: int | None = None,
    placeholder: str = DELETE,
) -> str:
    """Remove the k words with the largest |weight| (e.g. the baseline's own TF-IDF-LR coefficients;
    absent words weigh 0). k defaults to n_changed(n, strength). Ties in |weight| (including zeros)
    are broken by a seeded shuffle, so exactly k words go. Every occurrence counts as a separate word.

    ``placeholder="delete"`` (the default, ``eval.mask_placeholder``) deletes them; any other string
    is put in their place (``"<unk>"``: the behaviour before issue 37). Why delete: a placeholder is
    not the same perturbation for every model. TF-IDF drops ``<unk>`` as an unknown word (the word is
    simply gone), while a neural model reads it as a token: the trained BPE's ``<unk>`` special,
    whose embedding was never trained because byte-level BPE never emits it (GPT-2's tokenizer
    splits it into ``<``, ``unk``, ``>``: three ordinary tokens of noise). A masked-diffusion model's
    ``<mask>`` is no fairer: it tells the generative model where evidence was removed and the
    discriminative one nothing it was trained on. Deleting gives every model the same text made
    only of trained tokens, and means "the evidence is gone" for each. Deletion can empty a text only
    when k equals its word count (strength >= 0.5 on a one-word text), like ``word_deletion``.
    """
    words = text.split()
    n = min(len(words), k) if k is not None else n_changed(len(words), strength)
    order = list(range(len(words)))
    random.Random(seed).shuffle(order)  # stable sort below keeps this order among ties
    order.sort(key=lambda i: -abs(weights.get(_weight_key(words[i]), 0.0)))
    chosen = set(order[:n])
    if placeholder == DELETE:
        return " ".join(w for i, w in enumerate(words) if i not in chosen)
    return " ".join(placeholder if i in chosen else w for i, w in enumerate(words))


PERTURBATIONS: dict[str, Callable[..., str]] = {
    "char_typos": char_typos,
    "word_deletion": word_deletion,
    "word_swap": word_swap,
    "mask_top_words": mask_top_words,
}


def item_seed(seed: int, index: int) -> int:
    """Independent, reproducible per-text seed from (run seed, item index) via numpy SeedSequence."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def perturb(texts: Iterable[str], name: str, strength: float, seed: int, **kw) -> list[str]:
    """Apply PERTURBATIONS[name] to each text with seed item_seed(seed, index)."""
    if name not in PERTURBATIONS:
        raise KeyError(f"unknown perturbation {name!r}; choose from {sorted(PERTURBATIONS)}")
    fn = PERTURBATIONS[name]
    return [fn(t, strength, item_seed(seed, i), **kw) for i, t in enumerate(texts)]
