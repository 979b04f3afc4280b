"""``classifier.num_draws: auto``: K chosen on VALIDATION, the smallest that costs nothing in NLL.

    K* = min { K in auto_draws : NLL_val(K) <= NLL_val(max auto_draws) + auto_tolerance }

NLL is the mean negative log posterior of the true class (nats per item) of the Bayes readout with
fixed K (no pruning, no stopping), the same seed for every K. Only ``datamodule.dataloader("validation")``
is read: choosing K is a model choice, and model choices never see the test split.
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
