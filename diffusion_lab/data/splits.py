"""What every dataset source returns: labelled text splits plus the facts an honest report needs."""

from __future__ import annotations

from dataclasses import dataclass, field

from datasets import Dataset

NO_LABEL = -1  #: label value of unlabelled rows (IMDB ``unsup``, LM-only corpora)


@dataclass
class TextSplits:
    """``train`` / ``validation`` / ``test`` (and optional ``unsup``) as ``datasets.Dataset`` objects.

    Every split has columns ``text`` (str, cleaned, non-empty) and ``label`` (int class id, or
    ``NO_LABEL``). ``label_names[i]`` is the name of class ``i``. ``stats`` records what cleaning did
    (``duplicates_removed``, ``empty_skipped``, ``val_from_train``, sizes, the shuffle seed) so that
    reports can state it.
    """

    train: Dataset
    validation: Dataset
    test: Dataset
    label_names: list[str]
    unsup: Dataset | None = None
    stats: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)
