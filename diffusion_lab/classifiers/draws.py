"""Draw budgets chosen on VALIDATION: ``classifier.num_draws: auto`` and ``classifier.stop_z: auto``.

    K* = min { K in auto_draws : NLL_val(K) <= NLL_val(max auto_draws) + auto_tolerance }

NLL is the mean negative log posterior of the true class (nats per item) of the Bayes readout with
fixed K (no pruning, no stopping), the same seed for every K.

    z* = min { z in auto_stop_z : acc_val(sequential z, at most K draws) >= acc_val(fixed K) - auto_accuracy_drop }

the smallest stopping threshold (fewest passes) whose validation accuracy is that of fixed K (the largest
candidate if none is). Accuracy, not agreement with fixed K: on close items fixed K's own draws decide by
chance, and the goal is fixed K's accuracy at fewer passes.
Only ``datamodule.dataloader("validation")`` is read: these are model choices, and model choices never
see the test split.
"""

from __future__ import annotations

import torch

from diffusion_lab.classifiers.predict import predict


def choose_num_draws(clf, datamodule, candidates=(1, 2, 4, 8, 16), tolerance: float = 0.01, seed: int = 0):
    """``(K*, {K: validation NLL})`` (see the module docstring)."""
    candidates = sorted({int(k) for k in candidates})
    if not candidates or candidates[0] < 1:
        raise ValueError(f"classifier.auto_draws={candidates}: need positive draw counts")
    loader = datamodule.dataloader("validation")
    table = {}
    for k in candidates:
        p = predict(clf, loader, seed=seed, num_draws=k, adaptive=False, sequential=False)
        table[k] = float(torch.nn.functional.cross_entropy(p.log_joint, p.labels))
    best = table[candidates[-1]]
    chosen = next(k for k in candidates if table[k] <= best + tolerance)
    return chosen, table


def choose_stop_z(clf, datamodule, num_draws: int, candidates=(1.0, 1.5, 2.0, 2.5, 3.0),
                  max_accuracy_drop: float = 0.0, seed: int = 0):
    """``(z*, {z: {"accuracy", "agreement", "passes"}})`` (see the module docstring); the table also holds
    ``"fixed"``, fixed K's row; ``agreement`` is the share of items decided as fixed K decides them."""
    candidates = sorted({float(z) for z in candidates})
    if not candidates or candidates[0] <= 0:
        raise ValueError(f"classifier.auto_stop_z={candidates}: need positive thresholds (standard errors)")
    loader = datamodule.dataloader("validation")
    fixed = predict(clf, loader, seed=seed, num_draws=num_draws, sequential=False)
    decided = fixed.log_joint.argmax(-1)

    def row(p):
        guess = p.log_joint.argmax(-1)
        return {"accuracy": float((guess == p.labels).double().mean()),
                "agreement": float((guess == decided).double().mean()), "passes": p.forward_passes_per_example}

    table = {"fixed": row(fixed)}
    for z in candidates:
        table[z] = row(predict(clf, loader, seed=seed, num_draws=num_draws, sequential=True, stop_z=z))
    bar = table["fixed"]["accuracy"] - max_accuracy_drop
    chosen = next((z for z in candidates if table[z]["accuracy"] >= bar - 1e-12), candidates[-1])
    return chosen, table


def resolve_stop_z(clf_cfg, clf, datamodule, num_draws: int, seed: int = 0) -> float | None:
    """``classifier.stop_z`` as a float when draws are sequential (``auto``: chosen on validation, stored
    in the classifier's hyperparameters); ``None`` when they are not."""
    if not clf_cfg.get("sequential", False):
        return None
    z = clf_cfg.get("stop_z", 3.0)
    if str(z) != "auto":
        return float(z)
    chosen, table = choose_stop_z(clf, datamodule, num_draws, clf_cfg.get("auto_stop_z", (1.0, 1.5, 2.0, 2.5, 3.0)),
                                  float(clf_cfg.get("auto_accuracy_drop", 0.0)), seed)
    clf.hparams.stop_z = chosen
    clf.auto_stop_z_table = table
    return chosen


def resolve_num_draws(clf_cfg, clf, datamodule, seed: int = 0) -> int:
    """``classifier.num_draws`` as an int: itself, or (``auto``) chosen on validation and stored in the
    classifier's hyperparameters so later scoring (and its checkpoint) uses it."""
    k = clf_cfg.num_draws
    if str(k) != "auto":
        return int(k)
    chosen, table = choose_num_draws(clf, datamodule, clf_cfg.get("auto_draws", (1, 2, 4, 8, 16)),
                                     float(clf_cfg.get("auto_tolerance", 0.01)), seed)
    clf.hparams.num_draws = chosen
    clf.auto_draws_table = table
    return chosen
