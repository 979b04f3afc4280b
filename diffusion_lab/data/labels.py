"""Raw label values read from files -> class ids: the one place that decides what a label means.

Decided once, on the TRAINING labels (``LabelMap.from_train``), then applied to every split:

- Surrounding whitespace never matters (``"pos "`` is ``"pos"``), nor does the spelling of an integer
  (``"01"``, ``"+1"`` and ``1`` are ``"1"``).
- Case: labels that differ only in case (``pos``, ``POS``, ``Pos``) are ONE class, never several. They
  are folded into the most frequent training spelling (ties: the first in sorted order), with a warning
  that names the file and every spelling, and the folding is recorded (``folded``, which
  ``TextFilesSource`` puts in ``stats["labels_folded"]``). Declared ``label_names`` that differ only in
  case (a user who really means ``a`` and ``A`` as two classes) are kept apart: then a label must
  match a declared name exactly.
- With ``label_names`` declared: a label equal to a declared name is that name's class, so
  ``label_names=['1','2','3','4','5']`` reads star ratings ``1``-``5`` as classes 0-4. Otherwise, when
  every label is an integer, the integers are class ids ``0..C-1`` and ``label_names`` names them.
- Without ``label_names``: integers starting at 0 (``0..max``) are class ids. Integers that do not
  start at 0 (star ratings ``1..5``, ``-1``/``1``) are read as NAMES in numeric order (``1`` -> class
  0), with a warning giving the mapping; set ``label_names`` to choose another order. Other labels are
  names in sorted order. A file that mixes ids and names is an error.

``warn_many_classes``: the class count's cost in parameters, warned about once the labels are known.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field

from diffusion_lab.models.conditions import num_conditions

log = logging.getLogger(__name__)

_INT = re.compile(r"[-+]?\d+")


def label_key(value) -> str | None:
    """The string a label is compared by: stripped, integers canonical; None when missing or blank."""
    if value is None:
        return None
    key = str(value).strip()
    if not key:
        return None
    return str(int(key)) if _INT.fullmatch(key) and not isinstance(value, bool) else key


def _as_int(key: str | None) -> int | None:
    return int(key) if key is not None and _INT.fullmatch(key) else None


@dataclass
class LabelMap:
    """``names`` in class-id order; ``id_of(key)`` gives a class id or None (not a class)."""

    names: list[str]
    by_id: bool  # labels are class ids 0..C-1, not names
    exact: dict[str, int] = field(default_factory=dict)
    by_fold: dict[str, int] = field(default_factory=dict)  # casefolded name -> id (unambiguous folds only)
    folded: dict[str, Counter] = field(default_factory=dict)  # class name -> other spellings seen, with counts
    note: str | None = None  # how integer labels were read, for a warning

    def id_of(self, key: str | None) -> int | None:
        if key is None:
            return None
        if self.by_id:
            i = _as_int(key)
            return i if i is not None and 0 <= i < len(self.names) else None
        if key in self.exact:
            return self.exact[key]
        i = self.by_fold.get(key.casefold())
        if i is not None:
            self.folded.setdefault(self.names[i], Counter())[key] += 1
        return i

    @classmethod
    def from_train(cls, keys: list[str | None], label_names: list[str] | None, where: str,
                   column: str = "label") -> LabelMap:
        """The mapping the training labels (``label_key`` values) call for; ``where`` names the file."""
        present = Counter(k for k in keys if k is not None)
        ints = sorted({_as_int(k) for k in present if _as_int(k) is not None})
        names = sorted(k for k in present if _as_int(k) is None)
        if label_names is not None:
            declared = [str(n).strip() for n in label_names]
            dup = sorted({n for n in declared if declared.count(n) > 1})
            if dup:
                raise ValueError(f"dataset.label_names lists {dup} more than once; give each class once")
            out = cls(declared, False, {label_key(n): i for i, n in enumerate(declared)})
            folds = Counter(n.casefold() for n in out.exact)
            out.by_fold = {n.casefold(): i for n, i in out.exact.items() if folds[n.casefold()] == 1}
            resolvable = all(k in out.exact or k.casefold() in out.by_fold for k in present)
            if not resolvable and ints and not names:  # integers that are not declared names: class ids
                return cls(declared, True)
            return out
        if ints and names:
            raise ValueError(
                f"train file {where}: column {column!r} mixes class ids {[str(i) for i in ints[:5]]} with label "
                f"names {names[:5]}; write every label one way, or set dataset.label_names=[...] (names in "
                "class-id order)")
        if ints and ints[0] == 0:
            return cls([str(i) for i in range(ints[-1] + 1)], True)
        if ints:
            out = cls([str(i) for i in ints], False)
            out.note = (f"train file {where}: integer labels {ints[0]}..{ints[-1]} do not start at 0, so they are read "
                        f"as names in numeric order: {', '.join(f'{n} -> class {i}' for i, n in enumerate(out.names[:6]))}"
                        f"{', ...' if len(ints) > 6 else ''}; set dataset.label_names=[...] to choose the order")
        else:
            by_fold: dict[str, Counter] = {}
            for k in names:
                by_fold.setdefault(k.casefold(), Counter())[k] = present[k]
            canonical = {f: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for f, c in by_fold.items()}
            out = cls(sorted(canonical.values()), False)
        out.exact = {n: i for i, n in enumerate(out.names)}
        out.by_fold = {} if ints else {n.casefold(): i for i, n in enumerate(out.names)}
        return out

    def folded_note(self, where: str) -> str | None:
        """The warning for labels folded by case, or None when none was."""
        if not self.folded:
            return None
        parts = [f"{', '.join(f'{s!r} ({n} rows)' for s, n in sorted(c.items()))} -> {name!r}"
                 for name, c in sorted(self.folded.items())]
        return (f"{where}: labels that differ only in case are one class: {'; '.join(parts)}; write them one way "
                "in the file (or declare distinct dataset.label_names to keep them apart) to silence this")


#: per-class parameters of a conditional classifier above which the class count gets a warning
MANY_CLASS_PARAMETERS = 10_000_000


def class_table_parameters(num_classes: int, vocab_size: int) -> int:
    """Parameters a conditional classifier spends on the per-class output bias alone: one row over the
    vocabulary per condition (the classes and "no label"), the vocabulary itself grown by one label token
    per condition (``classifiers.label_tokens``): quadratic in the number of classes."""
    conditions = num_conditions(num_classes)
    return conditions * (vocab_size + conditions) if num_classes else 0


def warn_many_classes(num_classes: int, vocab_size: int) -> bool:
    """Warn (with the parameter count) when the class count alone makes a model large: 10,000 classes
    turn a 0.9M-parameter tiny model into 108M. A warning, not an error: many classes can be meant."""
    extra, conditions = class_table_parameters(num_classes, vocab_size), num_conditions(num_classes)
    if extra <= MANY_CLASS_PARAMETERS:
        return False
    log.warning("%d classes: a conditional classifier adds a label token per class (vocabulary %d -> %d) and a "
                "per-class output bias of %d x %d = %.1fM parameters, whatever the backbone's size "
                "(classifier.mode=per_class builds %d models instead); if that many classes is not meant, check "
                "dataset.label_column", num_classes, vocab_size, vocab_size + conditions, conditions,
                vocab_size + conditions, extra / 1e6, num_classes)
    return True
