"""The one test scoring of ``task=synthesize``: every compared configuration on the same real test items.

Each configuration's trained run is reloaded (its best checkpoint, chosen on validation) and its
generative classifier's readout ``task.score_model`` (Bayes ``generative`` or the one-pass
``generative_infill``) scores the real validation items (for the temperature) and the test items
with the same seeded draws (``RunModels`` seeds every call alike: common random numbers across
configurations). Metrics are ``classifiers.results_table.model_metrics`` (accuracy with a 95% Wilson
interval, macro-F1, NLL, Brier, ECE before/after temperature scaling); McNemar p-values compare
each configuration with ``real_only`` on the same items.
"""

from __future__ import annotations

import time

import torch

from diffusion_lab.classifiers.build import load_classifier_run
from diffusion_lab.classifiers.predict import Predictions
from diffusion_lab.classifiers.results_table import mcnemar_against, model_metrics
from diffusion_lab.evaluation.models import RunModels


def _predictions(models, name, texts, labels) -> Predictions:
    start = time.perf_counter()
    scores = models.score(name, texts=texts)
    rate = len(texts) / max(time.perf_counter() - start, 1e-9)
    passes = models.forward_passes[name] / max(len(texts), 1)
    models.forward_passes[name] = 0.0
    return Predictions(scores.log_joint, torch.tensor(labels), rate, passes)


def score_configurations(run_dirs: dict, validation, test, num_draws: int | None, seed: int,
                         batch_size: int = 32, model: str = "generative") -> dict:
    """``run_dirs``: name -> run directory (``real_only`` first); ``model``: the generative readout
    (``EVAL_MODELS`` name) every configuration is scored with. Returns metrics and McNemar p-values."""

    val_texts, val_labels = [t for t, _ in validation], [y for _, y in validation]
    test_texts, test_labels = test
    val_preds, test_preds = {}, {}
    for name, run_dir in run_dirs.items():
        cfg, tok, clf, _ = load_classifier_run(run_dir)
        models = RunModels.for_run(cfg, clf, {}, tok, batch_size=batch_size, num_draws=num_draws, seed=seed,
                                   only=[model])
        val_preds[name] = _predictions(models, model, val_texts, val_labels)
        test_preds[name] = _predictions(models, model, test_texts, test_labels)
    return {
        "models": {name: model_metrics(val_preds[name], test_preds[name]) for name in test_preds},
        "score_model": model,
        "mcnemar_p_vs_real_only": mcnemar_against("real_only", test_preds),
        "n_test": len(test_labels), "n_val": len(val_labels), "eval_seed": seed,
        "run_dirs": {k: str(v) for k, v in run_dirs.items()},
    }
