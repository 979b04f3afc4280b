"""``ClassifierJudge``: a trained classifier run of this project judges generated text.

Label agreement and confidence come from one model of the run, chosen by name (``generative``,
``generative_infill``, ``discriminative``, ``tfidf_lr``, as in its report): the verdict's label is
``argmax_y p(y | x)`` and its score is ``p(intended | x)``. Fluency is the generative model's own
bound per token under the intended class,

    fluency(x) = log p(x | y_intended) / |x|   (nats per token; the ELBO, so a lower bound)

read from the same log joint, ``log p(x | y) = log_joint[y] - log p(y)``. When the judge's run is
the run that generated the text (the default in ``task=synthesize``) this is the generating LM's
own bound; otherwise it is the judge's LM.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from diffusion_lab.classifiers.build import load_classifier_run
from diffusion_lab.evaluation.models import RunModels
from diffusion_lab.judges.base import Verdict, check_lengths


class ClassifierJudge:
    """Args:
        run_dir: a ``task=train_classifier`` run (``task=synthesize`` fills in its real-only run when null).
        model: which of the run's models judges the label.
        fluency: also compute the generative bound per token (one more pass when ``model`` is not generative).
        num_draws: K of the generative model (null = the run's ``classifier.num_draws``).
    """

    def __init__(self, run_dir: str | None = None, model: str = "generative", fluency: bool = True,
                 num_draws: int | None = None, batch_size: int = 32, seed: int = 0, checkpoint: str = "best",
                 name: str = "classifier"):
        self.run_dir, self.model, self.fluency = run_dir, model, fluency
        self.num_draws, self.batch_size, self.seed, self.checkpoint = num_draws, batch_size, seed, checkpoint
        self.name = name
        self._models = None

    def _load(self):
        if self._models is None:
            if not self.run_dir:
                raise ValueError("judge.run_dir is not set: give the directory of a task=train_classifier run")

            cfg, tok, clf, baselines = load_classifier_run(self.run_dir, self.checkpoint)
            results = Path(self.run_dir) / "results.json"
            names = json.loads(results.read_text()).get("label_names") if results.exists() else None
            self.label_names = list(names or [str(i) for i in range(clf.num_classes)])
            self._models = RunModels.for_run(cfg, clf, baselines, tok, batch_size=self.batch_size,
                                             num_draws=self.num_draws, seed=self.seed)
            if self.model not in self._models.names:
                raise ValueError(f"judge.model={self.model!r} is not a model of {self.run_dir}; "
                                 f"available: {', '.join(self._models.names)}")
        return self._models

    def judge(self, texts: list[str], intended_labels: list[str]) -> list[Verdict]:
        check_lengths(texts, intended_labels)
        if not texts:
            return []
        models = self._load()
        unknown = sorted(set(intended_labels) - set(self.label_names))
        if unknown:
            raise ValueError(f"intended labels {unknown} are not classes of {self.run_dir}: {self.label_names}")
        scores = models.score(self.model, texts=list(texts))
        probs = scores.probs
        fluency = [None] * len(texts)
        if self.fluency:
            gen = scores if self.model == "generative" else models.score("generative", texts=list(texts))
            log_px_y = gen.log_joint - models.clf.log_prior.double().cpu()[None]
            fluency = [float(log_px_y[i, self.label_names.index(y)]) / max(gen.lengths[i], 1)
                       for i, y in enumerate(intended_labels)]
        verdicts = []
        for i, intended in enumerate(intended_labels):
            c = self.label_names.index(intended)
            label = self.label_names[int(torch.argmax(probs[i]))]
            p = float(probs[i, c])
            reason = f"{self.model} reads {label!r} (p({intended})={p:.3f})"
            if fluency[i] is not None:
                reason += f", bound {fluency[i]:.2f} nats/token"
            verdicts.append(Verdict(judge=self.name, label=label, score=p, reason=reason, fluency=fluency[i]))
        return verdicts
