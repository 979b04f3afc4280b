"""Class-conditional generation from a trained classifier run (``task=train_classifier``).

``conditional`` classifiers: the one model reads ``[<label_c>, x]`` with condition id ``c``, so a
sample of class ``c`` starts from a canvas whose first token is ``<label_c>`` (kept, never
re-masked) and the backbone gets condition ``c`` throughout (the label token is visible in every
step, as during training when it is not masked). ``per_class``: class ``c``'s own model, no prefix.
Autoregressive runs work the same way through their left-to-right sampler. ``length`` counts the
text's tokens (prompt included); the label token comes on top, as in training.
"""

from __future__ import annotations

import json
from pathlib import Path

from diffusion_lab.classifiers.build import load_classifier_run


class ClassConditionalGenerator:
    def __init__(self, run_dir: str | Path, checkpoint: str = "best"):
        self.run_dir = Path(run_dir)
        self.cfg, self.tokenizer, self.clf, _ = load_classifier_run(self.run_dir, checkpoint)
        results = self.run_dir / "results.json"
        names = json.loads(results.read_text()).get("label_names") if results.exists() else None
        self.label_names = list(names or [str(c) for c in range(self.clf.num_classes)])

    @property
    def window(self) -> int:
        """The trained token window, the default ``length``."""
        return int(self.cfg.data.max_length)

    def class_id(self, label) -> int:
        if str(label) in self.label_names:
            return self.label_names.index(str(label))
        raise ValueError(f"task.label={label!r} is not a class of {self.run_dir}; its labels are: "
                         f"{', '.join(self.label_names)}")

    def generate(self, label, num_samples: int, sampler, length: int | None = None, prompt: str = "",
                 seed: int = 0, return_output: bool = False):
        """``num_samples`` texts of class ``label`` (a name from ``label_names``)."""
        c = self.class_id(label)
        length = self.window if length is None else int(length)
        lm, prefix, condition, extra = self.clf.layout.generation(self.clf, c, self.tokenizer)
        if getattr(lm, "tokenizer", None) is None:
            lm.tokenizer = self.tokenizer
        return lm.generate([prefix + (prompt or "")] * num_samples, length + extra, sampler=sampler, seed=seed,
                           condition=condition, return_output=return_output)
